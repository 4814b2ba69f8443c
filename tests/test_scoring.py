from __future__ import annotations

import math

import numpy as np
import pytest

from prometheus_reward.scoring import (
    Normalizer,
    combine_orders,
    expected_score,
    mean_probs,
    pairwise_reward,
)
from prometheus_reward.truncation import PromptTooLong, fit_prompt, water_fill


def test_expected_score():
    assert expected_score([1, 0, 0, 0, 0]) == 1.0
    assert expected_score([0, 0, 0, 0, 2]) == 5.0  # renormalised
    assert expected_score([0.2] * 5) == pytest.approx(3.0)
    assert expected_score(None) is None
    assert expected_score([0, 0, 0, 0, 0]) is None
    assert expected_score([0.5, 0.5]) is None


def test_mean_probs():
    assert mean_probs([[1, 0, 0, 0, 0], None, [0, 0, 0, 0, 1]]) == [0.5, 0, 0, 0, 0.5]
    assert mean_probs([None]) is None


@pytest.mark.parametrize(
    "method,expected",
    [("linear", [0.0, 0.5, 1.0]), ("symmetric", [-1.0, 0.0, 1.0]), ("centered", [-2.0, 0.0, 2.0]), ("identity", [1.0, 3.0, 5.0])],
)
def test_static_normalizers(method, expected):
    assert Normalizer(method)([1, 3, 5]) == expected
    assert Normalizer(method)([None, 3])[0] is None


def test_zscore_is_per_rubric_and_running():
    norm = Normalizer("zscore")
    first = norm([2.0, 4.0, None], keys=["a", "a", "a"])
    assert first[2] is None
    assert first[0] == pytest.approx(-1 / math.sqrt(2), rel=1e-4)  # mean 3, std sqrt(2)
    assert first[1] == pytest.approx(1 / math.sqrt(2), rel=1e-4)
    # another rubric key has its own statistics: a single score is centred on 3
    assert norm([5.0], keys=["b"]) == [2.0]
    second = norm([3.0], keys=["a"])
    values = np.array([2.0, 4.0, 3.0])
    assert second[0] == pytest.approx((3.0 - values.mean()) / values.std(ddof=1), rel=1e-4)
    n, mean, std = norm.stats("a")
    assert (n, mean) == (3, pytest.approx(3.0))
    with pytest.raises(ValueError):
        Normalizer("minmax")  # type: ignore[arg-type]


def test_pairwise_transforms_and_order_combination():
    assert pairwise_reward(0.75) == 0.75
    assert pairwise_reward(0.75, "symmetric") == 0.5
    assert pairwise_reward(0.5, "logit") == pytest.approx(0.0)
    assert pairwise_reward(1.0, "logit") == pytest.approx(math.log(0.9999 / 0.0001))
    assert pairwise_reward(None) is None
    assert combine_orders(0.8, 0.6) == pytest.approx(0.7)
    assert combine_orders(None, 0.6) == 0.6
    assert combine_orders(None, None) is None


def test_water_fill():
    assert water_fill([100, 20], 50) == [50, 20]
    assert water_fill([100, 20], 100) == [10, 10]
    assert water_fill([10, 10], 0) == [10, 10]
    assert water_fill([10, 10], 100) == [0, 0]
    new = water_fill([70, 50, 10], 45)
    assert sum([70, 50, 10]) - sum(new) >= 45 and new[2] == 10


def _words(text: str) -> int:
    return len(text.split())


def _cut(text: str, n: int, keep: str) -> str:
    words = text.split()
    return " ".join(words[:n] if keep == "head" else words[len(words) - n :])


def test_fit_prompt_cuts_response_then_reference_then_instruction_head():
    fields = {"instruction": "i1 i2 i3 i4 QUESTION", "response": "r " * 50, "reference_answer": "g " * 20}
    render = lambda f: f"T T {f['instruction']} || {f['response']} || {f['reference_answer']} || RUBRIC RUBRIC"
    prompt, truncated, used = fit_prompt(fields, render, _words, _cut, budget=40,
                                         groups=[(("response",), "head"), (("reference_answer",), "head"), (("instruction",), "tail")])
    assert truncated and _words(prompt) <= 40
    assert used["reference_answer"] == fields["reference_answer"].strip() or used["reference_answer"] == fields["reference_answer"]
    assert "RUBRIC RUBRIC" in prompt and "QUESTION" in prompt
    # tighter: the response is emptied, then the reference is cut, the rubric still intact
    prompt, truncated, used = fit_prompt(fields, render, _words, _cut, budget=14,
                                         groups=[(("response",), "head"), (("reference_answer",), "head"), (("instruction",), "tail")])
    assert used["response"] == "" and _words(prompt) <= 14 and prompt.endswith("RUBRIC RUBRIC")
    # tightest: the start of the instruction goes, its end stays
    prompt, _, used = fit_prompt(fields, render, _words, _cut, budget=10,
                                 groups=[(("response",), "head"), (("reference_answer",), "head"), (("instruction",), "tail")])
    assert used["instruction"].endswith("QUESTION") and not used["instruction"].startswith("i1")
    with pytest.raises(PromptTooLong):
        fit_prompt(fields, render, _words, _cut, budget=5,
                   groups=[(("response",), "head"), (("reference_answer",), "head"), (("instruction",), "tail")])


def test_fit_prompt_cuts_longer_of_two_responses_first():
    fields = {"a": "a " * 60, "b": "b " * 10}
    render = lambda f: f"{f['a']} | {f['b']}"
    _, truncated, used = fit_prompt(fields, render, _words, _cut, budget=50, groups=[(("a", "b"), "head")])
    assert truncated
    assert _words(used["b"]) == 10 and _words(used["a"]) < 60
