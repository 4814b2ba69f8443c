"""Rows -> the prompts a :class:`~prometheus_reward.judge.Judge` sends, or why a row has none and
who is to blame for that (:mod:`prometheus_reward.blame`).

- A field that is not text is a :class:`~prometheus_reward.rows.RowError`. In a response field
  (``response``, ``response_a``, ``response_b``: what the policy wrote) it is the policy's doing:
  cause ``response``. In the instruction, the reference answer or the rubric it is the user's
  input: cause None (neither the policy nor the judge failed; the caller decides what such a row
  pays, and the reward side treats it like a judge failure).
- A prompt that does not fit the budget even when cut by the plan of
  :mod:`prometheus_reward.truncation` is the response's fault only when a response alone has more
  tokens than the whole budget (cause ``response``, flagged ``too_long``); otherwise the template,
  the rubric and the floors are too big for the evaluator's context: cause ``judge``. The error
  says which.

Example:
    >>> from prometheus_reward.prompting import check_rows
    >>> [p and (p.error, p.cause) for p in check_rows({"instruction": ["q", None], "response": ["a", "b"]}, set())]
    [None, ("row 1: field 'instruction' must be a string, got None", None)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .backends.base import Backend
from .rows import RowError, RubricColumn, column, require_text
from .truncation import Cut, PromptTooLong, fit_prompt

RESPONSE_FIELDS = ("response", "response_a", "response_b")  # what the policy wrote


@dataclass
class Prepared:
    """One judgment's prompt, or (``prompt`` None) the error, its cause and flags."""

    prompt: str | None
    truncated: bool = False
    error: str | None = None
    fields: dict[str, str | None] | None = None
    flags: tuple[str, ...] = ()
    cause: str | None = None


def check_rows(columns: dict[str, list[Any]], optional: set[str], errors: str = "return") -> list[Prepared | None]:
    """Per row, an unscorable :class:`Prepared` naming the first field that is not text (None
    when the row is fine); raises the :class:`RowError` in ``errors="raise"``."""
    n = len(next(iter(columns.values())))
    problems: list[Prepared | None] = [None] * n
    for row in range(n):
        for name, values in columns.items():
            try:
                require_text(values[row], row, name, optional=name in optional)
            except RowError as err:
                if errors == "raise":
                    raise
                problems[row] = Prepared(None, error=str(err), cause="response" if name in RESPONSE_FIELDS else None)
                break
    return problems


def resolve_rubrics(rubric: Any, n: int, errors: str) -> tuple[list[Any], list[Prepared | None]]:
    """Each row's rubric, and per row an unscorable :class:`Prepared` where it cannot be
    resolved (the user's input: cause None)."""
    cells = column(rubric, n, "rubric")
    resolver = RubricColumn()
    rubrics: list[Any] = []
    problems: list[Prepared | None] = []
    for row, cell in enumerate(cells):
        try:
            rubrics.append(resolver.resolve(cell, row))
            problems.append(None)
        except RowError as err:
            if errors == "raise":
                raise
            rubrics.append(None)
            problems.append(Prepared(None, error=str(err)))
    return rubrics, problems


def fit(backend: Backend, system: str, render_user: Callable[[dict[str, str | None]], str],
        fields: dict[str, str | None], cuts: Sequence[Cut], budget: int,
        side: Callable[[str], str] = lambda name: "") -> Prepared:
    """The chat-formatted prompt of ``fields`` cut by the plan ``cuts`` to ``budget`` tokens, or an
    unscorable :class:`Prepared` that blames the response only when one alone exceeds the budget
    (``side(field)`` prefixes its ``too_long`` flag, e.g. ``"A:"``)."""

    def count(text: str) -> int:
        return backend.count_tokens([text])[0]

    try:
        prompt, truncated, used = fit_prompt(fields, lambda f: backend.format(system, render_user(f)), count=count,
                                             cut=backend.truncate, budget=budget, groups=cuts)
    except PromptTooLong as err:
        sizes = {name: count(text) for name, text in fields.items() if name in RESPONSE_FIELDS and text}
        longest = max(sizes, key=sizes.__getitem__, default=None)
        if longest is not None and sizes[longest] > budget:
            return Prepared(None, True, f"field '{longest}' alone has {sizes[longest]} tokens, more than the prompt "
                            f"budget of {budget}: the response is too long to judge ({err})",
                            flags=(side(longest) + "too_long",), cause="response")
        return Prepared(None, True, f"{err}; the response(s) fit the budget on their own ({max(sizes.values(), default=0)} "
                        f"tokens at most), so the template and rubric are too big for the evaluator's context",
                        cause="judge")
    return Prepared(prompt, truncated, None, used)
