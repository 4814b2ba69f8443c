"""Fit a rendered prompt into the evaluator's context without touching the template or rubric.

Cut order: the response(s) first (the longer of two is cut down towards the shorter before both
shrink together), then the reference answer, then the *start* of the instruction (its end, where
the actual question usually is, stays). The template, the rubric and the instruction's end are
never cut; when they alone do not fit, :class:`PromptTooLong` is raised.
"""

from __future__ import annotations

from typing import Callable, Literal, Sequence

Keep = Literal["head", "tail"]


class PromptTooLong(ValueError):
    """The prompt does not fit even with every cuttable field emptied."""


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
    groups: Sequence[tuple[Sequence[str], Keep]],
    max_rounds: int = 8,
) -> tuple[str, bool, dict[str, str | None]]:
    """Render ``fields``; while the prompt exceeds ``budget`` tokens, cut field groups in order.

    Args:
        fields: the template fields (``instruction``, ``response``...).
        render: fields -> formatted prompt text.
        count: token count of a text.
        cut: (text, max_tokens, keep) -> cut text.
        budget: the maximum prompt tokens.
        groups: cut order, e.g. ``[(("response",), "head"), (("reference_answer",), "head"),
            (("instruction",), "tail")]``.

    Returns:
        (prompt, truncated, fields actually used)
    """
    fields = dict(fields)
    prompt = render(fields)
    total = count(prompt)
    if total <= budget:
        return prompt, False, fields
    for names, keep in groups:
        names = [n for n in names if fields.get(n)]
        for _ in range(max_rounds):
            if total <= budget or not any(fields.get(n) for n in names):
                break
            lengths = [count(fields[n]) if fields.get(n) else 0 for n in names]  # type: ignore[arg-type]
            # a small margin absorbs token-boundary effects at the cut
            targets = water_fill(lengths, total - budget + 2)
            for name, length, target in zip(names, lengths, targets):
                if target < length:
                    fields[name] = cut(fields[name], target, keep) if target > 0 else ""  # type: ignore[arg-type]
            prompt = render(fields)
            total = count(prompt)
        if total <= budget:
            return prompt, True, fields
    raise PromptTooLong(f"prompt needs {total} tokens, more than the {budget} available even after truncation")
