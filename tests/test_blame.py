"""Blame on the judge side (issue 19): every unscorable Grade and Preference says who is to blame
(``response``, ``judge``, ``transport``), through ``Judge.grade`` / ``Judge.compare``; partial results
(``min_samples``, ``allow_single_order``) are refused unless allowed, then flagged; invalid verdicts
are named; one cut plan for judging and evaluator training, which never cuts a response to nothing.

The logic runs on the scripted evaluator; truncation on the tiny model's real tokenizer; transport
failures against a real HTTP server on loopback (the scripted OpenAI-compatible upstream of
tests/test_openai_backend.py).
"""

from __future__ import annotations

import json

import pytest

from prometheus_reward import Judge
from prometheus_reward.backends.base import AnswerDistribution
from prometheus_reward.checklist import Checklist, ChecklistItem
from prometheus_reward.training.data import read_examples
from prometheus_reward.training.sft import PromptRenderer
from prometheus_reward.truncation import RESPONSE_FLOOR

from conftest import QualityBackend, ScriptedBackend, section  # noqa: E402  (same folder)
from test_openai_backend import fast_backend  # noqa: E402

CONFIDENT = [0.0, 0.0, 0.1, 0.8, 0.1]


def _answer_a(prompt: str) -> str:
    return section(prompt, "###Response A:\n")


# -- response: the policy made the row unjudgeable ---------------------------------------------------------------
def test_an_unclosed_think_block_is_the_responses_fault_in_grades_and_preferences():
    judge = Judge(QualityBackend())
    ok, hidden = judge.grade(["q", "q"], ["q4: fine", "<think>they want a 5"], "helpfulness", mode="generate",
                             errors="return")
    assert ok.value == 4.0 and ok.cause is None
    assert hidden.value is None and hidden.cause == "response" and "unterminated <think>" in hidden.error
    assert "unterminated_reasoning" in hidden.flags
    pref, = judge.compare(["q"], ["q4: fine"], ["<think>B never finishes"], "helpfulness", mode="generate",
                          errors="return")
    assert pref.prob_a is None and pref.cause == "response" and "field 'response_b'" in pref.error
    assert "B:unterminated_reasoning" in pref.flags  # which side is to blame


def test_bad_rows_blame_the_policy_only_for_its_own_field():
    judge = Judge(QualityBackend())
    no_text, no_instruction = judge.grade(["q", None], [None, "q4: fine"], "helpfulness", mode="generate",
                                          errors="return")
    assert no_text.cause == "response" and "field 'response' must be a string" in no_text.error
    assert no_instruction.cause is None and "field 'instruction' must be a string" in no_instruction.error
    bad_rubric, = judge.grade(["q"], ["q4: fine"], ["no-such-preset"], mode="generate", errors="return")
    assert bad_rubric.error and bad_rubric.cause is None  # the user's input: neither party failed


# -- judge: the evaluator did not deliver ---------------------------------------------------------------------
def test_no_verdict_low_mass_and_nonfinite_logits_are_the_judges_fault():
    silent = Judge(ScriptedBackend(lambda p, i: "I cannot decide."), max_retries=1)
    grade, = silent.grade(["q"], ["r"], "helpfulness", mode="generate")
    assert grade.value is None and grade.cause == "judge" and grade.error == "no parseable result in the evaluator output"
    pref, = silent.compare(["q"], ["a"], ["b"], "helpfulness", mode="generate")
    assert pref.prob_a is None and pref.cause == "judge"

    thin = Judge(ScriptedBackend(lambda p, i: "Fine. [RESULT] 4", lambda prefix, c: AnswerDistribution([0.2] * 5, 1e-5)))
    grade, = thin.grade(["q"], ["r"], "helpfulness", mode="direct")
    assert grade.value is None and grade.cause == "judge" and "below min_score_mass" in grade.error
    nan = Judge(ScriptedBackend(probs=lambda prefix, c: [float("nan")] * len(c)))
    grade, = nan.grade(["q"], ["r"], "helpfulness", mode="direct")
    assert grade.value is None and grade.cause == "judge" and "non-finite" in grade.error
    pref, = nan.compare(["q"], ["a"], ["b"], "helpfulness", mode="direct")
    assert pref.prob_a is None and pref.cause == "judge" and "non-finite" in pref.error


def test_an_invalid_verdict_is_named_and_never_silently_forced():
    backend = ScriptedBackend(lambda p, i: "Superb. [RESULT] 7", lambda prefix, c: CONFIDENT)
    generate, = Judge(backend, max_retries=2).grade(["q"], ["r"], "helpfulness", mode="generate")
    assert generate.value is None and generate.cause == "judge" and backend.calls == 3  # re-sampled, then refused
    assert "invalid verdict '[RESULT] 7'" in generate.error
    strict, = Judge(backend, allow_forced=False).grade(["q"], ["r"], "helpfulness", mode="expected")
    assert strict.value is None and strict.cause == "judge" and "invalid verdict '[RESULT] 7'" in strict.error
    forced, = Judge(backend).grade(["q"], ["r"], "helpfulness", mode="expected")
    assert forced.value == pytest.approx(4.0) and forced.source == "forced"
    assert forced.flags == ["invalid_verdict"]  # the grade says it stands in for a verdict off the scale
    no_marker = ScriptedBackend(lambda p, i: "Superb.", lambda prefix, c: CONFIDENT)
    assert Judge(no_marker).grade(["q"], ["r"], "helpfulness", mode="expected")[0].flags == []  # a plain forced one


def test_a_failed_checklist_item_passes_its_cause_to_the_row():
    checklist = Checklist((ChecklistItem("Gives the dose", 2.0), ChecklistItem("Cites a source", 1.0)))
    backend = ScriptedBackend(lambda p, i: "Vague." if "Cites a source" in p else "Yes. [RESULT] 5")
    grade, = Judge(backend, max_retries=0).grade(["q"], ["r"], checklist, mode="generate")
    assert grade.value is None and grade.cause == "judge" and "item " in grade.error
    assert [item["cause"] for item in grade.items] == [None, "judge"]


# -- nothing partial passes as whole, through the Judge --------------------------------------------------------
def test_min_samples_through_the_judge():
    def reply(prompt, i):
        return "Rambles." if i % 3 == 2 else "Good. [RESULT] 4"  # the second of every three samples fails

    strict = Judge(ScriptedBackend(reply), max_retries=0)
    grade, = strict.grade(["q"], ["r"], "helpfulness", mode="generate", samples=3)
    assert grade.value is None and grade.cause == "judge" and "only 2 of 3 samples" in grade.error
    lenient = strict.replace(min_samples=2)
    assert lenient.min_samples == 2 and lenient.config.judging_rules()["min_samples"] == 2
    grade, = lenient.grade(["q"], ["r"], "helpfulness", mode="generate", samples=3)
    assert grade.value == 4.0 and grade.flags == ["partial_samples"] and grade.cause is None
    with pytest.raises(ValueError, match="min_samples must be positive"):
        strict.replace(min_samples=0)


def test_allow_single_order_through_the_judge_keeps_the_verdicts_flags():
    def reply(prompt, i):  # only the A-first order (where "alpha [RESULT] 5" is response A) gets a verdict
        return "A is better. [RESULT] A" if _answer_a(prompt).startswith("alpha") else "Hmm."

    strict = Judge(ScriptedBackend(reply), max_retries=0)
    pref, = strict.compare(["q"], ["alpha [RESULT] 5"], ["beta"], "helpfulness", mode="generate")
    assert pref.prob_a is None and pref.cause == "judge" and "B-first order gave no verdict" in pref.error
    assert pref.flags == ["A:result_marker"]
    lenient = strict.replace(allow_single_order=True)
    pref, = lenient.compare(["q"], ["alpha [RESULT] 5"], ["beta"], "helpfulness", mode="generate")
    assert pref.prob_a == 1.0 and pref.error is None and pref.cause is None
    assert pref.flags == ["A:result_marker", "single_order"]  # the guards' flag and the verdict's, both kept
    # direct mode: one order's distribution failed
    probs = lambda prefix, c: [0.9, 0.1] if _answer_a(prefix).startswith("alpha") else [float("nan")] * 2
    direct = Judge(ScriptedBackend(probs=probs))
    assert direct.compare(["q"], ["alpha"], ["beta"], "helpfulness", mode="direct")[0].prob_a is None
    pref, = direct.replace(allow_single_order=True).compare(["q"], ["alpha"], ["beta"], "helpfulness", mode="direct")
    assert pref.prob_a == pytest.approx(0.9) and pref.flags == ["single_order"]


def test_min_samples_in_a_pairwise_order():
    replies = iter(["[RESULT] A", "Hmm.", "[RESULT] B", "[RESULT] B"])  # A-first: 1 of 2 samples; B-first: 2 of 2
    judge = Judge(ScriptedBackend(lambda p, i: next(replies)), max_retries=0, min_samples=1)
    pref, = judge.compare(["q"], ["a"], ["b"], "helpfulness", mode="generate", samples=2)
    assert pref.prob_a == 1.0 and pref.flags == ["partial_samples"]


# -- transport: the request did not deliver (a real HTTP server on loopback) -----------------------------------
def test_failed_and_timed_out_requests_are_the_transports_fault(upstream):
    script, server = upstream
    judge = Judge(fast_backend(server.url, max_attempts=2), max_retries=0)
    script.fail = 1000
    for mode in ("generate", "expected", "direct"):
        grade, = judge.grade(["q"], ["r"], "helpfulness", mode=mode, max_new_tokens=16)
        assert grade.value is None and grade.cause == "transport" and "503" in grade.error, mode
    pref, = judge.compare(["q"], ["a"], ["b"], "helpfulness", mode="direct")
    assert pref.prob_a is None and pref.cause == "transport"
    script.fail, script.delay = 0, 3.0
    slow = Judge(fast_backend(server.url, max_attempts=1, timeout=0.5))
    grade, = slow.grade(["q"], ["r"], "helpfulness", mode="direct")
    assert grade.value is None and grade.cause == "transport" and "ReadTimeout" in grade.error
    script.delay = 0.0
    assert judge.grade(["q"], ["r"], "helpfulness", mode="direct")[0].cause is None  # healthy again: scored


def test_a_server_without_logprobs_is_the_transports_fault_where_they_were_needed(upstream):
    script, server = upstream
    script.logprobs = False
    script.text = "Helpful, but no verdict written."  # expected mode must force a reading: its mass is unmeasured
    judge = Judge(fast_backend(server.url), max_retries=0)
    grade, = judge.grade(["q"], ["r"], "helpfulness", mode="expected", max_new_tokens=16)
    assert grade.value is None and grade.cause == "transport" and "could not be measured" in grade.error
    script.reader = lambda prompt: ("great", None)  # a greedy answer that is no score: nothing to read it by
    grade, = judge.grade(["q"], ["r"], "helpfulness", mode="direct")
    assert grade.value is None and grade.cause == "transport" and "no logprobs" in grade.error
    script.text = "Fine. [RESULT] 4"  # where a verdict was written, no logprobs were needed
    assert judge.grade(["q"], ["r"], "helpfulness", mode="generate", max_new_tokens=16)[0].value == 4.0


# -- truncation: one cut plan, a response never cut to nothing ------------------------------------------------
INSTRUCTION = "Background " * 300 + "FINAL QUESTION: why?"
RUBRIC = "Is it short?"


def test_the_judge_cuts_the_reference_first_and_keeps_the_response_floor(tiny_judge):
    count = lambda text: tiny_judge.backend.count_tokens([text])[0]
    response, reference = "blah " * 300, "ref " * 1500
    full = count(Judge(tiny_judge.backend).absolute_prompts([INSTRUCTION], [response], RUBRIC, [reference])[0][0])
    budget = full - 1000  # the reference alone can give that much
    (prompt, truncated), = Judge(tiny_judge.backend, max_input_tokens=budget).absolute_prompts(
        [INSTRUCTION], [response], RUBRIC, [reference])
    assert truncated and count(prompt) <= budget
    assert response.strip() in prompt and INSTRUCTION in prompt  # untouched: the reference gave way first
    assert prompt.count("ref ") < 1500
    bare = count(Judge(tiny_judge.backend).absolute_prompts(["FINAL QUESTION: why?"], ["ok"], RUBRIC)[0][0])
    tight = Judge(tiny_judge.backend, max_input_tokens=bare + 120)  # no room for the reference nor the whole instruction
    (prompt, _), = tight.absolute_prompts([INSTRUCTION], [response], RUBRIC, [reference])
    kept = section(prompt, "###Response to evaluate:\n")
    assert "FINAL QUESTION: why?" in prompt and "ref " not in prompt
    assert count(kept) >= RESPONSE_FLOOR - 2 and kept.startswith("blah")  # cut, never below its floor


def test_a_prompt_that_cannot_fit_blames_the_response_only_when_it_alone_is_too_long(tiny_judge):
    count = lambda text: tiny_judge.backend.count_tokens([text])[0]
    bare = count(Judge(tiny_judge.backend).absolute_prompts(["q"], ["ok"], RUBRIC)[0][0])
    judge = Judge(tiny_judge.backend, max_input_tokens=bare + 20, min_score_mass=0.0)
    scored, short, long = judge.grade(["q"] * 3, ["ok", "word " * 40, "word " * (bare + 100)], RUBRIC, mode="direct")
    assert scored.error is None
    # 40 tokens fit the budget on their own; the template leaves them no room: the judge's limit
    assert short.value is None and short.cause == "judge" and "template and rubric are too big" in short.error
    assert long.value is None and long.cause == "response" and "field 'response' alone has" in long.error
    assert "too_long" in long.flags and short.truncated and long.truncated
    pref, = judge.compare(["q"], ["ok"], ["word " * (bare + 100)], RUBRIC, mode="direct")
    assert pref.cause == "response" and "B:too_long" in pref.flags
    # an originally empty response is still graded: the policy wrote nothing, a real answer
    assert judge.grade(["q"], [""], RUBRIC, mode="direct")[0].error is None


def test_training_prompts_follow_the_same_cut_plan_byte_for_byte(tiny_judge, tiny_model_dir, monkeypatch):
    renderer = PromptRenderer(tiny_judge.backend.tokenizer, str(tiny_model_dir), model_config=tiny_judge.backend.model.config)
    row = {"instruction": INSTRUCTION, "response": "blah " * 200, "reference_answer": "ref " * 800,
           "rubric": RUBRIC, "feedback": "Short enough.", "score": 4}
    (example,), _ = read_examples([row])
    budget = renderer.encode(example)["prompt_tokens"] - 500
    prompt, truncated = renderer.render(example, budget)
    assert truncated and "blah " * 199 in prompt and prompt.count("ref ") < 800  # the reference went first
    (expected, _), = Judge(tiny_judge.backend, max_input_tokens=budget).absolute_prompts(
        [example.instruction], [example.response], example.rubric, [example.reference_answer])
    assert prompt == expected
    pair = {"instruction": INSTRUCTION, "response_a": "alpha " * 150, "response_b": "beta " * 150,
            "reference_answer": "ref " * 800, "rubric": RUBRIC, "feedback": "A is better.", "winner": "A"}
    (given, *_), _ = read_examples([pair])
    budget = len(tiny_judge.backend.encode(renderer.render(given)[0])) - 500
    seen: list[str] = []
    original = tiny_judge.backend.read_answers
    monkeypatch.setattr(tiny_judge.backend, "read_answers",
                        lambda prompts, *a, **k: seen.extend(prompts) or original(prompts, *a, **k))
    Judge(tiny_judge.backend, max_input_tokens=budget).compare(
        [given.instruction], [given.response_a], [given.response_b], given.rubric, [given.reference_answer], mode="direct")
    rendered, truncated = renderer.render(given, budget)
    assert truncated and seen[0] == rendered and "alpha " * 149 in rendered and "beta " * 149 in rendered
    assert json.dumps(seen[0]).count("ref ") < 800
