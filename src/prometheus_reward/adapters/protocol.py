"""What the PPO engines send, read once for the adapters and the reward server.

OpenRLHF sends ``queries`` (the templated prompt followed by the decoded response), ``prompts``
(the templated prompts) and ``labels`` (from ``--label_key``). A label is a reference answer, or a
JSON object ``{"reference_answer": ..., "rubric": ...}``. verl sends a ``ground_truth`` of the same
two shapes and the instruction in ``extra_info``.

Example:
    >>> split_query("<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\nHello!<|im_end|>",
    ...             "<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n")
    'Hello!'
    >>> label_fields('{"reference_answer": "x", "rubric": "honesty"}')
    ('x', 'honesty')
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from prometheus_reward.rows import prompt_text, strip_special_tokens, untemplate_prompt


def split_query(query: Any, prompt: Any) -> str | None:
    """The response part of ``query`` (prompt + response, decoded with special tokens); None
    when the query is not text."""
    if not isinstance(query, str):
        return None
    if not isinstance(prompt, str):
        prompt = ""
    if prompt and query.startswith(prompt):
        response = query[len(prompt):]
    elif prompt and prompt in query:
        response = query[query.index(prompt) + len(prompt):]
    else:
        stripped = strip_special_tokens(prompt)
        plain = strip_special_tokens(query)
        response = plain[len(stripped):] if stripped and plain.startswith(stripped) else query
    return strip_special_tokens(response)


def instruction_of(prompt: Any) -> Any:
    """The instruction the judge reads from an engine's prompt: a templated string is untemplated
    (its last user turn); chat messages are left for :func:`prometheus_reward.rows.prompt_text`."""
    if isinstance(prompt, str):
        return untemplate_prompt(prompt)
    return prompt if prompt_text(prompt) is not None else None


def label_fields(label: Any, rubric: Any = None) -> tuple[str | None, Any]:
    """(reference answer, rubric) from an OpenRLHF label or a verl ground truth; ``rubric`` is
    the default when the label names none."""
    if label is None:
        return None, rubric
    if isinstance(label, Mapping):
        return label.get("reference_answer"), label.get("rubric", rubric)
    text = str(label)
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return text, rubric
        if isinstance(data, dict):
            return data.get("reference_answer"), data.get("rubric", rubric)
    return (text if text.strip() else None), rubric
