"""Judge + transformers backend on real (tiny random) models; retry/swap logic on a scripted backend."""

from __future__ import annotations

import math
from typing import Sequence

import pytest
import torch

from prometheus_reward import Grade, Judge
from prometheus_reward.backends.base import SamplingParams
from prometheus_reward.backends.tokens import plan_answer_tokens
from prometheus_reward.backends.transformers import TransformersBackend
from prometheus_reward.rows import RowError

from conftest import ScriptedBackend  # noqa: E402  (same folder)

LONG = " ".join(f"word{i}" for i in range(300))
INSTRUCTIONS = ["Say hi.", "Explain photosynthesis in one paragraph. " * 6, "What is 2+2?", "Summarise: " + LONG]
RESPONSES = ["Hello!", "Plants use light to make sugar. " * 10, "4", "A long list of words."]


def _close(a: Sequence[float], b: Sequence[float], tol: float = 2e-4) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b))


def test_direct_mode_distribution(tiny_judge):
    grades = tiny_judge.grade(INSTRUCTIONS, RESPONSES, "helpfulness", mode="direct")
    assert len(grades) == 4
    for grade in grades:
        assert grade.error is None and grade.feedback == "" and not grade.truncated
        assert math.isclose(sum(grade.probs), 1.0, rel_tol=1e-6)
        assert 1.0 <= grade.expected <= 5.0
        assert grade.score == max(range(5), key=lambda k: grade.probs[k]) + 1
        assert grade.value == grade.expected
    # different rows give different distributions: the prompt really reaches the model
    assert len({round(g.expected, 6) for g in grades}) == 4


def test_left_padded_batches_match_single_rows(tiny_judge):
    """Rows of very different lengths (beyond the tiny model's 128-token sliding window) padded
    together must score like each row alone, and like any other batch split."""
    backend = tiny_judge.backend
    budget = backend.max_forward_tokens
    try:
        backend.max_forward_tokens = 100_000  # one padded batch
        batched = tiny_judge.grade(INSTRUCTIONS, RESPONSES, "helpfulness", mode="direct")
        backend.max_forward_tokens = 1500  # several batches
        split = tiny_judge.grade(INSTRUCTIONS, RESPONSES, "helpfulness", mode="direct")
    finally:
        backend.max_forward_tokens = budget
    assert backend.stats.batch_sizes[-1] < len(INSTRUCTIONS)
    single = [tiny_judge.grade([i], [r], "helpfulness", mode="direct")[0] for i, r in zip(INSTRUCTIONS, RESPONSES)]
    for a, b, c in zip(batched, single, split):
        assert _close(a.probs, b.probs) and _close(a.probs, c.probs)


def test_generate_and_expected_modes_with_samples(tiny_judge):
    grades = tiny_judge.grade(INSTRUCTIONS[:2], RESPONSES[:2], "helpfulness", mode="expected", samples=2, max_new_tokens=6)
    for grade in grades:
        assert len(grade.samples) == 2
        assert grade.feedback != ""  # the random model writes something
        # it never writes a parseable result: the distribution is read after an appended marker
        assert grade.expected is not None and math.isclose(sum(grade.probs), 1.0, rel_tol=1e-6)
    generated = tiny_judge.grade(INSTRUCTIONS[:2], RESPONSES[:2], "helpfulness", mode="generate", max_new_tokens=4)
    for grade in generated:
        assert grade.score is None and grade.value is None
        assert grade.error == "no parseable result in the evaluator output"


def test_seeded_generation_is_deterministic(tiny_judge):
    kwargs = dict(mode="generate", max_new_tokens=8, seed=123)
    first = tiny_judge.grade(INSTRUCTIONS[:3], RESPONSES[:3], "honesty", **kwargs)
    second = tiny_judge.grade(INSTRUCTIONS[:3], RESPONSES[:3], "honesty", **kwargs)
    other = tiny_judge.grade(INSTRUCTIONS[:3], RESPONSES[:3], "honesty", mode="generate", max_new_tokens=8, seed=7)
    assert [g.feedback for g in first] == [g.feedback for g in second]
    assert [g.feedback for g in first] != [g.feedback for g in other]


def test_bad_input_names_row_and_field(tiny_judge):
    with pytest.raises(RowError, match=r"row 1: field 'response' must be a string, got None"):
        tiny_judge.grade(["a", "b"], ["ok", None], "helpfulness", mode="direct")
    with pytest.raises(ValueError, match=r"row 0: field 'instruction' must be a string, got int"):
        tiny_judge.grade([3], ["ok"], "helpfulness", mode="direct")
    with pytest.raises(ValueError, match=r"row 1: field 'reference_answer'"):
        tiny_judge.grade(["a", "b"], ["x", "y"], "helpfulness", reference_answers=["r", 5], mode="direct")
    with pytest.raises(ValueError, match=r"row 0: field 'rubric'"):
        tiny_judge.grade(["a"], ["x"], [{"criteria": "c"}], mode="direct")
    with pytest.raises(ValueError, match="3 values for 2 rows"):
        tiny_judge.grade(["a", "b"], ["x", "y"], ["helpfulness"] * 3, mode="direct")
    # errors="return": the bad row is reported, the others are graded
    grades = tiny_judge.grade(["a", "b", "c"], ["ok", None, ""], "helpfulness", mode="direct", errors="return")
    assert grades[1].error == "row 1: field 'response' must be a string, got None" and grades[1].value is None
    assert grades[0].value is not None
    assert grades[2].value is not None  # an empty response is graded like any other


def test_per_row_rubrics_and_references(tiny_judge):
    rubrics = ["helpfulness", {"criteria": "Brief?", "descriptions": ["no"] * 4 + ["yes"]}, "Free text rubric."]
    prompts = tiny_judge.absolute_prompts(["q1", "q2", "q3"], ["r1", "r2", "r3"], rubrics, ["gold", None, "gold3"])
    assert "Does the model provide relevant and useful" in prompts[0][0]
    assert "###Reference Answer (Score 5):\ngold\n" in prompts[0][0]
    assert "[Brief?]\nScore 1: no" in prompts[1][0] and "###Reference Answer" not in prompts[1][0]
    assert "###Score Rubrics:\nFree text rubric.\n\n###Feedback: " in prompts[2][0]


def test_truncation_keeps_template_rubric_and_instruction_end(tiny_judge):
    rubric = "child_readability criteria: every word must be short."
    instruction = "Background " * 400 + "FINAL QUESTION: why?"
    response = "blah " * 2000
    reference = "ref " * 1500
    budget = 700
    judge = Judge(tiny_judge.backend, max_input_tokens=budget, seed=0, min_score_mass=0.0)
    (prompt, truncated), = judge.absolute_prompts([instruction], [response], rubric, [reference])
    assert truncated
    assert judge.backend.count_tokens([prompt])[0] <= budget
    assert prompt.rstrip().endswith("###Score Rubrics:\n" + rubric + "\n\n###Feedback:")
    assert "FINAL QUESTION: why?" in prompt and "###Task Description:" in prompt
    # the reference goes first (issue 19's cut plan): with a moderate budget the response survives whole
    (prompt2, truncated2), = Judge(tiny_judge.backend, max_input_tokens=1400).absolute_prompts(
        [instruction[-200:]], ["blah " * 300], rubric, [reference]
    )
    assert truncated2 and ("blah " * 299) + "blah" in prompt2 and 0 < prompt2.count("ref ") < 1500
    grade = judge.grade([instruction], [response], rubric, [reference], mode="direct")[0]
    assert grade.truncated and grade.value is not None
    # nothing fits when the template and rubric alone exceed the budget: unscorable, not an exception
    tiny = Judge(tiny_judge.backend, max_input_tokens=50).grade(["q"], ["r"], "helpfulness", mode="direct")[0]
    assert tiny.value is None and tiny.truncated and "more than the 50 available" in tiny.error


def test_default_budget_reserves_new_tokens(tiny_judge):
    backend = tiny_judge.backend
    assert tiny_judge._budget("generate", SamplingParams(max_new_tokens=1024)) == backend.context_length - 1024
    assert tiny_judge._budget("direct", SamplingParams()) == backend.context_length - 8


def test_compare_direct_averages_both_orders(tiny_judge):
    backend = tiny_judge.backend
    prefs = tiny_judge.compare(INSTRUCTIONS[:3], RESPONSES[:3], RESPONSES[1:4], "helpfulness", mode="direct")
    from prometheus_reward.templates import REL_SYSTEM_PROMPT, relative_prompt

    for row, pref in enumerate(prefs):
        ab = backend.format(REL_SYSTEM_PROMPT, relative_prompt(INSTRUCTIONS[row], RESPONSES[row], RESPONSES[row + 1], "helpfulness"))
        ba = backend.format(REL_SYSTEM_PROMPT, relative_prompt(INSTRUCTIONS[row], RESPONSES[row + 1], RESPONSES[row], "helpfulness"))
        p_ab, p_ba = [d.probs for d in backend.read_answers([ab, ba], ["A", "B"])]
        assert pref.prob_a == pytest.approx((p_ab[0] + p_ba[1]) / 2, abs=1e-5)
        assert pref.winner == ("A" if pref.prob_a > 0.5 else "B")
        assert pref.consistent == ((p_ab[0] > 0.5) == (p_ba[1] > 0.5))
    one_order = tiny_judge.compare(INSTRUCTIONS[:1], RESPONSES[:1], RESPONSES[1:2], "helpfulness", mode="direct", swap=False)[0]
    assert one_order.consistent is False and one_order.prob_a is not None


@pytest.mark.parametrize("prefix_sharing", [False, True])
def test_out_of_memory_splits_the_batch(tiny_judge, monkeypatch, prefix_sharing):
    """Both forward paths (plain padded batches and shared-prefix batches) halve a batch that
    runs out of memory and still read every row as before."""
    backend = tiny_judge.backend
    monkeypatch.setattr(backend, "prefix_sharing", prefix_sharing)
    reference = tiny_judge.grade(INSTRUCTIONS, RESPONSES, "helpfulness", mode="direct")
    name = "_shared_last_logits" if prefix_sharing else "_last_logits"
    original = getattr(backend, name)
    calls = []

    def flaky(*args):
        rows = args[-2]  # rows (plain) or suffixes (shared): the batch either way
        calls.append(len(rows))
        if len(rows) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(*args)

    monkeypatch.setattr(backend, name, flaky)
    budget, splits = backend.max_forward_tokens, backend.stats.oom_splits
    backend.max_forward_tokens = 100_000  # all rows in one batch, which then "runs out of memory"
    try:
        recovered = tiny_judge.grade(INSTRUCTIONS, RESPONSES, "helpfulness", mode="direct")
    finally:
        backend.max_forward_tokens = budget
    assert backend.stats.oom_splits > splits and calls[0] > 1 and 1 in calls
    for a, b in zip(reference, recovered):
        assert _close(a.probs, b.probs)


def test_lora_adapter_changes_the_judge(tiny_model_dir, tiny_judge, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    adapted = Judge.from_pretrained(str(tiny_model_dir), adapter=str(tmp_path / "adapter"), dtype="float32", min_score_mass=0.0)
    assert adapted.backend.revision.endswith(str(tmp_path / "adapter"))
    before = tiny_judge.grade(INSTRUCTIONS[:2], RESPONSES[:2], "helpfulness", mode="direct")
    after = adapted.grade(INSTRUCTIONS[:2], RESPONSES[:2], "helpfulness", mode="direct")
    assert not _close(before[0].probs, after[0].probs, tol=1e-6)


def test_answer_tokens_for_sentencepiece_and_byte_level_bpe(tiny_judge):
    lead, ids, groups = plan_answer_tokens(tiny_judge.backend.tokenizer, "12345")
    tok = tiny_judge.backend.tokenizer
    assert tok.decode(lead) == "[RESULT] "  # Gemma writes the space as its own piece
    assert [tok.decode([ids[g[0]]]).strip() for g in groups] == list("12345")

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = [f"Feedback: fine. [RESULT] {d}\nAnswer:\n[RESULT] A or B" for d in "12345"] * 50
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=bpe)
    lead, ids, groups = plan_answer_tokens(fast, "12345")
    assert fast.decode(lead) == "[RESULT]"  # the space travels with the digit in byte-level BPE
    firsts = [fast.convert_ids_to_tokens(ids[g[0]]) for g in groups]
    assert len(set(firsts)) == 5 and all(t.endswith(d) for t, d in zip(firsts, "12345"))
    lead_ab, _, groups_ab = plan_answer_tokens(fast, "AB")
    assert fast.decode(lead_ab) == "[RESULT]" and len(groups_ab) == 2


def test_generate_retries_unparseable_outputs_then_gives_none():
    seen: dict[str, int] = {}

    def reply(prompt, i):
        key = "q1" if "\nq1\n" in prompt else "q2"
        seen[key] = seen.get(key, 0) + 1
        return "[RESULT] 4" if key == "q1" and seen[key] == 2 else "rambling"

    backend = ScriptedBackend(reply)
    judge = Judge(backend, max_retries=2)
    first, second = judge.grade(["q1", "q2"], ["r1", "r2"], "helpfulness", mode="generate")
    # row 0: "rambling" then "[RESULT] 4" (1 retry); row 1: rambling three times -> None
    assert first.score == 4 and first.samples == [4]
    assert second.score is None and second.error and backend.calls == 5


def test_samples_are_averaged():
    replies = iter(["A. [RESULT] 3", "B. [RESULT] 4", "C. [RESULT] 4"])
    judge = Judge(ScriptedBackend(lambda p, i: next(replies)))
    grade = judge.grade(["q"], ["r"], "honesty", mode="generate", samples=3)[0]
    assert grade.samples == [3, 4, 4] and grade.mean == pytest.approx(11 / 3) and grade.score == 4
    assert grade.feedback == "A." and grade.value == pytest.approx(11 / 3)


def test_compare_votes_and_swap_consistency():
    # The evaluator always prefers whichever response mentions "good", in either position.
    def prefer_good(prompt, i):
        a = prompt.split("###Response A:\n")[1].split("\n\n###Response B:")[0]
        return "[RESULT] A" if "good" in a else "[RESULT] B"

    judge = Judge(ScriptedBackend(prefer_good))
    pref = judge.compare(["q"], ["good answer"], ["bad answer"], "helpfulness", mode="generate")[0]
    assert pref.winner == "A" and pref.prob_a == 1.0 and pref.consistent and pref.votes == ["A", "A"]
    pref = judge.compare(["q"], ["bad answer"], ["good answer"], "helpfulness", mode="generate")[0]
    assert pref.winner == "B" and pref.prob_a == 0.0 and pref.consistent

    # A position-biased evaluator (always "A") disagrees with itself across orders: a tie, no winner.
    biased = Judge(ScriptedBackend(lambda p, i: "[RESULT] A"))
    pref = biased.compare(["q"], ["x"], ["y"], "helpfulness", mode="generate")[0]
    assert pref.winner is None and pref.prob_a == 0.5 and not pref.consistent and pref.votes == ["A", "B"]
    # bad rows are reported, not raised, with errors="return"
    bad = biased.compare(["q", None], ["x", "x"], ["y", "y"], "helpfulness", mode="generate", errors="return")
    assert bad[1].error == "row 1: field 'instruction' must be a string, got None" and bad[0].prob_a == 0.5


def test_config_round_trip(tiny_model_dir):
    judge = Judge.from_pretrained(str(tiny_model_dir), dtype="float32", seed=3, max_input_tokens=900, min_score_mass=0.0)
    clone = Judge.from_config(judge.config)
    assert clone.max_input_tokens == 900 and clone.sampling.seed == 3
    a = judge.grade(["q"], ["r"], "helpfulness", mode="direct")[0]
    b = clone.grade(["q"], ["r"], "helpfulness", mode="direct")[0]
    assert _close(a.probs, b.probs, tol=1e-7)


@pytest.mark.gemma
def test_gemma_records_answer_probabilities_during_generation(gemma_judge):
    """The distribution read while generating (before the repetition penalty) equals a
    teacher-forced forward pass at the same position."""
    backend: TransformersBackend = gemma_judge.backend
    prompt = "Scores:\n[RESULT] 4\n[RESULT] 4\n[RESULT] 4\n[RESULT] 4\n[RESULT]"
    sampling = SamplingParams(max_new_tokens=8, temperature=0.0, repetition_penalty=1.03)
    from prometheus_reward.parsing import parse_absolute_output

    gen = backend.generate([prompt], sampling, choices=list("12345"), locate=lambda t: parse_absolute_output(t).value_start)[0][0]
    parsed = parse_absolute_output(gen.text)
    assert parsed.result == 4, gen.text
    assert gen.answer is not None and max(gen.answer.probs) == gen.answer.probs[3]
    prefix = prompt + gen.text[: parsed.value_start].rstrip(" ")
    assert prefix.endswith("[RESULT]")
    forced = backend.read_answers([prefix[: -len("[RESULT]")]], list("12345"))[0]
    assert _close(gen.answer.probs, forced.probs, tol=2e-3)
    # the mass on the digits is the same whether recorded while generating or read by a forward pass
    assert 0.0 < forced.mass <= 1.0 and gen.answer.mass == pytest.approx(forced.mass, rel=2e-2)


@pytest.mark.gemma
def test_gemma_grades_benchmark_prompts(gemma_judge, benchmark_data):
    import json

    rows = json.loads((benchmark_data / "vicuna_eval.json").read_text())[:2]
    grades = gemma_judge.grade_rendered([r["instruction"] for r in rows], mode="direct")
    for grade in grades:
        assert isinstance(grade, Grade) and grade.error is None
        assert 1.0 <= grade.expected <= 5.0 and math.isclose(sum(grade.probs), 1.0, rel_tol=1e-6)
