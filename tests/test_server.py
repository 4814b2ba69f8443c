"""The reward server: ``python -m prometheus_reward.server`` (the ``serve`` subcommand) in a
subprocess on loopback, hosting the tiny random Gemma3 in direct mode; plus a server whose judge
goes through OpenAIBackend to a scripted upstream that fails and recovers."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import wait_until_healthy

from prometheus_reward.scoring import Normalizer

from test_openai_backend import Script, ThreadServer, free_port, scripted_app  # noqa: E402  (same folder)

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
pytestmark = pytest.mark.slow


class ServeProcess:
    def __init__(self, args: list[str]):
        self.port = free_port()
        self.args = args
        self.proc: subprocess.Popen | None = None
        self.log = Path(os.environ.get("TMPDIR", "/tmp")) / f"prometheus-serve-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180) -> "ServeProcess":
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "prometheus_reward.server", "--port", str(self.port), *self.args],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        try:
            wait_until_healthy(self.proc, self.url, timeout, "serve", lambda: ":\n" + self.log.read_text()[-3000:])
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture(scope="module")
def served(tiny_model_dir):
    server = ServeProcess([
        "--model", str(tiny_model_dir), "--min-score-mass", "0", "--dtype", "float32", "--mode", "direct", "--normalize", "symmetric", "--token", TOKEN,
        "--max-wait-ms", "20", "--max-request-rows", "100", "--max-body-mb", "0.25",
    ]).start()
    yield server
    server.stop()


def _rows(n: int, tag: str) -> tuple[list[str], list[str]]:
    prompts = [f"Question {tag}-{i}: name a colour." for i in range(n)]
    responses = [f" Colour number {i * 7 % 13} for {tag}." for i in range(n)]
    return prompts, responses


# -- protocol and validation -------------------------------------------------------------------------------
def test_get_reward_matches_the_judge_and_openrlhf_shapes(served, tiny_judge):
    prompts, responses = _rows(3, "shape")
    body = {"query": [p + r for p, r in zip(prompts, responses)], "prompts": prompts, "labels": [None, "", None]}
    reply = httpx.post(served.url + "/get_reward", json=body, headers=AUTH, timeout=60)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert set(data) == {"rewards", "scores", "extra_logs"}
    assert all(isinstance(x, float) for x in data["rewards"]) and len(data["rewards"]) == 3
    assert data["extra_logs"]["unscorable"] == [0.0, 0.0, 0.0]
    # the graded response is the query minus its prompt (read as the OpenRLHF adapter reads it: special
    # tokens and surrounding whitespace removed); rewards are (score - 3) / 2
    grades = tiny_judge.grade(prompts, [r.strip() for r in responses], "helpfulness", mode="direct")
    want = Normalizer("symmetric")([g.value for g in grades])
    assert data["rewards"] == pytest.approx(want, abs=1e-4)
    assert data["extra_logs"]["judge_score"] == pytest.approx([g.value for g in grades], abs=1e-4)


def test_grade_and_compare_endpoints(served, tiny_judge):
    reply = httpx.post(served.url + "/grade", headers=AUTH, timeout=60, json={
        "instructions": ["Say hi.", "Add 2+2."], "responses": ["Hello!", "4"], "reference_answers": [None, "4"],
        "rubric": "harmlessness"})
    assert reply.status_code == 200, reply.text
    grades = reply.json()["grades"]
    want = tiny_judge.grade(["Say hi.", "Add 2+2."], ["Hello!", "4"], "harmlessness", [None, "4"], mode="direct")
    assert [g["expected"] for g in grades] == pytest.approx([g.expected for g in want], abs=1e-4)
    assert [g["score"] for g in grades] == [g.score for g in want]
    reply = httpx.post(served.url + "/compare", headers=AUTH, timeout=60, json={
        "instructions": ["Say hi."], "responses_a": ["Hello!"], "responses_b": ["Go away."]})
    assert reply.status_code == 200, reply.text
    (pref,) = reply.json()["preferences"]
    want = tiny_judge.compare(["Say hi."], ["Hello!"], ["Go away."], "helpfulness", mode="direct")[0]
    assert pref["prob_a"] == pytest.approx(want.prob_a, abs=1e-4) and pref["winner"] == want.winner


def test_group_reward_runs_the_tournament_through_the_batcher(served, tiny_judge):
    from prometheus_reward.tournament import tournament_pairs, tournament_strengths

    prompts = ["Name a fruit."] * 4 + ["Say hi."] * 2
    responses = ["Apple.", "Pear, ripe.", "A banana!", "Kiwi", "Hello!", "Go away."]
    reply = httpx.post(served.url + "/group_reward", headers=AUTH, timeout=120,
                       json={"prompts": prompts, "responses": responses, "pairs_per_completion": 2})
    assert reply.status_code == 200, reply.text
    data = reply.json()
    # 4 completions with k = 2: a balanced circle of 4 pairs; 2 completions: their 1 pair; both orders each
    assert data["judgments"] == 2 * (4 + 1) and data["comparisons"] == [2, 2, 2, 2, 1, 1]
    # the same tournament in this process, with the same judge
    groups = {"Name a fruit.": [0, 1, 2, 3], "Say hi.": [4, 5]}
    matches = [pair for key, members in groups.items() for pair in tournament_pairs(members, 2, key)]
    prefs = tiny_judge.compare([prompts[i] for i, _ in matches], [responses[i] for i, _ in matches],
                               [responses[j] for _, j in matches], "helpfulness", mode="direct")
    want, _, _ = tournament_strengths(groups.values(), matches, prefs, len(prompts))
    assert data["rewards"] == pytest.approx(want, abs=1e-4) and data["unscorable"] == 0


def test_malformed_requests_get_clear_4xx_and_the_server_keeps_serving(served):
    def post(path, **kw):
        return httpx.post(served.url + path, timeout=30, **{"headers": AUTH, **kw})

    cases = [
        (post("/grade", json={"instructions": ["a"], "responses": [None]}), 422, "responses[0]: Input should be a valid string"),
        (post("/grade", json={"instructions": ["a", "b"], "responses": ["x"]}), 422, "'responses' has 1 items but 'instructions' has 2"),
        (post("/grade", json={"instructions": ["a"], "responses": ["x"], "colour": 1}), 422, "colour: Extra inputs are not permitted"),
        (post("/grade", json={"instructions": ["a"], "responses": ["x"], "rubric": {"criteria": "c"}}), 422, "row 0: field 'rubric' is invalid"),
        (post("/grade", json={"instructions": ["a"], "responses": ["x"], "mode": "vibes"}), 422, "mode"),
        (post("/get_reward", json={"query": []}), 422, "query"),
        (post("/get_reward", content=b"{not json", headers={**AUTH, "content-type": "application/json"}), 422, "not valid JSON"),
        (post("/get_reward", json={"query": ["q"] * 101}), 413, "over the limit of 100"),
        (post("/get_reward", json={"query": ["x" * 300_000]}), 413, "over the limit"),
        (httpx.post(served.url + "/get_reward", json={"query": ["q"]}, timeout=30), 401, "bearer token"),
        (httpx.post(served.url + "/get_reward", json={"query": ["q"]}, headers={"Authorization": "Bearer nope"}, timeout=30), 401, "bearer token"),
    ]
    for reply, status, message in cases:
        assert reply.status_code == status, reply.text
        assert message in reply.text, reply.text
    assert httpx.get(served.url + "/health", timeout=10).status_code == 200  # no token needed for health
    ok = post("/get_reward", json={"query": ["still fine?"]})
    assert ok.status_code == 200 and len(ok.json()["rewards"]) == 1
    metrics = httpx.get(served.url + "/metrics", headers=AUTH, timeout=10).json()
    assert metrics["responses"]["4xx"] >= len(cases)


# -- load ----------------------------------------------------------------------------------------------
def test_64_concurrent_clients_all_answered_correctly_with_batching(served, tiny_judge):
    clients, per_client = 64, 4
    before = httpx.get(served.url + "/metrics", headers=AUTH, timeout=10).json()

    async def client(c: int, http: httpx.AsyncClient) -> list[tuple[list[str], list[str], list[float]]]:
        out = []
        for k in range(per_client):
            prompts, responses = _rows(1 + (c + k) % 2, f"c{c}r{k}")
            reply = await http.post("/get_reward", headers=AUTH, json={
                "query": [p + r for p, r in zip(prompts, responses)], "prompts": prompts})
            assert reply.status_code == 200, reply.text
            out.append((prompts, responses, reply.json()["rewards"]))
        return out

    async def main():
        limits = httpx.Limits(max_connections=clients)
        async with httpx.AsyncClient(base_url=served.url, timeout=300, limits=limits) as http:
            return await asyncio.gather(*(client(c, http) for c in range(clients)))

    answers = [a for per in asyncio.run(main()) for a in per]
    assert len(answers) == clients * per_client
    prompts = [p for a in answers for p in a[0]]
    responses = [r for a in answers for r in a[1]]
    got = [x for a in answers for x in a[2]]
    want = Normalizer("symmetric")([g.value for g in tiny_judge.grade(prompts, [r.strip() for r in responses], "helpfulness", mode="direct")])
    assert got == pytest.approx(want, abs=1e-4)  # every answer belongs to its own request
    after = httpx.get(served.url + "/metrics", headers=AUTH, timeout=10).json()
    # each request counted once, each row judged once, and requests were merged into batches
    assert after["requests"]["/get_reward"] - before["requests"].get("/get_reward", 0) == clients * per_client
    new_rows = after["rows"] - before["rows"]
    new_batches = after["batches"]["count"] - before["batches"]["count"]
    assert new_rows == len(prompts)
    assert new_rows / new_batches > 1.5 and after["batches"]["max_size"] > 2
    assert after["latency"]["/get_reward"]["p99_s"] >= after["latency"]["/get_reward"]["p50_s"]
    text = httpx.get(served.url + "/metrics", params={"format": "prometheus"}, headers=AUTH, timeout=10).text
    assert 'prometheus_reward_batch_size_bucket{le="+Inf"}' in text


# -- faults through an OpenAI-compatible upstream --------------------------------------------------------
def test_server_over_failing_upstream_flags_unscorable_then_recovers():
    script = Script()
    upstream = ThreadServer(scripted_app(script)).start()
    server = ServeProcess(["--model", "scripted", "--openai-base-url", upstream.url, "--mode", "direct"])
    try:
        server.start()
        body = {"query": ["Q1 A1", "Q2 A2"], "prompts": ["Q1", "Q2"]}
        script.fail = 10_000  # upstream down (503 to everything)
        down = httpx.post(server.url + "/get_reward", json=body, timeout=120).json()
        # unscorable rows get the neutral reward (0.5 = a score of 3 under the default linear mapping)
        assert down["extra_logs"]["unscorable"] == [1.0, 1.0] and down["rewards"] == [0.5, 0.5]
        script.fail = 0
        up = httpx.post(server.url + "/get_reward", json=body, timeout=120).json()
        assert up["extra_logs"]["unscorable"] == [0.0, 0.0]
        # the scripted answer distribution: p(4)=0.5, p(5)=0.3, p(3)=0.1 -> expected 4.22
        assert up["extra_logs"]["judge_score"] == pytest.approx([38 / 9, 38 / 9])
        metrics = httpx.get(server.url + "/metrics", timeout=10).json()
        assert metrics["requests"]["/get_reward"] == 2 and metrics["rows"] == 4 and metrics["unscorable_rows"] == 2
        assert metrics["upstreams"][0]["failures"] >= 2
        assert "failed after" in server.log.read_text()  # the warning reached the server log
    finally:
        server.stop()
        upstream.stop()


def test_serve_subcommand_registers_its_options():
    from prometheus_reward.cli.serve import make_parser

    parser = argparse.ArgumentParser()
    make_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--model", "m", "--mode", "direct", "--token", "t", "--max-wait-ms", "5"])
    assert (args.host, args.port, args.mode, args.token, args.max_wait_ms) == ("127.0.0.1", 8000, "direct", "t", 5.0)
    assert callable(args.func)


# -- OpenRLHF's own HTTP client against the server (its current remote-reward protocol) --------------------
def test_openrlhf_remote_reward_client_reads_the_server(tiny_judge):
    """OpenRLHF's ``SingleTurnAgentExecutor`` with ``--remote_rm_url`` posts one sample per request
    (``query``, ``prompts``, ``labels``) and reads ``rewards`` / ``scores`` / ``extra_logs``: run its
    own client code against the app on loopback."""
    import importlib
    import threading
    import time

    import uvicorn

    from prometheus_reward.server import create_app

    agent = importlib.import_module("openrlhf.utils.agent")  # a test-only wheel (.test-deps)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(tiny_judge, mode="direct", normalize="symmetric"),
                                           host="127.0.0.1", port=port, log_level="error", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the reward server did not start"
        time.sleep(0.05)
    try:
        executor = agent.SingleTurnAgentExecutor(remote_rm_url=f"http://127.0.0.1:{port}/get_reward")
        assert executor.reward_func is None  # an URL, not a Python file: the HTTP path
        prompts, responses = _rows(2, "openrlhf")
        labels = [None, '{"reference_answer": "Colour number 7.", "rubric": "honesty"}']
        replies = [asyncio.run(executor._fetch_rewards_via_http([p + r], [p], [label]))[0]
                   for p, r, label in zip(prompts, responses, labels)]
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    grades = [tiny_judge.grade([p], [r.strip()], rubric, reference_answers=[ref], mode="direct")[0]
              for p, r, rubric, ref in zip(prompts, responses, ["helpfulness", "honesty"], [None, "Colour number 7."])]
    for reply, grade in zip(replies, grades):
        assert set(reply) >= {"rewards", "scores", "extra_logs"}
        assert reply["rewards"] == pytest.approx([Normalizer("symmetric")([grade.value])[0]], abs=1e-4)
        assert reply["scores"] == reply["rewards"] and reply["extra_logs"]["unscorable"] == [0.0]
