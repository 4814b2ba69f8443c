"""Turn what RL trainers hand a reward function (plain strings or chat messages) into the
instruction and response texts the evaluator reads.

TRL passes ``prompts`` / ``completions`` either as strings ("standard" rows) or as lists of
``{"role", "content"}`` messages ("conversational" rows). A completion with tool calls is several
messages (assistant call, tool result, assistant answer); the judge reads the last assistant
message that says something. Content may also be a list of typed parts (``{"type": "text"}``).

Example:
    >>> from prometheus_reward.completions import completion_text, prompt_text
    >>> completion_text([{"role": "assistant", "content": "Hi!"}])
    'Hi!'
    >>> prompt_text([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}])
    'Say hi.'
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping, Sequence


def content_text(content: Any) -> str | None:
    """The text of a message ``content``: a string, or the text parts of a list of typed parts."""
    if content is None:
        return None
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts) if parts else None
    return None


def _tool_calls_text(message: Mapping[str, Any]) -> str | None:
    """A readable rendering of an assistant turn that only calls tools."""
    calls = message.get("tool_calls") or []
    rendered = []
    for call in calls:
        if not isinstance(call, Mapping):
            continue
        function = call.get("function", call)
        name = function.get("name", "tool") if isinstance(function, Mapping) else "tool"
        arguments = function.get("arguments", "") if isinstance(function, Mapping) else ""
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False, sort_keys=True)
        rendered.append(f"[tool call] {name}({arguments})")
    return "\n".join(rendered) if rendered else None


def _messages(value: Any) -> list[Mapping[str, Any]] | None:
    if isinstance(value, Mapping) and "role" in value:
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, str) and all(isinstance(m, Mapping) for m in value):
        return list(value)
    return None


def completion_text(completion: Any) -> str | None:
    """The response to grade: the completion string, or the last assistant message with text
    (falling back to that message's tool calls). None when nothing can be read."""
    if isinstance(completion, str):
        return completion
    messages = _messages(completion)
    if messages is None:
        return None
    assistant = [m for m in messages if m.get("role", "assistant") == "assistant"]
    for message in reversed(assistant):
        text = content_text(message.get("content"))
        if text is not None and text.strip():
            return text
    if assistant:
        return _tool_calls_text(assistant[-1]) or content_text(assistant[-1].get("content"))
    return None


def prompt_text(prompt: Any) -> str | None:
    """The instruction the completion answers: the prompt string, or the last user message.

    Earlier turns of a multi-turn prompt are kept in front as a short transcript, so that the
    evaluator sees what "it" or "the above" refers to; system messages are left out (they
    instruct the policy, not the evaluator)."""
    if isinstance(prompt, str):
        return prompt
    messages = _messages(prompt)
    if messages is None:
        return None
    turns = [m for m in messages if m.get("role") != "system"]
    last_user = max((i for i, m in enumerate(turns) if m.get("role") == "user"), default=None)
    if last_user is None:
        return None
    question = content_text(turns[last_user].get("content"))
    if question is None:
        return None
    history = []
    for message in turns[:last_user]:
        text = content_text(message.get("content"))
        if text:
            history.append(f"{message.get('role', 'user')}: {text}")
    if not history:
        return question
    return "Conversation so far:\n" + "\n".join(history) + "\n\nLatest request:\n" + question


def group_key(prompt: Any) -> str:
    """A stable identity of a prompt (string or messages), for grouping completions by prompt."""
    if isinstance(prompt, str):
        return prompt
    try:
        return json.dumps(prompt, sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(prompt)


# Chat-template markers of common policy families, used to recover the user request from an
# already templated prompt string (OpenRLHF hands over templated text, not messages).
_TEMPLATED_USER = (
    re.compile(r"<\|im_start\|>user\n(.*?)<\|im_end\|>", re.S),  # ChatML (Qwen, ...)
    re.compile(r"<start_of_turn>user\n(.*?)<end_of_turn>", re.S),  # Gemma
    re.compile(r"<\|start_header_id\|>user<\|end_header_id\|>\n\n(.*?)<\|eot_id\|>", re.S),  # Llama 3
    re.compile(r"\[INST\](.*?)\[/INST\]", re.S),  # Llama 2 / Mistral
    re.compile(r"<\|user\|>\n(.*?)(?:<\|end\|>|</s>|<\|assistant\|>)", re.S),  # Phi / Zephyr
)
_SPECIAL_TOKENS = re.compile(
    r"(<\|[a-z_]+\|>|<start_of_turn>|<end_of_turn>|</?s>|<eos>|<bos>|<pad>|\[/?INST\])"
)


def untemplate_prompt(text: str) -> str:
    """The last user turn of a chat-templated prompt string, or the text with special tokens
    removed when no known template matches."""
    for pattern in _TEMPLATED_USER:
        found = pattern.findall(text)
        if found:
            return found[-1].strip()
    return _SPECIAL_TOKENS.sub("", text).strip()


def strip_special_tokens(text: str) -> str:
    """Remove end-of-turn and padding markers a decoded response may carry."""
    return _SPECIAL_TOKENS.sub("", text).strip()
