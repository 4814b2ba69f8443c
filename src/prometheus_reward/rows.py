"""Rows to evaluator text: how the prompts, completions, chat rows, rubric and reference columns
that every entry point receives (TRL rewards, the CLI, labeling, best-of-n, the server, the PPO
adapters) become the strings the evaluator reads, and the row errors that name row and field.
(Reading rows from files is :mod:`prometheus_reward.io`; the defences against a policy that
games its judge are :mod:`prometheus_reward.guards`.)

**Multi-turn policy** (the same everywhere):

- a prompt is a string, or chat messages: the evaluator's instruction is the last user message;
  earlier user/assistant turns go in front as a short transcript ("Conversation so far: ...",
  then "Latest request: ..."), so that "it" or "the above" stays resolvable; system messages are
  left out (they instruct the policy, not the evaluator);
- a response is a string, one assistant message, or a list of messages: the last assistant
  message with text (a tool-using run ends with the answer after the tool results), else that
  message's tool calls rendered as ``[tool call] name(arguments)``;
- message content may be a string or a list of typed parts (``{"type": "text", "text": ...}``);
  the text parts are joined.

Anything else is a :class:`RowError` naming the row and the field.

Example:
    >>> response_text([{"role": "assistant", "content": "Hi!"}])
    'Hi!'
    >>> prompt_text([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}])
    'Say hi.'
    >>> require_prompt(None, 3, "prompt")
    Traceback (most recent call last):
    ...
    prometheus_reward.rows.RowError: row 3: field 'prompt' must be a string or chat messages, got None
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .rubric import Rubric


class RowError(ValueError):
    """A bad input row; the message names the row and the field."""


def describe(value: Any) -> str:
    """A short name of what a bad value is (for error messages)."""
    return "None" if value is None else type(value).__name__


# -- chat rows -> text -------------------------------------------------------------------------------------
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
    rendered = []
    for call in message.get("tool_calls") or []:
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
    if isinstance(value, Sequence) and not isinstance(value, str) and value and all(isinstance(m, Mapping) for m in value):
        return list(value)
    return None


def response_text(response: Any) -> str | None:
    """The response to grade (see the module's multi-turn policy); None when nothing can be read."""
    if isinstance(response, str):
        return response
    messages = _messages(response)
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
    """The instruction the response answers (see the module's multi-turn policy); None when the
    prompt is neither text nor chat messages with a user turn."""
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


def require_prompt(value: Any, row: int, field: str = "prompt") -> str:
    """:func:`prompt_text`, or a :class:`RowError` naming the row and field."""
    text = prompt_text(value)
    if text is None:
        if _messages(value) is not None:
            raise RowError(f"row {row}: field '{field}' has no user message with text")
        raise RowError(f"row {row}: field '{field}' must be a string or chat messages, got {describe(value)}")
    return text


def require_response(value: Any, row: int, field: str = "response") -> str:
    """:func:`response_text`, or a :class:`RowError` naming the row and field."""
    text = response_text(value)
    if text is None:
        if _messages(value) is not None:
            raise RowError(f"row {row}: field '{field}' has no assistant message with text")
        raise RowError(f"row {row}: field '{field}' must be a string or assistant messages, got {describe(value)}")
    return text


def require_text(value: Any, row: int, field: str, optional: bool = False) -> str | None:
    """A plain string field (None allowed when ``optional``), or a :class:`RowError`."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise RowError(f"row {row}: field '{field}' must be a string, got {describe(value)}")
    return value


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


# -- columns ----------------------------------------------------------------------------------------------------
def column(values: Any, n: int, name: str) -> list[Any]:
    """A per-row column: None -> ``[None] * n``; a list or tuple must have ``n`` values; any other
    single value is broadcast to every row.

    Example:
        >>> column(None, 2, "rubric"), column("x", 2, "rubric"), column(["a", "b"], 2, "rubric")
        ([None, None], ['x', 'x'], ['a', 'b'])
    """
    if values is None:
        return [None] * n
    if isinstance(values, (list, tuple)):
        if len(values) != n:
            raise RowError(f"field '{name}' has {len(values)} values for {n} rows")
        return list(values)
    return [values] * n


def reference_for(cell: Any, default: str | None, row: int, field: str = "reference_answer") -> str | None:
    """The row's reference answer: a non-empty string cell, else ``default``."""
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        return default
    if not isinstance(cell, str):
        raise RowError(f"row {row}: field '{field}' must be a string, got {describe(cell)}")
    return cell


@dataclass
class JudgeInputs:
    """One batch of rows as the evaluator reads them: per row the prompt as given (its identity
    groups completions), the instruction and response texts, the resolved rubric, the reference
    answer, why the row cannot be judged (None when it can), and who is to blame for that:
    ``"response"`` when the response itself is unusable (the policy's output is not text), else
    None (the user's input: a missing instruction, an unknown rubric)."""

    prompts: list[Any]
    instructions: list[str | None]
    responses: list[str | None]
    rubrics: list[Any]
    references: list[str | None]
    errors: list[str | None]
    causes: list[str | None] = field(default_factory=list)

    @property
    def live(self) -> list[int]:
        """The rows that can be judged."""
        return [i for i, e in enumerate(self.errors) if e is None]

    def __len__(self) -> int:
        return len(self.errors)


def judge_inputs(prompts: Sequence[Any] | None, responses: Sequence[Any], rubrics: Any = None, references: Any = None,
                 *, default_rubric: Any = None, default_reference: str | None = None, rubric_field: str = "rubric",
                 reference_field: str = "reference_answer", prompt_field: str = "prompt",
                 response_field: str = "completion", numbers: Sequence[int] | None = None) -> JudgeInputs:
    """The judge's inputs from rows: what every entry point (rewards, server, adapters, a file
    reader) hands the evaluator. ``prompts`` and ``responses`` are per-row cells (strings or chat
    messages; ``prompts`` None: no instruction); ``rubrics`` and ``references`` are columns (None,
    one value for all rows, or one per row) whose empty cells take ``default_rubric`` (anything
    :class:`RubricColumn` reads, or a RubricColumn to reuse its cache) and ``default_reference``.
    The ``*_field`` names are what error messages call the fields, and ``numbers`` the rows (by
    default their positions; a file reader passes each row's number in its file).

    Never raises for a bad row: each row's problem is in ``errors`` (a malformed column gives
    every row its message); a caller that wants to stop raises the first one.

    Example:
        >>> rows = judge_inputs(["Say hi.", None], ["Hello!", "Hi"], default_rubric="helpfulness")
        >>> rows.instructions, rows.rubrics[0].name, rows.live
        (['Say hi.', None], 'helpfulness', [0])
        >>> rows.errors[1]
        "row 1: field 'prompt' must be a string or chat messages, got None"
    """
    n = len(responses)
    prompts = list(prompts) if prompts is not None else [None] * n
    resolver = default_rubric if isinstance(default_rubric, RubricColumn) else RubricColumn(default_rubric, rubric_field)
    rows = JudgeInputs(prompts, [], [], [], [], [])
    try:
        rubric_cells = column(rubrics, n, rubric_field)
        reference_cells = column(references, n, reference_field)
        if len(prompts) != n:
            raise RowError(f"field '{prompt_field}s' has {len(prompts)} values for {n} {response_field}s")
    except RowError as err:  # a malformed batch: every row says why
        for part in (rows.instructions, rows.responses, rows.rubrics, rows.references):
            part.extend([None] * n)
        rows.errors.extend([str(err)] * n)
        rows.causes.extend([None] * n)
        return rows
    numbers = list(numbers) if numbers is not None else list(range(n))
    for i, row in enumerate(numbers):
        instruction = response = rubric = reference = error = cause = None
        try:
            instruction = require_prompt(prompts[i], row, prompt_field)
            try:
                response = require_response(responses[i], row, response_field)
            except RowError:
                cause = "response"
                raise
            rubric = resolver.resolve(rubric_cells[i], row)
            reference = reference_for(reference_cells[i], default_reference, row, reference_field)
        except RowError as err:
            error = str(err)
        rows.instructions.append(instruction)
        rows.responses.append(response)
        rows.rubrics.append(rubric)
        rows.references.append(reference)
        rows.errors.append(error)
        rows.causes.append(cause)
    return rows


class RubricColumn:
    """Per-row rubric cells (a Rubric or Checklist, preset name, dict, list of checklist items,
    YAML path or text) -> :class:`Rubric` / :class:`~prometheus_reward.checklist.Checklist`, each
    distinct cell coerced once; an empty cell takes ``default``.

    Example:
        >>> rubrics = RubricColumn(default="helpfulness")
        >>> rubrics.resolve(None, 0).name, rubrics.resolve("honesty", 1).name
        ('helpfulness', 'honesty')
    """

    def __init__(self, default: Any = None, field: str = "rubric", max_cached: int = 4096):
        from .checklist import coerce_criteria

        self._coerce = coerce_criteria
        self.default = None if default is None else coerce_criteria(default)
        self.field = field
        self.max_cached = max_cached
        self._cache: dict[str, Any] = {}

    def resolve(self, cell: Any, row: int) -> Any:
        if cell is None or (isinstance(cell, str) and not cell.strip()):
            if self.default is None:
                raise RowError(f"row {row}: field '{self.field}' is empty and there is no default rubric")
            return self.default
        if isinstance(cell, Rubric) or hasattr(cell, "items") and hasattr(cell, "aggregate"):
            return cell
        if isinstance(cell, Mapping):
            # datasets unifies dict columns across rows, filling absent keys with None
            cell = {k: v for k, v in cell.items() if v is not None}
        key = group_key(cell)
        rubric = self._cache.get(key)
        if rubric is None:
            try:
                rubric = self._coerce(cell)
            except (ValueError, TypeError, OSError) as err:
                raise RowError(f"row {row}: field '{self.field}' is invalid: {err}") from None
            if len(self._cache) < self.max_cached:
                self._cache[key] = rubric
        return rubric
