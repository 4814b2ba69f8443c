"""Fit a rendered prompt into the evaluator's context without touching the template or rubric.

Cut order (:data:`ABSOLUTE_CUTS`, :data:`RELATIVE_CUTS`; the judge and the evaluator-training
prompts share them): the reference answer first, then the *start* of the instruction (its end,
where the actual question usually is, keeps at least :data:`INSTRUCTION_FLOOR` tokens), then the
response(s) (the longer of two is cut down towards the shorter before both shrink together), never
below :data:`RESPONSE_FLOOR` tokens: a response cut to nothing would be graded as an empty answer.
The template and the rubric are never cut; when the prompt still does not fit,
:class:`PromptTooLong` is raised and the row is unscorable: the response's fault (cause
``response``) only when a response alone has more tokens than the whole budget, else the judge's
(:func:`prometheus_reward.prompting.fit`).
"""

from __future__ import annotations

from typing import Callable, Literal, NamedTuple, Sequence

Keep = Literal["head", "tail"]

RESPONSE_FLOOR = 64  # tokens a response keeps at least (all of it when it is shorter)
INSTRUCTION_FLOOR = 32  # tokens of the instruction's end that are never cut


class Cut(NamedTuple):
    """One step of a cut plan: these fields, cut keeping their ``keep`` end, never below ``floor``."""

    fields: tuple[str, ...]
    keep: Keep
    floor: int = 0


ABSOLUTE_CUTS: tuple[Cut, ...] = (Cut(("reference_answer",), "head"), Cut(("instruction",), "tail", INSTRUCTION_FLOOR),
                                  Cut(("response",), "head", RESPONSE_FLOOR))
RELATIVE_CUTS: tuple[Cut, ...] = (Cut(("reference_answer",), "head"), Cut(("instruction",), "tail", INSTRUCTION_FLOOR),
                                  Cut(("response_a", "response_b"), "head", RESPONSE_FLOOR))


class PromptTooLong(ValueError):
    """The prompt does not fit even with every cuttable field cut to its floor."""


def water_fill(lengths: Sequence[int], excess: int) -> list[int]:
    """New lengths that remove ``excess`` tokens by lowering the longest first.

    >>> water_fill([100, 20], 50)
    [50, 20]
    >>> water_fill([100, 20], 100)
    [10, 10]
    """
    lengths = list(lengths)
    if excess <= 0:
        return lengths
    if excess >= sum(lengths):
        return [0] * len(lengths)
    low, high = 0, max(lengths)
    while low < high:  # largest cap c with sum(max(0, L - c)) >= excess
        cap = (low + high + 1) // 2
        if sum(max(0, n - cap) for n in lengths) >= excess:
            low = cap
        else:
            high = cap - 1
    return [min(n, low) for n in lengths]


def fit_prompt(
    fields: dict[str, str | None],
    render: Callable[[dict[str, str | None]], str],
    count: Callable[[str], int],
    cut: Callable[[str, int, Keep], str],
    budget: int,
    groups: Sequence[tuple[Sequence[str], Keep] | Cut],
    max_rounds: int = 8,
) -> tuple[str, bool, dict[str, str | None]]:
    """Render ``fields``; while the prompt exceeds ``budget`` tokens, cut field groups in order,
    each field never below its group's floor (or its own length, when shorter).

    Args:
        fields: the template fields (``instruction``, ``response``...).
        render: fields -> formatted prompt text.
        count: token count of a text.
        cut: (text, max_tokens, keep) -> cut text.
        budget: the maximum prompt tokens.
        groups: the cut plan, e.g. :data:`ABSOLUTE_CUTS`; ``(fields, keep)`` pairs have no floor.

    Returns:
        (prompt, truncated, fields actually used)
    """
    fields = dict(fields)
    prompt = render(fields)
    total = count(prompt)
    if total <= budget:
        return prompt, False, fields
    for group in groups:
        names, keep, floor = group if isinstance(group, Cut) else Cut(tuple(group[0]), group[1])
        names = [n for n in names if fields.get(n)]
        floors = {n: min(floor, count(fields[n])) for n in names} if floor else {}  # type: ignore[arg-type]
        for _ in range(max_rounds):
            if total <= budget or not any(fields.get(n) for n in names):
                break
            lengths = [count(fields[n]) if fields.get(n) else 0 for n in names]  # type: ignore[arg-type]
            room = [max(length - floors.get(n, 0), 0) for n, length in zip(names, lengths)]
            if not any(room):
                break
            # a small margin absorbs token-boundary effects at the cut
            targets = water_fill(room, total - budget + 2)
            for name, length, target in zip(names, lengths, targets):
                target += floors.get(name, 0)
                if target < length:
                    fields[name] = cut(fields[name], target, keep) if target > 0 else ""  # type: ignore[arg-type]
            prompt = render(fields)
            total = count(prompt)
        if total <= budget:
            return prompt, True, fields
    raise PromptTooLong(f"prompt needs {total} tokens, more than the {budget} available even after truncation "
                        "(the template, the rubric and the floors of the instruction and response are never cut)")

