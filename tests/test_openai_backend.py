"""OpenAIBackend: logprob parsing, retries, failover and faults against real HTTP servers on loopback.

Two kinds of upstream:
- a scripted OpenAI-compatible server (FastAPI in a thread) whose answers, failures and delays
  the test controls: it unit-tests the retry / failover / logprob-reading logic;
- ``transformers serve`` hosting the tiny random Gemma3 (a real model server, which ignores
  ``logprobs``): the parse fallback, exact prompt text, and the down / killed / restarted faults.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

import pytest
from conftest import wait_until_healthy
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from prometheus_reward import Judge
from prometheus_reward.backends.base import SamplingParams
from prometheus_reward.templates import format_chat
from prometheus_reward.backends.openai import (
    ChatPrompt,
    OpenAIBackend,
    extract_positions,
    normalize_token,
    distribution_from_top,
)

CHOICES = ("1", "2", "3", "4", "5")


# -- helpers --------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThreadServer:
    """A uvicorn server for an ASGI app on a background thread (stoppable, restartable)."""

    def __init__(self, app, port: int | None = None):
        self.app = app
        self.port = port or free_port()
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ThreadServer":
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="error", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("scripted upstream did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            self.thread.join(timeout=10)
            self.server = None


@dataclass
class Script:
    """What the scripted upstream does next."""

    fail: int = 0  # answer 503 to the next N requests
    delay: float = 0.0  # seconds before answering
    reject: str | None = None  # answer 422 naming this field when a request carries it
    text: str = "Clear and correct. [RESULT] 4"
    dist: dict[str, float] = field(default_factory=lambda: {"\u25814": 0.5, "\u25815": 0.3, "3": 0.1, "x": 0.1})
    lead_space: bool = False  # first generated token is a bare "▁" (answer comes one position later)
    logprobs: bool = True
    # per-prompt answers to reads of the distribution (a server that answers per position);
    # prompt -> (greedy answer text, {token: probability} at the answer) or None for the defaults
    reader: Any = None
    seen: list[dict] = field(default_factory=list)


def scripted_app(script: Script) -> FastAPI:
    app = FastAPI()

    def top(dist: dict[str, float] | None = None) -> dict[str, float]:
        # a probability of 0 is sent as vLLM sends -inf: a huge negative logprob (JSON has no -inf)
        return {tok: (math.log(p) if p > 0 else -9999.0) for tok, p in (dist or script.dist).items()}

    async def gate(body: dict) -> JSONResponse | None:
        script.seen.append(body)
        if script.fail > 0:
            script.fail -= 1
            return JSONResponse({"error": "overloaded"}, status_code=503)
        if script.reject and script.reject in body:
            return JSONResponse({"detail": f"Unexpected fields in the request: {{'{script.reject}'}}"}, status_code=422)
        if script.delay:
            await asyncio.sleep(script.delay)
        return None

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        refused = await gate(body)
        if refused is not None:
            return refused
        choice: dict = {"index": 0, "finish_reason": "length"}
        if body["max_tokens"] <= 2:  # a read of the answer distribution
            text, dist = script.reader(body["prompt"]) if script.reader else (" 4", None)
            choice["text"] = text
            answer = "\u2581" + text.strip()
            tokens = ["\u2581", answer] if script.lead_space else [answer]
            tops = [{"\u2581": -0.01}, top(dist)] if script.lead_space else [top(dist)]
        else:  # a generation: feedback, marker, answer (the answer's alternatives at its position)
            choice["text"] = script.text
            tokens = ["Clear", " and", " correct", ".", " [RESULT]", "\u25814"]
            tops = [{t: -0.1} for t in tokens[:-1]] + [top()]
        if script.logprobs and body.get("logprobs"):
            offsets = [sum(len(t) for t in tokens[:k]) for k in range(len(tokens))]
            chosen = [t.get(tok, -0.1) for t, tok in zip(tops, tokens)]  # as vLLM: the chosen token's own logprob
            choice["logprobs"] = {"tokens": tokens, "token_logprobs": chosen,
                                  "top_logprobs": tops, "text_offset": offsets}
        return {"choices": [choice], "usage": {"prompt_tokens": 10, "completion_tokens": len(tokens)}}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        refused = await gate(body)
        if refused is not None:
            return refused
        content = [{"token": "\u25814", "logprob": top()["\u25814"],
                    "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top().items()]}]
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": "4"},
                             "logprobs": {"content": content}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 1}}

    return app


def expected_from(dist: dict[str, float]) -> float:
    mass = {c: 0.0 for c in CHOICES}
    for tok, p in dist.items():
        if normalize_token(tok) in mass:
            mass[normalize_token(tok)] += p
    total = sum(mass.values())
    return sum(int(c) * m / total for c, m in mass.items())


def fast_backend(urls, **kw) -> OpenAIBackend:
    kw = {"tokenizer": None, "backoff": 0.01, "max_backoff": 0.05, "timeout": 5.0, "cooldown": 0.2, **kw}
    return OpenAIBackend(urls, "scripted", **kw)


# -- pure parsing -------------------------------------------------------------------------------------
def test_token_normalisation_and_renormalised_distribution_with_its_mass():
    assert normalize_token("\u25813") == "3" and normalize_token("\u0120A") == "A" and normalize_token(" ") == ""
    dist = distribution_from_top({"\u25814": math.log(0.5), "4": math.log(0.1), " 2": math.log(0.2), "zz": math.log(0.1)}, CHOICES)
    assert dist.probs == pytest.approx([0, 0.25, 0, 0.75, 0]) and dist.mass == pytest.approx(0.8)
    assert distribution_from_top({"hello": -0.1}, CHOICES) is None
    assert distribution_from_top(None, CHOICES) is None


def test_extract_positions_reads_both_logprob_shapes():
    legacy = {"logprobs": {"tokens": ["a", " [RESULT]", " 4"], "token_logprobs": [-1, -1, -0.5],
                           "top_logprobs": [{"a": -1}, {" [RESULT]": -1}, {" 4": -0.5, " 5": -1.0}],
                           "text_offset": [100, 101, 110]}}
    positions = extract_positions(legacy)
    assert [p.start for p in positions] == [0, 1, 10]
    assert positions[2].top == {" 4": -0.5, " 5": -1.0}
    chat = {"logprobs": {"content": [{"token": "B", "logprob": -0.2, "top_logprobs": [{"token": "A", "logprob": -1.8}]}]}}
    (position,) = extract_positions(chat)
    assert position.top == {"A": -1.8, "B": -0.2}  # the chosen token is added when missing from the top list
    assert extract_positions({"text": "no logprobs"}) is None


# -- scripted upstream: logprobs, retries, failover ------------------------------------------------------
def test_direct_and_expected_scores_from_logprobs(upstream):
    script, server = upstream
    judge = Judge(fast_backend(server.url))
    want = expected_from(script.dist)
    direct = judge.grade(["Say hi."], ["Hello!"], "helpfulness", mode="direct")[0]
    assert direct.expected == pytest.approx(want) and direct.score == 4
    expected = judge.grade(["Say hi."], ["Hello!"], "helpfulness", mode="expected", max_new_tokens=32)[0]
    assert expected.expected == pytest.approx(want) and expected.score == 4
    assert expected.feedback == "Clear and correct."
    sent = script.seen[-1]
    assert sent["logprobs"] == 20 and sent["max_tokens"] == 32 and sent["prompt"].endswith("###Feedback: ")
    # a bare space token first: the answer is read one position later
    script.lead_space = True
    assert judge.grade(["Say hi."], ["Hello!"], "helpfulness", mode="direct")[0].expected == pytest.approx(want)
    # no logprobs from the server: generate mode still parses, direct reads the greedy answer
    script.logprobs = False
    parsed = judge.grade(["Say hi."], ["Hello!"], "helpfulness", mode="expected", max_new_tokens=32)[0]
    assert parsed.score == 4 and parsed.expected == pytest.approx(4.0)  # one-hot from the appended [RESULT] read


def test_chat_api_sends_messages_and_reads_chat_logprobs(upstream):
    script, server = upstream
    backend = fast_backend(server.url, api="chat")
    judge = Judge(backend)
    grade = judge.grade(["Say hi."], ["Hello!"], "helpfulness", mode="direct")[0]
    assert grade.expected == pytest.approx(expected_from(script.dist))
    body = script.seen[-1]
    # prometheus-2 rules do not apply to an unknown model: system and user roles, then the
    # "[RESULT] " lead as an assistant message continued by the server
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant"]
    assert body["messages"][-1]["content"] == "[RESULT] " and body["continue_final_message"] is True
    assert body["top_logprobs"] == 20 and body["logprobs"] is True


def test_chat_prompts_carry_their_own_messages_even_when_their_texts_coincide(upstream):
    """Nothing is looked up by text: two turns whose formatted texts are equal keep their own
    system and user messages, through generation and the prefix + lead reads."""
    script, server = upstream
    backend = fast_backend(server.url, api="chat")
    first, second = backend.format("Rate.\n\nStrictly.", "Hi"), backend.format("Rate.", "Strictly.\n\nHi")
    assert first == second and isinstance(first, ChatPrompt) and first.messages != second.messages
    backend.generate([first, second], SamplingParams(max_new_tokens=8))
    sent = sorted(tuple(m["content"] for m in body["messages"]) for body in script.seen)
    assert sent == [("Rate.", "Strictly.\n\nHi"), ("Rate.\n\nStrictly.", "Hi")]
    script.seen.clear()
    backend.read_answers([first + "Good. ", second + "Bad. "], CHOICES)
    sent = sorted(tuple(m["content"] for m in body["messages"]) for body in script.seen)
    assert sent == [("Rate.", "Strictly.\n\nHi", "Bad. [RESULT] "), ("Rate.\n\nStrictly.", "Hi", "Good. [RESULT] ")]
    assert pickle.loads(pickle.dumps(first + "x")).messages == first.messages


def test_chat_batch_larger_than_any_message_memory_sends_every_rows_messages(upstream):
    """4,200 rows in one direct batch (the removed LRU held 4,096 texts and then sent evicted rows
    as one bare user message): every request carries its own row's system and user turns."""
    script, server = upstream
    backend = fast_backend(server.url, api="chat", max_concurrency=32)
    n = 4200
    grades = Judge(backend).grade([f"question {k}" for k in range(n)], [f"answer {k}" for k in range(n)],
                                  "helpfulness", mode="direct")
    assert len(script.seen) == n and all(g.expected is not None for g in grades)
    assert all([m["role"] for m in body["messages"]] == ["system", "user", "assistant"] for body in script.seen)
    rows = sorted(int(body["messages"][1]["content"].split("question ")[1].split("\n")[0]) for body in script.seen)
    assert rows == list(range(n))


def test_retries_on_5xx_then_succeeds_without_duplicating_rows(upstream):
    script, server = upstream
    backend = fast_backend(server.url, max_attempts=4)
    script.fail = 3
    out = backend.generate(["p0", "p1"], SamplingParams(max_new_tokens=16))
    assert [len(g) for g in out] == [1, 1] and all(g[0].text == script.text for g in out)
    assert backend.http_stats.requests == 2 and backend.http_stats.retries == 3
    assert backend.http_stats.attempts == 5 and backend.http_stats.failed_requests == 0


def test_gives_up_with_warning_and_unscorable_rows(upstream, caplog):
    script, server = upstream
    backend = fast_backend(server.url, max_attempts=2)
    judge = Judge(backend)
    script.fail = 100
    with caplog.at_level(logging.WARNING, logger="prometheus_reward.backends.openai"):
        grades = judge.grade(["a", "b"], ["x", "y"], "helpfulness", mode="direct")
    assert all(g.value is None and g.error for g in grades)
    assert "failed after 2 attempt(s)" in caplog.text and "503" in caplog.text
    script.fail = 0  # upstream healthy again: the same judge recovers
    assert all(g.value is not None for g in judge.grade(["a", "b"], ["x", "y"], "helpfulness", mode="direct"))


def test_rejected_optional_field_is_dropped_and_request_resent(upstream):
    script, server = upstream
    backend = fast_backend(server.url)
    script.reject = "repetition_penalty"
    out = backend.generate(["p"], SamplingParams(max_new_tokens=8, repetition_penalty=1.03))
    assert out[0][0].text == script.text
    assert "repetition_penalty" not in script.seen[-1] and "repetition_penalty" in script.seen[0]
    backend.generate(["p"], SamplingParams(max_new_tokens=8))
    assert "repetition_penalty" not in script.seen[-1]


def test_failover_and_least_outstanding_balancing(upstream):
    script, server = upstream
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    backend = fast_backend([dead, server.url], cooldown=30.0)
    out = backend.generate([f"p{i}" for i in range(6)], SamplingParams(max_new_tokens=8))
    assert all(g[0].text == script.text for g in out)
    stats = {e["url"]: e for e in backend.endpoint_stats()}
    assert stats[dead]["failures"] >= 1 and stats[server.url]["requests"] >= 6
    # two live replicas, slow answers: concurrent requests spread over both
    script2 = Script(delay=0.3)
    second = ThreadServer(scripted_app(script2)).start()
    try:
        script.delay = 0.3
        pair = fast_backend([server.url, second.url])
        pair.generate([f"q{i}" for i in range(8)], SamplingParams(max_new_tokens=8))
        counts = [e["requests"] for e in pair.endpoint_stats()]
        assert counts == [4, 4]
    finally:
        second.stop()


def test_timeout_gives_unscorable_rows_then_recovers(upstream, caplog):
    script, server = upstream
    backend = fast_backend(server.url, timeout=1.0, max_attempts=2)
    script.delay = 4.0  # well past the timeout, so the outcome does not hang on machine load
    with caplog.at_level(logging.WARNING, logger="prometheus_reward.backends.openai"):
        out = backend.read_answers(["p0", "p1", "p2"], CHOICES)
    assert all(d.probs is None and "ReadTimeout" in d.error for d in out) and "ReadTimeout" in caplog.text
    script.delay = 0.0
    assert all(d.probs is not None for d in backend.read_answers(["p0", "p1", "p2"], CHOICES))
    assert backend.http_stats.failed_requests == 3


# -- transformers serve: a real OpenAI-compatible model server -------------------------------------------
def _transformers_cli() -> str:
    exe = Path(sys.executable).with_name("transformers")
    return str(exe) if exe.exists() else shutil.which("transformers") or "transformers"


class TransformersServe:
    def __init__(self, model_dir: Path, port: int):
        self.model_dir, self.port = model_dir, port
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> "TransformersServe":
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        self.proc = subprocess.Popen(
            [_transformers_cli(), "serve", str(self.model_dir), "--host", "127.0.0.1", "--port", str(self.port),
             "--device", "cpu", "--default-seed", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
        )
        try:
            wait_until_healthy(self.proc, self.url, timeout, "transformers serve")
        except TimeoutError:
            self.stop()
            raise
        return self

    def ensure_started(self) -> "TransformersServe":
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the server and any children
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture(scope="module")
def tserve(tiny_model_dir):
    """A transformers serve on a reserved port, *not yet started*: the first test sees it down."""
    server = TransformersServe(tiny_model_dir, free_port())
    yield server
    server.stop()


def _backend_for(server: TransformersServe, model_dir: Path, **kw) -> OpenAIBackend:
    kw = {"max_attempts": 2, "backoff": 0.05, "max_backoff": 0.1, "cooldown": 0.1, "timeout": 30, **kw}
    return OpenAIBackend(server.url, str(model_dir), tokenizer=str(model_dir), **kw)


def test_upstream_down_at_start_then_back(tserve, tiny_model_dir, caplog):
    backend = _backend_for(tserve, tiny_model_dir)
    judge = Judge(backend, seed=0)
    with caplog.at_level(logging.WARNING, logger="prometheus_reward.backends.openai"):
        down = judge.grade(["Say hi.", "Add 2+2."], ["Hello!", "4"], "helpfulness", mode="direct")
    assert all(g.value is None and g.error for g in down) and "ConnectError" in caplog.text
    assert backend.http_stats.failed_requests == 2 and backend.http_stats.attempts == 4
    tserve.start()
    sampling = SamplingParams(max_new_tokens=4, temperature=0.0)
    up = backend.generate([backend.format("sys", f"question {i}") for i in range(3)], sampling)
    assert all(row[0].text for row in up)  # the same backend recovers once the server is up
    backend.close()


def test_transformers_serve_exact_prompt_and_parse_fallback(tserve, tiny_model_dir):
    tserve.ensure_started()
    backend = _backend_for(tserve, tiny_model_dir, max_attempts=4)
    judge = Judge(backend, seed=0)
    prompt = backend.format("You are a judge.", "Rate this.")
    # the local tokenizer's formatting, exactly as the local backend writes it
    assert prompt == format_chat("You are a judge.", "Rate this.", "auto", backend.tokenizer)
    gens = backend.generate([prompt, prompt + " "], SamplingParams(max_new_tokens=6, temperature=0.0))
    assert all(g[0].text and g[0].completion_tokens == 6 for g in gens)
    # the server's count of prompt tokens equals ours: the text arrived as formatted, one BOS
    assert gens[0][0].prompt_tokens == backend.count_tokens([prompt])[0]
    # ignores logprobs: expected mode falls back to parsing; random weights write no result,
    # so every row is unscorable, each with a reason, and nothing raises
    grades = judge.grade(["Say hi.", "Add 2+2."], ["Hello!", "4"], "helpfulness", mode="expected", max_new_tokens=4)
    assert [g.probs for g in grades] == [None, None] and all(g.error for g in grades)
    assert all(len(g.feedback) > 0 for g in grades)
    assert "repetition_penalty" in backend._dropped  # transformers serve refuses the field; it was dropped
    backend.close()


def test_upstream_killed_mid_run_then_back(tserve, tiny_model_dir):
    tserve.ensure_started()
    backend = _backend_for(tserve, tiny_model_dir)
    sampling = SamplingParams(max_new_tokens=4, temperature=0.0)
    prompts = [backend.format("sys", f"question {i}") for i in range(4)]
    before = backend.generate(prompts, sampling)
    results: list = []

    def run_batches():
        for _ in range(6):
            results.append(backend.generate(prompts, sampling))

    worker = threading.Thread(target=run_batches)
    worker.start()
    while not results:
        time.sleep(0.05)
    tserve.stop()  # SIGKILL while batches are running
    worker.join(timeout=120)
    # every batch came back whole: one Generation per row, none lost or doubled
    assert len(results) == 6 and all(len(batch) == 4 and all(len(r) == 1 for r in batch) for batch in results)
    assert all(r[0].text for r in results[0])
    assert any(r[0].text == "" for batch in results for r in batch)  # rows after the kill: unscorable
    tserve.start()
    again = backend.generate(prompts, sampling)
    # greedy outputs match the ones before the kill: recovered, and rows were not mixed up
    assert [r[0].text for r in again] == [r[0].text for r in before]
    backend.close()


# -- exact distributions: logprob_token_ids, probed once per server ---------------------------------------
def exact_app(state: dict) -> FastAPI:
    """An upstream that, when ``state["exact"]``, honours vLLM's ``logprob_token_ids`` (tokens named
    ``token_id:N``, logprobs from ``state["logprobs"]``) and otherwise returns only its top logprobs
    (the one spelling ``"4"``), as a server that ignores the field would."""
    app = FastAPI()

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        state["seen"].append(body)
        if state.get("down"):
            return JSONResponse({"error": "starting"}, status_code=503)
        ids = body.get("logprob_token_ids")
        if state["exact"] and ids and body.get("return_tokens_as_token_ids"):
            chosen = ids[0]
            top = {f"token_id:{t}": state["logprobs"].get(t, -9999.0) for t in [chosen, *ids]}
            logprobs = {"tokens": [f"token_id:{chosen}"], "token_logprobs": [top[f"token_id:{chosen}"]],
                        "top_logprobs": [top], "text_offset": [0]}
        else:
            logprobs = {"tokens": ["4"], "token_logprobs": [math.log(0.3)], "top_logprobs": [{"4": math.log(0.3)}],
                        "text_offset": [0]}
        return {"choices": [{"index": 0, "text": "4", "logprobs": logprobs, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 1}}

    return app


@pytest.fixture
def exact_upstream(tiny_model_dir):
    from transformers import AutoTokenizer

    from prometheus_reward.backends.tokens import plan_answer_tokens

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    _, ids, groups = plan_answer_tokens(tokenizer, CHOICES, "[RESULT] ")
    # every spelling of each score gets some probability: 0.1 spread over the spellings of "1",
    # 0.02 on each spelling of the others; far from what the top list alone shows
    logprobs = {}
    for k, group in enumerate(groups):
        for i in group:
            logprobs[ids[i]] = math.log((0.1 if k == 0 else 0.02 * len(group)) / len(group))
    state = {"exact": True, "logprobs": logprobs, "seen": []}
    server = ThreadServer(exact_app(state)).start()
    yield state, server, tokenizer, (ids, groups)
    server.stop()


def test_exact_distribution_read_by_token_id_with_full_vocabulary_mass(exact_upstream):
    from prometheus_reward.backends.tokens import plan_answer_tokens

    state, server, tokenizer, (ids, groups) = exact_upstream
    backend = fast_backend(server.url, tokenizer=tokenizer)
    assert backend.logprob_mode == "exact"
    probes = len(state["seen"])
    assert probes == 1 and state["seen"][0]["return_tokens_as_token_ids"] is True
    grade = Judge(backend, min_score_mass=0.0).grade(["Say hi."], ["Hello!"], "helpfulness", mode="direct")[0]
    sent = state["seen"][-1]
    assert sorted(sent["logprob_token_ids"]) == sorted(ids) and sent["max_tokens"] == 1 and sent["logprobs"] == 1
    # the prompt goes as token ids: the prefix's, then the lead's, as the local backends read it
    lead_ids = plan_answer_tokens(tokenizer, CHOICES, "[RESULT] ")[0]
    assert sent["prompt"][-len(lead_ids):] == lead_ids and all(isinstance(t, int) for t in sent["prompt"])
    masses = [0.1, 0.02 * len(groups[1]), 0.02 * len(groups[2]), 0.02 * len(groups[3]), 0.02 * len(groups[4])]
    assert grade.score_mass == pytest.approx(sum(masses))
    assert grade.probs == pytest.approx([m / sum(masses) for m in masses])
    assert grade.logprobs == "exact"  # the grade says how its distribution was read
    # the probe is not repeated: the mode is cached per server
    assert backend.logprob_mode == "exact" and len(state["seen"]) == probes + 1
    backend.close()


def test_server_without_token_id_logprobs_falls_back_to_top_logprobs(exact_upstream):
    state, server, tokenizer, _ = exact_upstream
    state["exact"] = False
    backend = fast_backend(server.url, tokenizer=tokenizer)
    grade = Judge(backend, min_score_mass=0.0).grade(["Say hi."], ["Hello!"], "helpfulness", mode="direct")[0]
    assert backend.logprob_mode == "top-k"
    sent = state["seen"][-1]
    assert "logprob_token_ids" not in sent and sent["logprobs"] == 20
    # the mass is what the top list showed: only "4", at 0.3
    assert grade.probs == pytest.approx([0, 0, 0, 1, 0]) and grade.score_mass == pytest.approx(0.3)
    assert grade.logprobs == "top-k"
    backend.close()


def test_exact_mode_is_probed_again_while_a_server_cannot_tell(exact_upstream):
    state, server, tokenizer, _ = exact_upstream
    state["down"] = True
    backend = fast_backend(server.url, tokenizer=tokenizer)
    assert backend.logprob_mode is None  # not cached: the server did not answer the probe
    state["down"] = False
    assert backend.logprob_mode == "exact"
    assert fast_backend(server.url, tokenizer=tokenizer, exact_logprobs=False).logprob_mode == "top-k"
    assert fast_backend(server.url).logprob_mode == "top-k"  # no tokenizer: no ids to ask for
    backend.close()
