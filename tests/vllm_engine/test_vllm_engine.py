"""The vLLM engine through the Judge, on a real ``vllm.LLM`` (embedded Gemma-3-270M, CPU): the
three grading modes, the answer distribution read while generating (raw: before the repetition
penalty), prefix caching, and what the CPU platform lacks (sleep mode)."""

from __future__ import annotations

import math

import pytest

from prometheus_reward import Judge
from prometheus_reward.backends.base import SamplingParams
from prometheus_reward.config import JudgeConfig
from prometheus_reward.parsing import parse_absolute_output

# a base model continues this pattern greedily with "[RESULT] 4": a parseable generation, whose
# marker starts a line as in the forced reading's prefix (so both tokenise it alike)
FEW_SHOT = ("Feedback: The response is accurate.\n[RESULT] 4\n" * 4) + "Feedback: The response is accurate.\n"
SCORES = list("12345")


def _through_the_score(backend) -> int:
    """New tokens that end the output right after the score (a base model writes no EOS, and
    the result must end the output to parse)."""
    return len(backend.tokenizer("\n[RESULT] 4", add_special_tokens=False)["input_ids"]) - 1


def _locate(text: str):
    return parse_absolute_output(text).value_start


@pytest.fixture(scope="module")
def judge(vllm_backend):
    return Judge.from_backend(vllm_backend, JudgeConfig(model="embedded", dtype="float32", seed=0, max_retries=0))


def test_from_config_builds_the_engine_with_the_judges_rules(vllm_backend):
    from prometheus_reward.backends.vllm import VLLMBackend
    from prometheus_reward.registry import ENGINES

    assert ENGINES.get("vllm") is VLLMBackend and isinstance(vllm_backend, VLLMBackend)
    config = vllm_backend.llm.llm_engine.model_config
    assert config.logprobs_mode == "raw_logprobs" and config.seed == 0 and str(config.dtype) == "torch.float32"
    assert vllm_backend.llm.llm_engine.vllm_config.cache_config.enable_prefix_caching
    assert vllm_backend.context_length == 2048  # the engine's max_model_len bounds the judge's budget
    # the BOS rule: the chat-formatted prompt goes in as the tokenizer's ids, BOS once
    ids = vllm_backend.encode(vllm_backend.format("sys", "hi"))
    assert ids[0] == vllm_backend.tokenizer.bos_token_id and ids[1] != vllm_backend.tokenizer.bos_token_id


def test_direct_mode_reads_the_full_score_distribution(judge):
    grades = judge.grade(["What is 2 + 2?", "Name a prime number."], ["4", "9"], "helpfulness", mode="direct")
    for grade in grades:
        assert grade.error is None and grade.source == "direct"
        assert math.isclose(sum(grade.probs), 1.0, rel_tol=1e-6) and 1.0 <= grade.expected <= 5.0
        assert 0.0 < grade.score_mass <= 1.0
        assert grade.score == 1 + max(range(5), key=grade.probs.__getitem__)


def test_generate_and_expected_modes_parse_and_record_the_result(judge, vllm_backend):
    length = _through_the_score(vllm_backend)
    generated = judge.grade_rendered([FEW_SHOT], mode="generate", max_new_tokens=length, temperature=0.0)[0]
    assert generated.error is None and generated.score == 4 and generated.source == "parsed", generated
    expected = judge.grade_rendered([FEW_SHOT], mode="expected", max_new_tokens=length, temperature=0.0)[0]
    assert expected.error is None and expected.source == "parsed" and expected.score == 4
    # the distribution was recorded at the written result, where "4" is the greedy choice
    assert expected.probs is not None and max(expected.probs) == expected.probs[3]
    assert 0.0 < expected.score_mass <= 1.0 and 1.0 <= expected.expected <= 5.0


def test_expected_mode_falls_back_to_a_forced_reading(judge):
    # 4 new tokens cannot reach a [RESULT]: the distribution is read after an appended marker
    grade = judge.grade(["What is 2 + 2?"], ["4"], "helpfulness", mode="expected", max_new_tokens=4,
                        temperature=0.0)[0]
    assert grade.error is None and grade.source == "forced" and grade.expected is not None


@pytest.mark.parametrize("penalty", [1.03, 1.3])
def test_answer_read_while_generating_is_the_raw_distribution(vllm_backend, penalty):
    """At the written [RESULT], the recorded distribution equals a forward pass at the same
    prefix, whatever the repetition penalty: it is read before the penalty (and temperature)."""
    sampling = SamplingParams(max_new_tokens=_through_the_score(vllm_backend), temperature=0.0,
                              repetition_penalty=penalty)
    gen = vllm_backend.generate([FEW_SHOT], sampling, choices=SCORES, locate=_locate)[0][0]
    parsed = parse_absolute_output(gen.text)
    assert parsed.result is not None and gen.answer is not None, gen.text
    prefix = FEW_SHOT + gen.text[: parsed.value_start].rstrip(" ")
    assert prefix.endswith("\n[RESULT]")
    forced = vllm_backend.read_answers([prefix[: -len("[RESULT]")]], SCORES)[0]
    assert forced.error is None
    assert max(abs(a - b) for a, b in zip(gen.answer.probs, forced.probs)) < 2e-3
    assert gen.answer.mass == pytest.approx(forced.mass, rel=2e-2)
    if penalty > 1.1:  # "4" fills the prompt: a penalised reading would move far from the raw one
        assert forced.probs[3] > 0.5


def test_samples_of_a_prompt_are_separate_draws(vllm_backend):
    samples = vllm_backend.generate(["The capital of France is"], SamplingParams(max_new_tokens=8, seed=5),
                                    num_samples=3)[0]
    assert len(samples) == 3 and all(g.completion_tokens > 0 and g.error is None for g in samples)
    assert len({g.text for g in samples}) > 1, [g.text for g in samples]


def test_per_call_seed_goes_to_requests_off_cpu_only(vllm_backend, monkeypatch):
    """On CPU a seeded request whose prefill is chunked kills the engine (vLLM rewinds its
    generator with set_offset, which CPU generators lack): there the seed stays engine-level."""
    from prometheus_reward.backends import vllm as module

    seeded = SamplingParams(seed=5)
    assert module._on_cpu() and vllm_backend._sampling_params(seeded).seed is None
    monkeypatch.setattr(module, "_on_cpu", lambda: False)
    assert vllm_backend._sampling_params(seeded).seed == 5
    assert vllm_backend._sampling_params(seeded.replace(temperature=0.0)).seed is None  # greedy needs none


def test_prefix_caching_reuses_the_shared_prompt(vllm_backend):
    prompt = vllm_backend.format("You are a fair judge.", "Rate the response 'Paris is in France.' " * 20)

    first = vllm_backend.read_answers([prompt], SCORES)[0]
    cold = vllm_backend.last_cached_tokens
    again = vllm_backend.read_answers([prompt], SCORES)[0]
    assert cold == 0 and vllm_backend.last_cached_tokens >= 16  # at least one cached block of the prompt
    assert max(abs(a - b) for a, b in zip(first.probs, again.probs)) < 1e-5


def test_sleep_mode_says_where_it_is_unavailable(vllm_backend):
    from vllm.platforms import current_platform

    if current_platform.is_sleep_mode_available():
        vllm_backend.sleep()
        with pytest.raises(RuntimeError, match="asleep"):
            vllm_backend.read_answers(["x"], SCORES)
        vllm_backend.wake_up()
        assert vllm_backend.read_answers(["x"], SCORES)[0].error is None
    else:
        with pytest.raises(NotImplementedError, match="GPU"):
            vllm_backend.sleep()
        with pytest.raises(NotImplementedError, match="GPU"):
            vllm_backend.wake_up()


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory, embedded_dir):
    """A LoRA adapter on the embedded model with random (non-zero) weights: it must move the scores."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(embedded_dir, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    target = tmp_path_factory.mktemp("lora")
    get_peft_model(model, config).save_pretrained(target)
    return target


def test_adapter_is_served_through_vllm_lora(vllm_backend, lora_dir):
    """The adapter as a LoRARequest on the shared engine (started with enable_lora) gives the
    distribution of the transformers backend with the adapter merged, and differs from the base."""
    from prometheus_reward.backends.transformers import TransformersBackend
    from prometheus_reward.backends.vllm import VLLMBackend

    with_adapter = VLLMBackend(vllm_backend.llm, vllm_backend.tokenizer, model_id="embedded", adapter=str(lora_dir),
                               family=vllm_backend.family)
    prompt = vllm_backend.format("You are a fair judge.", "Rate the answer 'Paris' to 'capital of France?'.")
    ours = with_adapter.read_answers([prompt], SCORES)[0]
    base = vllm_backend.read_answers([prompt], SCORES)[0]
    merged = TransformersBackend.from_pretrained("embedded", dtype="float32", adapter=str(lora_dir),
                                                 batching="padded")
    reference = merged.read_answers([prompt], SCORES)[0]
    tv = lambda p, q: 0.5 * sum(abs(a - b) for a, b in zip(p, q))  # noqa: E731
    print(f"\nLoRA: TV to merged transformers {tv(ours.probs, reference.probs):.2e}, "
          f"TV to the base {tv(ours.probs, base.probs):.2e}")
    assert tv(ours.probs, base.probs) > 1e-2
    assert tv(ours.probs, reference.probs) < 1e-3
    assert ours.mass == pytest.approx(reference.mass, rel=1e-2)


def test_from_pretrained_engine_settings(monkeypatch, embedded_dir, lora_dir):
    """What from_pretrained asks of vllm.LLM (recorded, not run: each engine start costs a minute)."""
    import vllm

    from prometheus_reward.backends.vllm import VLLMBackend

    seen: dict = {}

    class Recorder:
        def __init__(self, **kwargs):
            seen.update(kwargs)

    monkeypatch.setattr(vllm, "LLM", Recorder)
    backend = VLLMBackend.from_pretrained("embedded", dtype="float32", seed=3, adapter=str(lora_dir))
    assert seen["enable_lora"] is True and seen["max_lora_rank"] == 8 and seen["max_loras"] == 1
    assert seen["enable_prefix_caching"] is True and seen["logprobs_mode"] == "raw_logprobs" and seen["seed"] == 3
    assert seen["max_logprobs"] >= 128 and seen["enable_sleep_mode"] is False  # CPU: no sleep mode
    assert seen["model"] == str(embedded_dir) and seen["max_model_len"] == backend.context_length
    assert backend.revision == f"main+{lora_dir}"


def test_exact_lengths_ignore_eos(vllm_backend):
    """Benchmarks give every prompt a planned output length: exactly that many tokens, EOS ignored."""
    prompts = ["The capital of France is", "One, two, three,"]
    vllm_backend.exact_lengths = {prompts[0]: 3, prompts[1]: 6}
    try:
        gens = vllm_backend.generate(prompts, SamplingParams(max_new_tokens=32, temperature=0.0))
        with pytest.raises(ValueError, match="cover every prompt"):
            vllm_backend.generate([prompts[0], "unplanned"], SamplingParams(max_new_tokens=4))
    finally:
        vllm_backend.exact_lengths = None
    assert [g[0].completion_tokens for g in gens] == [3, 6]


def test_the_cache_identity_holds_the_weight_files_and_tokenizer(vllm_backend, hf_backend):
    from prometheus_reward.cached import evaluator_identity

    marks = vllm_backend.fingerprint()
    assert marks["weights"] and marks["tokenizer"] and marks["adapter"] is None
    # the same tokenizer as the transformers backend reads; the weights are fingerprinted from the files
    assert marks["tokenizer"] == hf_backend.fingerprint()["tokenizer"]
    identity = evaluator_identity(vllm_backend)
    assert {k: identity[k] for k in marks} == marks and identity["engine"] == "VLLMBackend"
