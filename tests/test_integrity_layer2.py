"""Reward integrity, layer 2 (issue 19): who is to blame for a missing judgment, and nothing partial
passes as whole. Each test here fails on the code before that issue: a survivor's score passed off
as three samples', one presentation order passed off as two, a failed pitfall judgment paying the
highest reward, a checklist score of -3 on a 1-5 scale, a forced reading of unmeasured mass passing
the floor, a response truncated to nothing and graded, and an unjudgeable row paying more than a
bad one.
"""

from __future__ import annotations

import pytest

from prometheus_reward.backends.base import AnswerDistribution
from prometheus_reward.blame import CircuitBreaker, JudgeOutage, fill
from prometheus_reward.checklist import Checklist, ChecklistItem
from prometheus_reward.grades import Grade
from prometheus_reward.truncation import ABSOLUTE_CUTS, RESPONSE_FLOOR, PromptTooLong, fit_prompt
from prometheus_reward.verdicts import Reading, finish_grade, finish_preference, order_verdict

CONFIDENT = [0.0, 0.0, 0.1, 0.8, 0.1]


def _grade(readings, **kw):
    return finish_grade(Grade(), readings, mode=kw.pop("mode", "generate"), min_score_mass=kw.pop("min_score_mass", 0.1),
                        allow_forced=kw.pop("allow_forced", True), **kw)


# -- samples: every one must earn the number -----------------------------------------------------------------------
def test_one_survivor_of_three_samples_is_not_a_three_sample_score():
    readings = [Reading(4, "ok"), Reading(None, "", error="request failed: 503"), Reading(None, "rambles")]
    grade = _grade(readings)
    assert grade.value is None and grade.source is None
    assert grade.error.startswith("only 1 of 3 samples gave a usable score (min_samples=3)")
    assert "503" in grade.error  # the first failure is named
    allowed = _grade(readings, min_samples=1)
    assert allowed.value == 4.0 and "partial_samples" in allowed.flags and allowed.error is None
    whole = _grade([Reading(4, "ok"), Reading(5, "ok")])
    assert whole.value == 4.5 and whole.flags == []


def test_expected_mode_counts_the_distributions_that_earned_the_number():
    good = AnswerDistribution.from_masses(CONFIDENT)
    thin = AnswerDistribution([0.2] * 5, 1e-5)  # a sample whose evaluator was not answering
    grade = _grade([Reading(4, "a", good), Reading(4, "b", thin)], mode="expected")
    assert grade.value is None and "only 1 of 2 samples gave a usable distribution" in grade.error
    assert "below min_score_mass" in grade.error


# -- pairwise: both orders ----------------------------------------------------------------------------------------
def test_a_preference_needs_both_orders_unless_single_order_is_allowed():
    first = order_verdict([Reading("A", "A is better", AnswerDistribution.from_masses([0.9, 0.1]))],
                          min_score_mass=0.1, allow_forced=True)
    failed = order_verdict([Reading(None, "", error="request timed out")], min_score_mass=0.1, allow_forced=True)
    pref = finish_preference(first, failed, truncated=False)
    assert pref.prob_a is None and pref.winner is None
    assert "B-first order gave no verdict (request timed out)" in pref.error and "allow_single_order" in pref.error
    lenient = finish_preference(first, failed, truncated=False, allow_single_order=True)
    assert lenient.prob_a == pytest.approx(0.9) and lenient.flags == ["single_order"] and not lenient.consistent
    asked_once = finish_preference(first, None, truncated=False)  # swap=False: one order was all that was asked
    assert asked_once.prob_a == pytest.approx(0.9) and asked_once.flags == []


# -- forced readings of unmeasured mass ---------------------------------------------------------------------------
def test_a_forced_reading_whose_mass_was_not_measured_needs_the_floor_at_zero():
    unmeasured = AnswerDistribution(CONFIDENT, None)  # a server that returned no logprobs to measure it by
    grade = _grade([Reading(None, "no verdict written", unmeasured, forced=True)], mode="expected")
    assert grade.value is None and "mass could not be measured" in grade.error
    opened = _grade([Reading(None, "no verdict written", unmeasured, forced=True)], mode="expected", min_score_mass=0.0)
    assert opened.value == pytest.approx(4.0) and opened.source == "forced"


# -- checklists: a missing item is its worst case, the aggregate stays on the scale -------------------------------
def test_a_failed_pitfall_judgment_never_pays_the_best_reward():
    checklist = Checklist((ChecklistItem("Gives the dose", 5.0), ChecklistItem("Says to stop the medication", -2.0)),
                          min_items_frac=0.5)
    committed, avoided = checklist.aggregate([5, 5]), checklist.aggregate([5, 1])
    unjudged = checklist.aggregate([5, None])
    assert unjudged == pytest.approx(committed) and committed < avoided  # counted as committed, never as avoided
    assert unjudged < 1.0


def test_a_checklist_aggregate_is_always_on_the_scale():
    checklist = Checklist((ChecklistItem("Gives the dose", 1.0), ChecklistItem("Says to stop", -4.0)), min_items_frac=0.5)
    only_pitfall = checklist.aggregate([None, 5])  # only the pitfall was judged, and it was committed
    assert only_pitfall == 0.0
    for scores in ([1, 5], [5, 5], [5, 1], [None, 1], [3, 3]):
        agg = checklist.aggregate(scores)
        assert agg is None or 0.0 <= agg <= 1.0


# -- truncation never grades an emptied response ------------------------------------------------------------------
def _words(text: str) -> int:
    return len(text.split())


def _cut(text: str, n: int, keep: str) -> str:
    words = text.split()
    return " ".join(words[:n] if keep == "head" else words[len(words) - n:])


def test_truncation_cuts_the_reference_and_instruction_first_and_keeps_a_response_floor():
    fields = {"instruction": "i " * 100 + "QUESTION", "response": "r " * 300, "reference_answer": "g " * 200}
    render = lambda f: f"TEMPLATE {f['instruction']} | {f['response']} | {f['reference_answer']} | RUBRIC"
    prompt, truncated, used = fit_prompt(fields, render, _words, _cut, budget=400, groups=ABSOLUTE_CUTS)
    assert truncated and _words(prompt) <= 400
    assert used["response"] == fields["response"]  # the reference gave way first
    prompt, _, used = fit_prompt(fields, render, _words, _cut, budget=150, groups=ABSOLUTE_CUTS)
    assert used["reference_answer"] == "" and used["instruction"].endswith("QUESTION")
    assert _words(used["response"]) >= RESPONSE_FLOOR and _words(prompt) <= 150
    with pytest.raises(PromptTooLong, match="floors"):  # no room for the response's floor: unscorable, not emptied
        fit_prompt(fields, render, _words, _cut, budget=RESPONSE_FLOOR, groups=ABSOLUTE_CUTS)


# -- blame: floors and fills, and the breaker ---------------------------------------------------------------------
def test_response_caused_rows_get_the_floor_and_judge_caused_rows_a_signal_free_fill():
    rewards, how = fill([1.0, 0.0, None, None, None], [None, None, "response", "judge", "transport"],
                        groups=["p", "p", "p", "p", "q"], floor=0.0, neutral=0.5)
    assert rewards == [1.0, 0.0, 0.0, 0.5, 0.5] and how == [None, None, "floor", "fill", "fill"]
    # the floor is never above a scored bad answer: being unjudgeable never pays more
    assert rewards[2] <= min(r for r, h in zip(rewards, how) if h is None)


def test_the_breaker_trips_on_judge_failures_not_on_policy_failures():
    breaker = CircuitBreaker(window=3, threshold=0.5)
    for _ in range(5):
        breaker.record(["response", "response", None], [None] * 3)  # the policy's doing: no trip
    breaker.record(["judge", None], ["no verdict after 2 retries"])
    breaker.record(["transport", "transport"], ["ReadTimeout", "ReadTimeout"])
    with pytest.raises(JudgeOutage, match="ReadTimeout; no verdict after 2 retries"):
        breaker.record(["judge", "judge"], [None, None])
    CircuitBreaker(window=0).record(["judge"] * 10)  # off
