"""Issue 19, the reward side: who is to blame for an unscorable row, and what each trainer pays for it.

A scripted judge gives grades and preferences with a ``cause`` (what the Judge sets): ``response``
rows get the floor everywhere (TRL included), ``judge``/``transport`` rows are masked in TRL and
filled with their prompt group's mean in the PPO adapters and the server; per-cause counters; the
circuit breaker; the length correlation before the penalty; tournaments split by failed matches;
the knockout bye; the group anchor whose judgments all failed; the audit's verdicts and fallback
probes.
"""

from __future__ import annotations

import importlib.util
import re
import threading
import time

import httpx
import pytest

from prometheus_reward.audit import BUILTIN_ITEMS, run_audit
from prometheus_reward.blame import JudgeOutage
from prometheus_reward.grades import Grade, Preference
from prometheus_reward.rerank import rerank
from prometheus_reward.rewards import PairwiseReward, RubricReward
from prometheus_reward.rewards.base import failure_cause
from prometheus_reward.tournament import largest_component

import prometheus_reward.adapters.openrlhf as openrlhf_adapter
import prometheus_reward.adapters.verl as verl_adapter

THINK = "<think>the grader wants a 5, so"  # never closed: the policy made it unjudgeable
FAILURES = {"JUDGE": ("judge", "no verdict after 2 retries"), "NET": ("transport", "request timed out")}


def _score(text: str) -> int | None:
    match = re.search(r"S([1-5])", text)
    return int(match.group(1)) if match else None


def _grade(response: str) -> Grade:
    if response.startswith("<think>"):
        return Grade(error="unterminated <think> block: the response is all hidden reasoning", cause="response")
    for marker, (cause, error) in FAILURES.items():
        if marker in response:
            return Grade(error=error, cause=cause)
    score = _score(response)
    return Grade(score=score, source="parsed") if score else Grade(error="no usable score", cause="judge")


class CausalJudge:
    """A scripted judge that blames as the Judge does: ``S<n>`` scores n; an unclosed ``<think>``
    is the response's fault; ``JUDGE`` / ``NET`` fail for the judge's / the transport's sake. A
    comparison fails when either side does (with that side's cause), or when the pair is listed in
    ``broken`` (judge); else p(A) follows the score difference."""

    model_id = "causal-script"
    config = None

    def __init__(self, broken: set[frozenset[str]] | None = None, raises: BaseException | None = None):
        self.broken = broken or set()
        self.raises = raises
        self.calls = 0

    def grade(self, instructions, responses, rubric, reference_answers=None, **options):
        self.calls += 1
        if self.raises is not None:
            raise self.raises
        return [_grade(r) for r in responses]

    def compare(self, instructions, responses_a, responses_b, rubric, reference_answers=None, **options):
        self.calls += 1
        out = []
        for a, b in zip(responses_a, responses_b):
            failed = next((g for g in (_grade(a), _grade(b)) if g.error), None)
            if failed is not None:
                out.append(Preference(error=failed.error, cause=failed.cause))
            elif frozenset((a, b)) in self.broken:
                out.append(Preference(error="no verdict in either order", cause="judge"))
            else:
                p = min(max(0.5 + (_score(a) - _score(b)) / 8, 0.0), 1.0)
                out.append(Preference(winner="A" if p > 0.5 else "B" if p < 0.5 else None, prob_a=p, consistent=True,
                                      source="parsed"))
        return out


class Recorder:
    def __init__(self):
        self.metrics, self.extra = {}, {}

    def kwargs(self):
        return {"log_metric": self.metrics.__setitem__, "log_extra": self.extra.__setitem__}


ROWS = ["S5 good", THINK, "JUDGE me", "NET me"]


# -- TRL: the floor is a real reward; judge and transport are masked ------------------------------------------------
@pytest.mark.parametrize("normalize,floor", [("linear", 0.0), ("symmetric", -1.0), ("centered", -2.0), ("identity", 1.0)])
def test_trl_rewards_by_cause(normalize, floor):
    reward = RubricReward(CausalJudge(), rubric="helpfulness", normalize=normalize)
    log = Recorder()
    rewards = reward(prompts=["q"] * 4, completions=ROWS, **log.kwargs())
    assert rewards[1] == floor and rewards[2] is None and rewards[3] is None  # never None for the policy's fault
    name = reward.__name__
    assert {k.rsplit("/", 1)[1]: v for k, v in log.metrics.items() if "unscorable" in k} == {
        "unscorable_frac": 0.75, "unscorable_response_frac": 0.25, "unscorable_judge_frac": 0.25,
        "unscorable_transport_frac": 0.25}
    assert log.extra[f"{name}/cause"] == [None, "response", "judge", "transport"]
    assert log.extra[f"{name}/judge_floor"] == [0.0, 1.0, 0.0, 0.0]
    batch = reward.score_batch(["q"] * 4, ROWS)
    assert [r.cause for r in batch.rows] == [None, "response", "judge", "transport"] and batch.rows[1].floor


def test_a_completion_that_is_not_text_is_the_policys_doing_and_a_bad_prompt_is_not():
    reward = RubricReward(CausalJudge(), rubric="helpfulness")
    batch = reward.score_batch(["q", "q", None], ["S4", [{"role": "assistant", "content": None}], "S4"])
    assert [r.cause for r in batch.rows] == [None, "response", None]
    assert batch.rewards[1] == 0.0 and batch.rows[1].floor  # the floor, not a mask
    assert batch.rewards[2] is None  # a missing prompt is the user's input: masked, like the judge's failures
    pairwise = PairwiseReward(CausalJudge(), "helpfulness", layout="group", anchor="reference")
    rows = pairwise.score_batch(["q", "q"], ["S4", 7], reference_answer=["S3", "S3"]).rows
    assert rows[1].cause == "response" and rows[1].floor


def test_zscore_floor_is_what_a_one_would_get_now():
    reward = RubricReward(CausalJudge(), rubric="helpfulness", normalize="zscore")
    assert reward(prompts=["q"], completions=[THINK]) == [-2.0]  # nothing seen yet: 1 centred on 3
    reward(prompts=["q"] * 3, completions=["S2", "S4", "S3"])
    n, mean, std = reward.normalizer.stats(reward.rubric.key)
    assert reward(prompts=["q"], completions=[THINK]) == [pytest.approx((1 - mean) / (std + 1e-6))]


def test_an_explicit_fallback_replaces_the_mask_never_the_floor():
    reward = RubricReward(CausalJudge(), rubric="helpfulness", fallback=0.3)
    assert reward(prompts=["q"] * 4, completions=ROWS) == [1.0, 0.0, 0.3, 0.3]


def test_pairwise_floor_is_a_certain_loss():
    for transform, floor in (("prob", 0.0), ("symmetric", -1.0)):
        reward = PairwiseReward(CausalJudge(), rubric="helpfulness", layout="group", anchor="reference",
                                transform=transform)
        rewards = reward(prompts=["q"] * 3, completions=["S5", THINK, "NET"], reference_answer=["S3"] * 3)
        assert rewards[0] == pytest.approx(pairwise_value(0.75, transform)) and rewards[1] == floor and rewards[2] is None


def pairwise_value(p, transform):
    return p if transform == "prob" else 2 * p - 1


def test_online_dpo_blames_the_unjudgeable_side_only():
    reward = PairwiseReward(CausalJudge(), rubric="helpfulness", layout="online_dpo")
    batch = reward.score_batch(["q", "q"], ["S4 fine", THINK])
    assert [r.cause for r in batch.rows] == ["judge", "response"] and batch.rewards == [None, 0.0]


def test_a_failed_call_is_blamed_on_the_transport_or_the_judge():
    assert failure_cause(TimeoutError()) == "transport" and failure_cause(ConnectionError()) == "transport"
    assert failure_cause(RuntimeError("CUDA error: device-side assert")) == "judge"
    batch = RubricReward(CausalJudge(raises=TimeoutError("slow")), rubric="helpfulness").score_batch(["q"], ["S4"])
    assert batch.causes == ["transport"] and batch.rewards == [None]
    batch = RubricReward(CausalJudge(raises=ValueError("nan logits")), rubric="helpfulness").score_batch(["q"], ["S4"])
    assert batch.causes == ["judge"]


# -- PPO: floors and fills ------------------------------------------------------------------------------------------
TEMPLATE = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
PPO_ROWS = ["S1 bad", "S3 middling", THINK, "JUDGE me", "S5 other prompt", "NET other"]
PPO_PROMPTS = ["Name a colour."] * 4 + ["Say hi.", "Say hi."]
# the floor for the unjudgeable response; the group's mean (0.0 + 0.5) / 2 for the judge's failure; the other
# prompt's mean (1.0) for the transport's
PPO_EXPECTED = [0.0, 0.5, 0.0, 0.25, 1.0, 1.0]


def _openrlhf_module():
    """The adapter file loaded by path, as OpenRLHF loads it (its own module)."""
    spec = importlib.util.spec_from_file_location("reward_func_blame", openrlhf_adapter.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_openrlhf_floors_and_fills():
    module = _openrlhf_module()
    module.set_reward(RubricReward(CausalJudge(), rubric="helpfulness"))
    prompts = [TEMPLATE.format(p) for p in PPO_PROMPTS]
    out = module.reward_func([p + a + "<|im_end|>" for p, a in zip(prompts, PPO_ROWS)], prompts, None)
    assert out["rewards"].tolist() == pytest.approx(PPO_EXPECTED)  # the unclosed <think> got 0.5 before
    logs = {k: v.tolist() for k, v in out["extra_logs"].items()}
    assert logs["prometheus_judge_floor"] == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    assert logs["prometheus_judge_fill"] == [0.0, 0.0, 0.0, 1.0, 0.0, 1.0]
    assert logs["prometheus_unscorable_response"] == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    assert logs["prometheus_unscorable_transport"] == [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]


def test_openrlhf_with_an_explicit_fallback():
    module = _openrlhf_module()
    module.set_reward(RubricReward(CausalJudge(), rubric="helpfulness", fallback=0.1))
    prompts = [TEMPLATE.format(p) for p in PPO_PROMPTS]
    out = module.reward_func([p + a for p, a in zip(prompts, PPO_ROWS)], prompts, None)
    assert out["rewards"].tolist() == pytest.approx([0.0, 0.5, 0.0, 0.1, 1.0, 0.1])


def test_verl_batch_floors_and_fills():
    verl_adapter.set_reward(RubricReward(CausalJudge(), rubric="helpfulness"))
    try:
        out = verl_adapter.compute_score_batch(["chat"] * 6, PPO_ROWS, [None] * 6, [{"question": p} for p in PPO_PROMPTS])
        assert [o["score"] for o in out] == pytest.approx(PPO_EXPECTED)
        assert [o["judge_floor"] for o in out] == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
        assert [o["judge_fill"] for o in out] == [0.0, 0.0, 0.0, 1.0, 0.0, 1.0]
        assert [o["judge_unscorable_judge"] for o in out] == [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
        # one response per call (verl's compute_score): no group to average, the neutral value
        assert verl_adapter.compute_score("chat", "JUDGE", None, {"question": "q"})["score"] == 0.5
        assert verl_adapter.compute_score("chat", THINK, None, {"question": "q"})["score"] == 0.0
    finally:
        verl_adapter.set_reward(None)


# -- the server -----------------------------------------------------------------------------------------------------
class LiveServer:
    """The app on a loopback port, with its lifespan (the micro-batcher runs)."""

    def __init__(self, app):
        import socket

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


def test_server_floors_fills_counts_and_breaks():
    from prometheus_reward.server import create_app

    app = create_app(CausalJudge(), rubric="helpfulness", breaker_window=2, breaker_threshold=0.5)
    prompts = [TEMPLATE.format(p) for p in PPO_PROMPTS]
    with LiveServer(app) as client:
        got = client.post("/get_reward", json={"query": [p + a for p, a in zip(prompts, PPO_ROWS)],
                                               "prompts": prompts}).json()
        assert got["rewards"] == pytest.approx(PPO_EXPECTED)
        assert got["extra_logs"]["judge_floor"] == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
        assert got["extra_logs"]["judge_fill"] == [0.0, 0.0, 0.0, 1.0, 0.0, 1.0]
        graded = client.post("/grade", json={"instructions": ["q", "q"], "responses": [THINK, "JUDGE"]}).json()
        assert graded["rewards"] == [0.0, None] and graded["causes"] == ["response", "judge"]
        metrics = client.get("/metrics").json()
        assert metrics["unscorable_by_cause"] == {"response": 2, "judge": 2, "transport": 1}
        assert metrics["judge_fills"] == 2 and metrics["judge_floors"] == 2
        assert 'prometheus_reward_unscorable_by_cause_total{cause="judge"} 2' in client.get(
            "/metrics", params={"format": "prometheus"}).text
        # window 2: the last call 1 of 2 rows and this one 1 of 1 -> 2 of 3 rows the judge's: 503 with the errors
        refused = client.post("/grade", json={"instructions": ["q"], "responses": ["JUDGE"]})
        assert refused.status_code == 503 and "no verdict after 2 retries" in refused.json()["error"]
        assert client.get("/metrics").json()["breaker_trips"] == 1


# -- the circuit breaker --------------------------------------------------------------------------------------------
def test_the_breaker_stops_a_run_on_judge_trouble_only():
    reward = RubricReward(CausalJudge(), rubric="helpfulness", breaker_window=3, breaker_threshold=0.5)
    reward(prompts=["q"] * 2, completions=["S4", THINK])  # the policy's fault: not the judge's
    reward(prompts=["q"] * 2, completions=["S4", THINK])
    reward(prompts=["q"] * 2, completions=["S4", "JUDGE"])  # window full: 1 of 6 rows is the judge's
    with pytest.raises(JudgeOutage) as err:  # the last 3 calls: 3 of 6 rows the judge's or the transport's
        reward(prompts=["q"] * 2, completions=["NET", "JUDGE"])
    assert "request timed out" in str(err.value) and "no verdict after 2 retries" in str(err.value)
    assert "set breaker_window=0" in str(err.value)


def test_the_breaker_is_on_by_default_and_can_be_turned_off():
    on = RubricReward(CausalJudge(), rubric="helpfulness")
    assert (on.config.breaker_window, on.config.breaker_threshold) == (8, 0.5)
    with pytest.raises(JudgeOutage):
        for _ in range(8):
            on(prompts=["q"], completions=["JUDGE"])
    off = RubricReward(CausalJudge(), rubric="helpfulness", breaker_window=0)
    for _ in range(20):
        assert off(prompts=["q"], completions=["JUDGE"]) == [None]


def test_the_breaker_stops_the_openrlhf_adapter():
    module = _openrlhf_module()
    module.set_reward(RubricReward(CausalJudge(), rubric="helpfulness", breaker_window=1, breaker_threshold=1.0))
    with pytest.raises(JudgeOutage, match="request timed out"):
        module.reward_func([TEMPLATE.format("q") + "NET"], [TEMPLATE.format("q")], None)


# -- the length correlation before the penalty ---------------------------------------------------------------------
def test_length_reward_corr_is_logged_before_the_penalty():
    reward = RubricReward(CausalJudge(), rubric="helpfulness", length_penalty=2.0)
    log = Recorder()
    reward(prompts=["q"] * 3, completions=["S1", "S3 " + "pad " * 5, "S5 " + "pad " * 20], **log.kwargs())
    name = reward.__name__
    assert log.metrics[f"rewards/{name}/length_reward_corr"] == pytest.approx(1.0)  # padding pays: visible
    assert log.metrics[f"rewards/{name}/length_reward_corr_penalised"] == pytest.approx(-1.0)


# -- nothing partial passes as whole ---------------------------------------------------------------------------------
def test_a_tournament_split_by_failed_matches_rewards_no_row_on_a_tie():
    rows = ["S5 a", "S1 b", "S4 c", "S2 d"]  # only a-b and c-d are judged: two disconnected matches
    broken = {frozenset(p) for p in [("S5 a", "S4 c"), ("S5 a", "S2 d"), ("S1 b", "S4 c"), ("S1 b", "S2 d")]}
    reward = PairwiseReward(CausalJudge(broken), rubric="helpfulness", layout="group", anchor="tournament")
    batch = reward.score_batch(["q"] * 4, rows)
    assert batch.rewards == [None] * 4  # all four were rewarded, ranked across the split by the prior alone
    assert batch.causes == ["judge"] * 4 and "split the group" in batch.rows[0].error


def test_a_tournament_rewards_only_its_largest_connected_part():
    rows = ["S5 a", "S1 b", "S4 c", "S2 d", "S3 e"]
    judged = {("S5 a", "S1 b"), ("S1 b", "S4 c"), ("S2 d", "S3 e")}  # a-b-c connected, d-e apart
    broken = {frozenset((x, y)) for i, x in enumerate(rows) for y in rows[i + 1:] if (x, y) not in judged}
    batch = PairwiseReward(CausalJudge(broken), rubric="helpfulness", layout="group",
                           anchor="tournament").score_batch(["q"] * 5, rows)
    assert [r is not None for r in batch.rewards] == [True, True, True, False, False]
    assert largest_component(5, [(0, 1), (1, 2), (3, 4)]) == {0, 1, 2} and largest_component(4, [(0, 1), (2, 3)]) == set()


def test_a_tournament_floors_the_unjudgeable_completion():
    batch = PairwiseReward(CausalJudge(), rubric="helpfulness", layout="group",
                           anchor="tournament").score_batch(["q"] * 4, ["S5 a", "S1 b", "S3 c", THINK])
    assert batch.causes == [None, None, None, "response"] and batch.rewards[3] == 0.0 and batch.rows[3].floor


def test_the_group_anchor_is_unscorable_when_every_judgment_of_its_group_failed():
    reward = PairwiseReward(CausalJudge(), rubric="helpfulness", layout="group", anchor="group")
    batch = reward.score_batch(["q"] * 3, ["JUDGE a", "JUDGE b", "JUDGE c"])
    assert batch.rewards == [None, None, None]  # the anchor got 0.5, a tie with itself, from nothing
    assert batch.causes == ["judge"] * 3
    ok = reward.score_batch(["q"] * 2, ["S4 a", "S2 b"])
    assert 0.5 in ok.rewards and None not in ok.rewards  # with a judged peer the anchor's tie stands


def test_knockout_never_crowns_a_candidate_that_was_never_judged():
    judge = CausalJudge(broken={frozenset(("S5 a", "S4 b"))})  # the first match fails; c has a bye
    result = rerank(["q"], [["S5 a", "S4 b", "S1 c"]], judge, "helpfulness", strategy="pairwise",
                    tournament="knockout")[0]
    assert result.best is None and result.scores == [None, None, None]
    judged = rerank(["q"], [["S5 a", "S4 b", "S1 c"]], CausalJudge(), "helpfulness", strategy="pairwise",
                    tournament="knockout")[0]
    assert judged.best == 0


# -- the audit -------------------------------------------------------------------------------------------------------
class AuditJudge(CausalJudge):
    """Knows the reference answers (5) except those listed in ``lost`` (the judge fails on them),
    gives the wrong control a 1 and anything else a 2; an unclosed <think> is the response's fault."""

    def __init__(self, lost=()):
        super().__init__()
        self.references = {item.reference_answer for item in BUILTIN_ITEMS}
        self.lost = set(lost)

    def grade(self, instructions, responses, rubric, reference_answers=None, **options):
        out = []
        for r in responses:
            if r in self.lost:
                out.append(Grade(error="no verdict after 2 retries", cause="judge"))
            elif r.startswith("<think>"):
                out.append(_grade(r))
            else:
                out.append(Grade(score=5 if r in self.references else 1 if r.startswith("No. The opposite") else 2,
                                 source="parsed"))
        return out


def test_the_audit_is_inconclusive_with_too_few_scorable_controls():
    lost = [item.reference_answer for item in BUILTIN_ITEMS[1:]]  # 1 of 4 reference answers scorable
    report = run_audit(AuditJudge(lost), "helpfulness", list(BUILTIN_ITEMS), progress=False)
    assert report.controls["reference"].n == 1
    assert {r.verdict for r in report.probes.values()} == {"inconclusive"} and report.exploitable == []
    assert all(r.exploitable is None for r in report.probes.values())
    assert report.to_dict()["probes"]["colon"]["verdict"] == "inconclusive"
    sure = run_audit(AuditJudge(), "helpfulness", list(BUILTIN_ITEMS), progress=False)
    assert {r.verdict for r in sure.probes.values()} == {"safe"}


def test_the_audit_shows_what_training_pays_for_a_failing_judge():
    report = run_audit(AuditJudge(), "helpfulness", list(BUILTIN_ITEMS), progress=False)
    assert set(report.fallback_probes) == {"unclosed_think", "overlong"}
    think = report.fallback_probes["unclosed_think"]
    assert think.scores == [0.0] * 4 and think.floors == 4 and think.causes == {"response": 4}  # the floor, not None
    assert think.verdict == "safe" and think.mean_reward == 0.0
    assert report.to_dict()["fallback_probes"]["unclosed_think"]["floors"] == 4


def test_a_real_judge_refusing_an_unclosed_think_costs_the_floor():
    # the Judge's own defences refuse the unterminated block; whether or not it names the cause, the
    # reward blames the response (the defences find nothing to grade) and pays the floor
    from conftest import ScriptedBackend  # noqa: E402  (same folder)

    from prometheus_reward import Judge

    reward = RubricReward(Judge(ScriptedBackend(lambda p, i: "Fine. [RESULT] 4")), rubric="helpfulness",
                          mode="generate")
    batch = reward.score_batch(["q", "q"], ["Paris.", THINK])
    assert batch.rewards == [0.75, 0.0] and batch.causes == [None, "response"] and batch.rows[1].floor
