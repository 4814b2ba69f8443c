"""Evaluator outputs -> :class:`~prometheus_reward.grades.Grade` / :class:`~prometheus_reward.grades.Preference`,
with provenance: every number says how it was earned, and nothing that was not earned becomes one.

One judgment is a list of :class:`Reading` (one per sample): the parsed verdict, the feedback, the
answer distribution and whether that distribution was *forced* (read after a ``[RESULT]`` marker
the judge appended because the evaluator wrote none). The rules:

- ``score`` is the rounded mean of the *parsed* sample scores, never an argmax of a forced
  distribution (``direct`` mode, which parses nothing, keeps the documented argmax).
- A distribution counts only when it is finite, its mass on the answer tokens reaches
  ``min_score_mass``, and it is not forced unless ``allow_forced``; what it contributes is
  ``expected`` (and ``source="forced"`` when a forced one was used).
- A failed generation (a request that never succeeded) is a failed sample: never scored.
- A forced distribution whose mass could not be measured (a server that returned no logprobs for
  it) has not shown that the evaluator was answering: it counts only when ``min_score_mass`` is 0.
- Nothing partial passes as whole: every sample must give a number (``min_samples``, default all
  of them), and a pairwise judgment needs both presentation orders unless
  ``allow_single_order``; a partial result that is allowed says so in its flags
  (``partial_samples``, ``single_order``).
- An *invalid* verdict (``[RESULT] 7``, ``4.5``: outside the scale) is not a verdict: in
  ``generate`` mode it is re-sampled, and the error names it when no valid one came; in
  ``expected`` mode it is read like a missing one (a forced reading, so only with
  ``allow_forced``, flagged ``invalid_verdict``).
- A judgment with no usable number gets ``error`` (naming the first reason), ``value`` None and a
  ``cause`` (:mod:`prometheus_reward.blame`): ``transport`` when the reason is a failed request or
  a server without logprobs, else ``judge``. The cause is the one of the reason the error names, so
  error and cause always agree; reasons are ordered failed requests first, then unusable
  distributions, then unparsed verdicts, so in a mix of transport and judge failures the
  transport's is named: a request that never came back says nothing about the evaluator, and
  blaming the evaluator for it would send the user to the wrong fix. The rules that refuse a
  partial result (``min_samples``, both orders) name the failure behind it, and take its cause.

Example:
    >>> from prometheus_reward.backends.base import AnswerDistribution
    >>> from prometheus_reward.grades import Grade
    >>> g = Grade()
    >>> _ = finish_grade(g, [Reading(None, "Vague.", AnswerDistribution([0, 0, 0.5, 0.5, 0], 2e-5), forced=True)],
    ...                  mode="expected", min_score_mass=0.1, allow_forced=True)
    >>> g.value is None, g.error
    (True, 'the evaluator put 2e-05 of its probability on the score tokens, below min_score_mass=0.1')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from .backends.base import AnswerDistribution
from .grades import Grade, Preference
from .scoring import expected_score, mean_probs

NO_RESULT = "no parseable result in the evaluator output"
JUDGE, TRANSPORT = "judge", "transport"
Problem = tuple[str, str]  # (why a sample gave no number, whose fault: JUDGE or TRANSPORT)


@dataclass
class Reading:
    """One sample of a judgment: the parsed verdict (None when unparsed), the feedback, the
    answer distribution (None when not read), whether it was forced, a generation failure (and
    whether it was the transport's), and an invalid verdict the evaluator wrote instead of a
    valid one (``"[RESULT] 7"``)."""

    result: int | str | None
    feedback: str
    answer: AnswerDistribution | None = None
    forced: bool = False
    error: str | None = None
    transport: bool = False
    invalid: str | None = None


def _failures(readings: Sequence[Reading]) -> list[Problem]:
    return [(r.error, TRANSPORT if r.transport else JUDGE) for r in readings if r.error]


def _invalid(readings: Sequence[Reading]) -> list[Problem]:
    """The invalid verdicts of samples that gave no valid one."""
    return [(f"invalid verdict {r.invalid!r} in the evaluator output (outside the scale)", JUDGE)
            for r in readings if not r.error and r.result is None and r.invalid]


@dataclass
class _Usable:
    """The distributions that count, whether a forced one (of an invalid verdict) is among them,
    and why the others do not."""

    probs: list[list[float]]
    forced: bool
    invalid: bool
    problems: list[Problem]


def _usable(readings: Sequence[Reading], what: str, min_mass: float, allow_forced: bool) -> _Usable:
    found = _Usable([], False, False, [])
    for reading in readings:
        answer = reading.answer
        if reading.error or answer is None:
            continue
        if answer.error or answer.probs is None:
            found.problems.append((answer.error or "no distribution", TRANSPORT if answer.transport else JUDGE))
        elif answer.mass is None and reading.forced and min_mass > 0:
            found.problems.append((f"the forced {what} distribution's mass could not be measured (no logprobs for it); "
                                   f"it counts only with min_score_mass=0", TRANSPORT))
        elif answer.mass is not None and answer.mass < min_mass:
            found.problems.append((f"the evaluator put {answer.mass:.2g} of its probability on the {what} tokens, "
                                   f"below min_score_mass={min_mass:g}", JUDGE))
        elif reading.forced and not allow_forced:
            wrote = f"an invalid verdict {reading.invalid!r}" if reading.invalid else "no [RESULT]"
            found.problems.append((f"the evaluator wrote {wrote}; its forced distribution is not used "
                                   f"(allow_forced=False)", JUDGE))
        else:
            found.probs.append(answer.probs)
            found.forced = found.forced or reading.forced
            found.invalid = found.invalid or (reading.forced and bool(reading.invalid))
    return found


def _mass(readings: Sequence[Reading]) -> float | None:
    masses = [r.answer.mass for r in readings if r.answer is not None and r.answer.mass is not None and not r.error]
    return sum(masses) / len(masses) if masses else None


def finish_grade(grade: Grade, readings: Sequence[Reading], *, mode: str, min_score_mass: float,
                 allow_forced: bool, min_samples: int | None = None) -> Grade:
    """Fill ``grade`` from one row's readings (see the module for the rules). ``min_samples``:
    how many samples must give the number (None: all of them)."""
    scores = [None if r.error else r.result for r in readings]
    grade.samples = scores  # type: ignore[assignment]
    grade.feedback = next((r.feedback for r in readings if not r.error), "")
    grade.score_mass = _mass(readings)
    found = _usable(readings, "score", min_score_mass, allow_forced)
    usable, forced_used = found.probs, found.forced
    reasons = _failures(readings) + found.problems + _invalid(readings)
    grade.probs = mean_probs(usable) if usable else None
    grade.expected = expected_score(grade.probs)
    valid = [s for s in scores if s is not None]
    if valid:
        grade.mean = sum(valid) / len(valid)  # type: ignore[arg-type]
        grade.score = int(grade.mean + 0.5)
    elif mode == "direct" and grade.probs is not None:
        grade.score = max(range(5), key=lambda k: grade.probs[k]) + 1  # type: ignore[index]
    if mode == "direct":
        grade.source = "direct" if grade.probs is not None else None
    elif forced_used:
        grade.source = "forced"
    elif valid or grade.probs is not None:
        grade.source = "parsed"
    if grade.expected is None and grade.mean is None and grade.score is None and grade.error is None:
        grade.error, grade.cause = (reasons or [(NO_RESULT, JUDGE)])[0]
    elif grade.error is None:
        _require_samples(grade, readings, len(usable) if grade.expected is not None else len(valid),
                         reasons, min_samples)
    if found.invalid and grade.source == "forced":  # scored, and a reading of an off-scale verdict is in it
        grade.flags = list(grade.flags) + ["invalid_verdict"]
    return grade


def _require_samples(grade: Grade, readings: Sequence[Reading], earned: int, reasons: list[Problem],
                     min_samples: int | None) -> None:
    """Refuse a grade that fewer samples earned than required; flag an allowed partial one."""
    total = len(readings)
    need = total if min_samples is None else min(min_samples, total)
    if earned >= total:
        return
    if earned < need:
        why, grade.cause = (reasons or [(NO_RESULT, JUDGE)])[0]
        grade.error = (f"only {earned} of {total} samples gave a usable {('score', 'distribution')[grade.expected is not None]} "
                       f"(min_samples={need}); first failure: {why}")
        grade.source = None
        return
    grade.flags = list(grade.flags) + ["partial_samples"]


@dataclass
class OrderVerdict:
    """One presentation order of a pairwise judgment."""

    prob_a: float | None
    votes: list[str | None]
    feedback: str
    mass: float | None
    forced: bool
    problems: list[str]
    partial: bool = False  # fewer samples than asked gave it (allowed by min_samples)
    causes: list[str] = field(default_factory=list)  # each problem's cause (JUDGE or TRANSPORT)

    @property
    def cause(self) -> str:
        """The cause of the first problem (the one an error names)."""
        return self.causes[0] if self.causes else JUDGE

    @property
    def judged(self) -> bool:
        return self.prob_a is not None or any(v is not None for v in self.votes)


def order_verdict(readings: Sequence[Reading], *, min_score_mass: float, allow_forced: bool,
                  min_samples: int | None = None) -> OrderVerdict:
    """p("A") (from the usable distributions), the parsed votes and why the rest did not count.
    An order that fewer than ``min_samples`` samples (None: all) gave its number has none."""
    found = _usable(readings, "answer", min_score_mass, allow_forced)
    usable, forced_used = found.probs, found.forced
    reasons = _failures(readings) + found.problems + _invalid(readings)
    problems, causes = [why for why, _ in reasons], [cause for _, cause in reasons]
    prob = sum(d[0] for d in usable) / len(usable) if usable else None
    votes = [None if r.error else r.result for r in readings]
    feedback = next((r.feedback for r in readings if not r.error), "")
    verdict = OrderVerdict(prob, votes, feedback, _mass(readings), forced_used, problems, causes=causes)  # type: ignore[arg-type]
    earned = len(usable) if prob is not None else sum(v is not None for v in votes)
    need = len(readings) if min_samples is None else min(min_samples, len(readings))
    if 0 < earned < need:
        verdict.problems = [f"only {earned} of {len(readings)} samples of this order gave a verdict "
                            f"(min_samples={need}); first failure: {(problems or [NO_RESULT])[0]}"]
        verdict.causes = causes[:1]
        verdict.prob_a, verdict.votes = None, [None] * len(readings)
    elif earned < len(readings) and earned:
        verdict.partial = True
    return verdict


def _side(prob: float | None, votes: Sequence[str | None]) -> str | None:
    if prob is not None:
        return "A" if prob > 0.5 else "B" if prob < 0.5 else None
    counted = [v for v in votes if v is not None]
    if not counted:
        return None
    share = sum(v == "A" for v in counted) / len(counted)
    return "A" if share > 0.5 else "B" if share < 0.5 else None


def _swapped(verdict: OrderVerdict) -> OrderVerdict:
    """The B-first order in the A-first order's terms ("B" there names the original A)."""
    flip = {"A": "B", "B": "A", None: None}
    return OrderVerdict(None if verdict.prob_a is None else 1.0 - verdict.prob_a, [flip[v] for v in verdict.votes],
                        verdict.feedback, verdict.mass, verdict.forced, verdict.problems, verdict.partial,
                        verdict.causes)


def finish_preference(first: OrderVerdict, second: OrderVerdict | None, truncated: bool,
                      allow_single_order: bool = False) -> Preference:
    """Combine the two orders (``second`` None: one order only, as asked with ``swap=False``)
    into a :class:`Preference`. When both were asked for and only one gave a verdict, the pair is
    unscorable unless ``allow_single_order`` (then it is flagged ``single_order``)."""
    swap = second is not None
    flags: list[str] = []
    if swap and first.judged != second.judged:  # type: ignore[union-attr]
        missing = second if first.judged else first
        if not allow_single_order:
            why = (missing.problems or ["no verdict"])[0]  # type: ignore[union-attr]
            which = "B-first" if first.judged else "A-first"
            return Preference(None, None, first.feedback, False, second.feedback, truncated,  # type: ignore[union-attr]
                              list(first.votes) + list(second.votes), # type: ignore[union-attr]
                              f"the {which} order gave no verdict ({why}); both orders are required "
                              f"(allow_single_order=False)", answer_mass=_mean([first.mass, second.mass]),  # type: ignore[union-attr]
                              cause=missing.cause)  # type: ignore[union-attr]
        flags.append("single_order")
    if first.partial or (second is not None and second.partial):
        flags.append("partial_samples")
    other = _swapped(second) if second is not None else OrderVerdict(None, [], "", None, False, [])
    votes = list(first.votes) + list(other.votes)
    probs = [p for p in (first.prob_a, other.prob_a) if p is not None]
    masses = [m for m in (first.mass, other.mass) if m is not None]
    mass = sum(masses) / len(masses) if masses else None
    forced = first.forced or other.forced
    if probs:
        prob_a = sum(probs) / len(probs)
        source = "forced" if forced else "parsed"
    elif any(v is not None for v in votes):
        counted = [v for v in votes if v is not None]
        prob_a = sum(v == "A" for v in counted) / len(counted)
        source = "parsed"
    else:
        problems = first.problems + other.problems
        causes = first.causes + other.causes
        return Preference(None, None, first.feedback, False, other.feedback, truncated, votes,
                          problems[0] if problems else "no parseable result in either order", answer_mass=mass,
                          cause=causes[0] if causes else JUDGE)
    pick1, pick2 = _side(first.prob_a, first.votes), _side(other.prob_a, other.votes)
    consistent = swap and pick1 is not None and pick1 == pick2
    winner = "A" if prob_a > 0.5 else "B" if prob_a < 0.5 else None
    return Preference(winner, prob_a, first.feedback, consistent, other.feedback, truncated, votes, None,
                      source=source, answer_mass=mass, flags=flags)


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def direct_preference(first: AnswerDistribution | None, second: AnswerDistribution | None, swap: bool,
                      truncated: bool, min_score_mass: float, allow_single_order: bool = False) -> Preference:
    """A ``direct`` mode preference from the answer distribution of each order."""
    orders = [order_verdict([Reading(None, "", first)], min_score_mass=min_score_mass, allow_forced=True)]
    if swap:
        orders.append(order_verdict([Reading(None, "", second)], min_score_mass=min_score_mass, allow_forced=True))
    for order in orders:
        order.votes = []  # direct mode writes no verdict to vote with
    pref = finish_preference(orders[0], orders[1] if swap else None, truncated, allow_single_order)
    if pref.error is None:
        pref.source = "direct"
    return pref


# -- checklists: one judgment per item, folded back into the row's grade -----------------------------------------
@dataclass
class Unit:
    """Which row a judgment belongs to, and for an explicit checklist, which of its items."""

    row: int
    checklist: Any = None
    item: int | None = None


def checklist_grade(checklist: Any, item_grades: Sequence[Grade]) -> Grade:
    """A row's grade from its items' grades: ``expected = 1 + 4 * agg`` with RaR's weighted sum
    (see :mod:`prometheus_reward.checklist`), ``items`` each item's result, provenance from the
    items (``forced`` when any scored item was); unscorable below ``min_items_frac``, with the
    cause of the first failed item."""
    values = [g.value for g in item_grades]
    agg = checklist.aggregate(values)
    items = [{"id": item.id, "criterion": item.criterion, "weight": item.weight, "value": g.value, "score": g.score,
              "source": g.source, "score_mass": g.score_mass, "error": g.error, "cause": g.cause}
             for item, g in zip(checklist.items, item_grades)]
    masses = [g.score_mass for g in item_grades if g.score_mass is not None]
    grade = Grade(
        expected=None if agg is None else 1.0 + 4.0 * agg,
        feedback="\n".join(f"[{item.id}] {g.feedback}" for item, g in zip(checklist.items, item_grades) if g.feedback),
        truncated=any(g.truncated for g in item_grades),
        score_mass=sum(masses) / len(masses) if masses else None,
        flags=list(item_grades[0].flags) if item_grades else [],
        items=items,
    )
    scored = [g for g in item_grades if g.value is not None]
    if agg is None:
        failed = [(f"item {item.id}: {g.error}", g.cause) for item, g in zip(checklist.items, item_grades)
                  if g.value is None]
        grade.error = (f"checklist: the scored items hold less than min_items_frac={checklist.min_items_frac:g} of "
                       f"the weight" + (f" ({failed[0][0]})" if failed else ""))
        grade.cause = failed[0][1] if failed else JUDGE  # the failure the error names
    elif any(g.forced for g in scored):
        grade.source = "forced"
    elif all(g.source == "direct" for g in scored):
        grade.source = "direct"
    else:
        grade.source = "parsed"
    return grade


def fold_units(grades: Sequence[Grade], units: Sequence[Unit]) -> list[Grade]:
    """One grade per row from one grade per judgment (explicit checklist rows fold their items)."""
    plain: dict[int, Grade] = {}
    items: dict[int, list[tuple[Unit, Grade]]] = {}
    for grade, unit in zip(grades, units):
        if unit.checklist is None:
            plain[unit.row] = grade
        else:
            items.setdefault(unit.row, []).append((unit, grade))
    for row, parts in items.items():
        plain[row] = checklist_grade(parts[0][0].checklist, [g for _, g in parts])
    return [plain[row] for row in sorted(plain)]
