"""Every reward shape (rubric, checklist, pairwise, tournament) through the one scoring contract,
each PPO adapter (loaded by the engines' own loaders) and the server; the shapes an engine cannot
feed are refused when the reward is set up; a new shape is one file plus one registration.

The judge is the scripted ``QualityBackend`` (a response 'q4: ...' grades 4; in a comparison the
higher quality wins with p = 0.9) so that every reward is known exactly; the adapters' and the
server's own code paths are real. One test runs the tiny real model through the repro of the bug.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from conftest import QualityBackend  # noqa: E402  (same folder)

import prometheus_reward.adapters.openrlhf as openrlhf_adapter
import prometheus_reward.adapters.verl as verl_adapter
from prometheus_reward import Judge
from prometheus_reward.config import ConfigError, RewardConfig
from prometheus_reward.registry import REWARD_SHAPES
from prometheus_reward.rewards import (
    ChecklistReward,
    GroupPairwiseReward,
    RewardBatch,
    RubricReward,
    TournamentRecord,
    UnusableReward,
    reward_from_config,
    with_ppo_fallback,
)
from prometheus_reward.tournament import tournament_pairs, tournament_strengths

REPO = Path(__file__).resolve().parents[1]
CHECKLIST = str(REPO / "configs" / "rubrics" / "medication_advice_checklist.yaml")
TEMPLATE = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
# one prompt group of three completions of known quality, plus a group of two
PROMPTS = ["Name a colour."] * 3 + ["Say hi."] * 2
ANSWERS = ["q5: Blue.", "q2: Dunno.", "q4: Green.", "q3: Hello.", "q1: Go away."]
REFERENCE = "q3: Red."


@pytest.fixture
def quality_judge():
    return Judge(QualityBackend())


@pytest.fixture(autouse=True)
def _fresh_adapters():
    yield
    openrlhf_adapter.set_reward(None)
    verl_adapter.set_reward(None)


def shape(judge, reward_type: str, **config):
    """The reward a PPO launch builds from its config (mode direct: the scripted distribution)."""
    return with_ppo_fallback(reward_from_config({"judge": judge, "reward_type": reward_type, "mode": "direct", **config}))


ROW_SHAPES = {  # shapes that judge each row on its own: every engine can feed them
    "rubric": dict(reward_type="absolute"),
    "checklist": dict(reward_type="checklist", rubric=CHECKLIST),
    "pairwise": dict(reward_type="pairwise"),  # anchor auto: the row's reference
}
GROUP_SHAPES = {  # shapes that compare a prompt's completions with each other
    "pairwise_group": dict(reward_type="pairwise", pairwise_anchor="group"),
    "tournament": dict(reward_type="tournament", pairs_per_completion=2),
}


def expected_rewards(judge, name: str, **config) -> list[float]:
    """The same shape through TRL's entry point (``reward(...)``), with the references as a column."""
    reward = shape(judge, **{**(ROW_SHAPES | GROUP_SHAPES)[name], **config})
    return reward(prompts=PROMPTS, completions=ANSWERS, reference_answer=[REFERENCE] * len(ANSWERS))


# -- the contract ---------------------------------------------------------------------------------------------------
def test_every_shape_returns_rewards_with_per_row_provenance(quality_judge):
    rubric = shape(quality_judge, "absolute").score_batch(PROMPTS, ANSWERS)
    assert isinstance(rubric, RewardBatch) and rubric.value_name == "raw_score"
    grades = quality_judge.grade(PROMPTS, ANSWERS, "helpfulness", mode="direct")
    assert rubric.values == pytest.approx([g.value for g in grades])
    assert rubric.rewards == pytest.approx([(g.value - 1) / 4 for g in grades])  # linear
    assert rubric.values[0] > rubric.values[2] > rubric.values[3] > rubric.values[1] > rubric.values[4]
    assert all(row.judgment.value == row.value and row.source == "direct" for row in rubric)
    assert rubric.info()["unscorable"] == [0.0] * 5 and rubric.judge_rows == 5

    checklist = shape(quality_judge, "checklist", rubric=CHECKLIST).score_batch(PROMPTS, ANSWERS)
    assert checklist.rows[0].judgment.items and checklist.values[0] > checklist.values[1]

    pairwise = shape(quality_judge, "pairwise").score_batch(PROMPTS, ANSWERS, reference_answer=REFERENCE)
    assert pairwise.value_name == "win_prob" and pairwise.values == pytest.approx([0.9, 0.1, 0.9, 0.5, 0.1])

    tournament = shape(quality_judge, "tournament").score_batch(PROMPTS, ANSWERS)
    records = tournament.judgments
    assert tournament.value_name == "strength" and all(isinstance(r, TournamentRecord) for r in records)
    assert records[0].played == 2 and sorted(records[0].opponents) == [1, 2] and records[3].opponents == [4]
    assert tournament.values[0] > tournament.values[2] > tournament.values[1]  # the quality order
    assert tournament.judge_rows == 3 + 1  # all pairs of 3, and the pair of 2

    # the async twin, and RubricReward.score (public) through the contract
    again = asyncio.run(shape(quality_judge, "absolute").ascore_batch(PROMPTS, ANSWERS))
    assert again.rewards == rubric.rewards
    values, grades = RubricReward(quality_judge, rubric="helpfulness", mode="direct").score(PROMPTS, ANSWERS)
    assert values == rubric.rewards and [g.value for g in grades] == rubric.values


def test_a_failed_judge_call_is_in_the_batch(quality_judge):
    class Broken:
        config = None

        def grade(self, *args, **kwargs):
            raise RuntimeError("evaluator gone")

    batch = RubricReward(Broken(), rubric="helpfulness", fallback=0.0).score_batch(["q"], ["a"])
    assert batch.rewards == [0.0] and batch.unscorable == [True]
    assert batch.failure == "judge call failed: RuntimeError: evaluator gone" and "evaluator gone" in batch.errors[0]


def test_the_documented_constructors_declare_nothing_twice(quality_judge):
    rubric = RubricReward(quality_judge, rubric="helpfulness", mode="expected", normalize="symmetric", samples=2,
                          sampling={"max_new_tokens": 8}, timeout=5)
    assert (rubric.config.normalize, rubric.config.timeout, rubric.config.reward_type) == ("symmetric", 5, "absolute")
    assert (rubric.judging.mode, rubric.judging.samples, rubric.judging.max_new_tokens) == ("expected", 2, 8)
    tournament = GroupPairwiseReward(quality_judge, "helpfulness", layout="group", anchor="tournament",
                                     pairs_per_completion=4)
    assert tournament.config.reward_type == "tournament" and tournament.pairs_per_completion == 4
    checklist = ChecklistReward(quality_judge, CHECKLIST)
    assert checklist.config.reward_type == "checklist" and checklist.rubric.name == "medication_advice"
    with pytest.raises(ConfigError, match="unknown option.*colour"):
        RubricReward(quality_judge, colour="blue")
    with pytest.raises(ValueError, match="pairs_per_completion must be positive"):
        GroupPairwiseReward(quality_judge, layout="group", anchor="tournament", pairs_per_completion=0)
    # old configs: pairwise + pairwise_anchor tournament is the tournament
    old = reward_from_config({"judge": quality_judge, "reward_type": "pairwise", "pairwise_anchor": "tournament"})
    assert isinstance(old, GroupPairwiseReward) and old.anchor == "tournament"


# -- OpenRLHF: its own loader and executor --------------------------------------------------------------------------
def _openrlhf_executor(weaker_check):
    if importlib.util.find_spec("openrlhf") is None:
        weaker_check("openrlhf is not installed")
        return None
    try:
        from openrlhf.utils.agent import SingleTurnAgentExecutor
    except ImportError as err:
        weaker_check(f"openrlhf.utils.agent does not import ({err})")
        return None
    return SingleTurnAgentExecutor(remote_rm_url=openrlhf_adapter.__file__)


def _through_openrlhf(executor, labels, reward):
    """Score the rows as OpenRLHF does: the file loaded by path (its own module, so ``reward`` is set
    there), then one sample per ``reward_func`` call."""
    queries = [TEMPLATE.format(p) + a + "<|im_end|>" for p, a in zip(PROMPTS, ANSWERS)]
    prompts = [TEMPLATE.format(p) for p in PROMPTS]
    if executor is not None:  # OpenRLHF's own loader and call, from threads
        executor.reward_func.__globals__["set_reward"](reward)
        return asyncio.run(executor._fetch_rewards_via_func(queries, prompts, labels))
    spec = importlib.util.spec_from_file_location("reward_func", openrlhf_adapter.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.set_reward(reward)
    return [module.reward_func([q], [p], [label]) for q, p, label in zip(queries, prompts, labels)]


@pytest.mark.parametrize("name", sorted(ROW_SHAPES))
def test_row_shapes_through_openrlhf(name, quality_judge, weaker_check):
    executor = _openrlhf_executor(weaker_check)
    results = _through_openrlhf(executor, [REFERENCE] * len(ANSWERS), shape(quality_judge, **ROW_SHAPES[name]))
    got = [float(r["rewards"][0]) for r in results]
    assert got == pytest.approx(expected_rewards(quality_judge, name))
    value_key = "prometheus_win_prob" if name == "pairwise" else "prometheus_raw_score"
    blame = {f"prometheus_{k}" for k in ("judge_fill", "judge_floor", "unscorable_response", "unscorable_judge",
                                         "unscorable_transport")}  # issue 19: the fills, floors and causes
    assert all(set(r["extra_logs"]) == {value_key, "prometheus_unscorable", *blame} for r in results)
    assert all(float(r["extra_logs"]["prometheus_unscorable"][0]) == 0.0 for r in results)


@pytest.mark.parametrize("name", sorted(GROUP_SHAPES))
def test_group_shapes_are_refused_by_openrlhf_when_set_up(name, quality_judge, monkeypatch):
    # OpenRLHF scores one sample per call: a shape that compares a prompt's completions cannot work
    with pytest.raises(UnusableReward, match="OpenRLHF's reward_func cannot use .* one sample at a time"):
        openrlhf_adapter.set_reward(shape(quality_judge, **GROUP_SHAPES[name]))
    # built from the environment, the same refusal, before any rollout is scored
    monkeypatch.setenv("PROMETHEUS_REWARD_MODEL", "embedded:tiny-random")
    monkeypatch.setenv("PROMETHEUS_REWARD_REWARD_TYPE", GROUP_SHAPES[name]["reward_type"])
    monkeypatch.setenv("PROMETHEUS_REWARD_PAIRWISE_ANCHOR", GROUP_SHAPES[name].get("pairwise_anchor", "auto"))
    openrlhf_adapter.set_reward(None)
    with pytest.raises(UnusableReward, match="compares them with each other"):
        openrlhf_adapter.get_reward()


def test_online_dpo_layout_is_refused_by_every_ppo_engine(quality_judge):
    dpo = reward_from_config({"judge": quality_judge, "reward_type": "pairwise"}, layout="online_dpo")
    with pytest.raises(UnusableReward, match="it needs TRL OnlineDPO's layout.*OnlineDPOTrainer"):
        openrlhf_adapter.set_reward(dpo)
    verl_adapter.set_reward(dpo)
    with pytest.raises(UnusableReward, match="verl's compute_score_batch cannot use"):
        verl_adapter.compute_score_batch(["chat"], ["x"], [None], [{"question": "q"}])


def test_pairwise_without_a_reference_is_unscorable_one_row_at_a_time(quality_judge):
    out = _through_openrlhf(None, [REFERENCE, None, REFERENCE, None, None], shape(quality_judge, "pairwise"))
    assert [float(r["extra_logs"]["prometheus_unscorable"][0]) for r in out] == [0.0, 1.0, 0.0, 1.0, 1.0]
    assert float(out[1]["rewards"][0]) == 0.5  # PPO gets the neutral reward, not a silent tie with itself


def test_the_pairwise_bug_repro_with_the_tiny_model(tiny_judge):
    # the repro: a pairwise reward from a config, set for OpenRLHF, then called (AttributeError before)
    openrlhf_adapter.set_reward(with_ppo_fallback(reward_from_config(
        {"judge": tiny_judge, "reward_type": "pairwise", "mode": "direct"})))
    prompt = TEMPLATE.format("Name a colour.")
    out = openrlhf_adapter.reward_func([prompt + "Blue.<|im_end|>", prompt + "Green."], [prompt, prompt],
                                       ["Red", json.dumps({"reference_answer": "Red", "rubric": "honesty"})])
    assert out["rewards"].shape == (2,) and out["extra_logs"]["prometheus_unscorable"].tolist() == [0.0, 0.0]
    # each response against its reference (the label), the reference also shown to the judge as such
    probs = tiny_judge.compare(["Name a colour."] * 2, ["Blue.", "Green."], ["Red", "Red"], ["helpfulness", "honesty"],
                               ["Red", "Red"], mode="direct")
    assert out["rewards"].tolist() == pytest.approx([p.prob_a for p in probs], abs=1e-4)
    assert isinstance(out["rewards"], torch.Tensor)


# -- verl: its own loader -------------------------------------------------------------------------------------------
def _verl_entry(weaker_check, name: str):
    spec = importlib.util.find_spec("verl")
    path = None if spec is None or not spec.submodule_search_locations else \
        Path(list(spec.submodule_search_locations)[0]) / "utils" / "import_utils.py"
    if path is None or not path.is_file():
        weaker_check("verl's utils/import_utils.py is not installed")
        return getattr(verl_adapter, name)
    module_spec = importlib.util.spec_from_file_location("verl_import_utils_shapes", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.load_extern_object(module_path="pkg://prometheus_reward.adapters.verl", object_name=name)


def _verl_batch(references):
    return (["chat"] * len(ANSWERS), list(ANSWERS), references, [{"question": p} for p in PROMPTS])


@pytest.mark.parametrize("name", sorted(ROW_SHAPES))
def test_row_shapes_through_verl_per_sample(name, quality_judge, weaker_check):
    from concurrent.futures import ThreadPoolExecutor

    compute_score = _verl_entry(weaker_check, "compute_score")
    verl_adapter.set_reward(shape(quality_judge, **ROW_SHAPES[name]))

    def call(i):  # what NaiveRewardManager.run_single does, from several threads
        return compute_score(data_source="chat", solution_str=ANSWERS[i], ground_truth=REFERENCE,
                             extra_info={"question": PROMPTS[i]})

    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(call, range(len(ANSWERS))))
    assert [r["score"] for r in results] == pytest.approx(expected_rewards(quality_judge, name))
    assert all(r["judge_unscorable"] == 0.0 for r in results)


@pytest.mark.parametrize("name", sorted(ROW_SHAPES | GROUP_SHAPES))
def test_every_shape_through_verl_compute_score_batch(name, quality_judge, weaker_check):
    compute_score_batch = _verl_entry(weaker_check, "compute_score_batch")
    verl_adapter.set_reward(shape(quality_judge, **(ROW_SHAPES | GROUP_SHAPES)[name]))
    results = compute_score_batch(*_verl_batch([REFERENCE] * len(ANSWERS)))
    assert [r["score"] for r in results] == pytest.approx(expected_rewards(quality_judge, name))
    value_key = {"pairwise": "judge_win_prob", "pairwise_group": "judge_win_prob", "tournament": "judge_strength"}
    assert all(value_key.get(name, "judge_raw_score") in r and r["judge_unscorable"] == 0.0 for r in results)
    if name == "tournament":
        assert results[0]["score"] > results[2]["score"] > results[1]["score"]


@pytest.mark.parametrize("name", sorted(GROUP_SHAPES))
def test_group_shapes_are_refused_by_verl_per_sample(name, quality_judge, weaker_check):
    compute_score = _verl_entry(weaker_check, "compute_score")
    verl_adapter.set_reward(shape(quality_judge, **GROUP_SHAPES[name]))
    with pytest.raises(UnusableReward, match="verl's compute_score cannot use .*compute_score_batch"):
        compute_score(data_source="chat", solution_str="q3: x", ground_truth=None, extra_info={"question": "q"})


# -- the server -----------------------------------------------------------------------------------------------------
def _client(judge, **options):
    from fastapi.testclient import TestClient

    from prometheus_reward.server import create_app

    return TestClient(create_app(judge, mode="direct", max_wait_ms=1, **options))


@pytest.mark.parametrize("name", sorted(ROW_SHAPES))
def test_row_shapes_through_the_server_get_reward(name, quality_judge):
    options = {k: v for k, v in ROW_SHAPES[name].items()}
    with _client(quality_judge, **options) as client:
        replies = [client.post("/get_reward", json={"query": [TEMPLATE.format(p) + a], "prompts": [TEMPLATE.format(p)],
                                                    "labels": [REFERENCE]}) for p, a in zip(PROMPTS, ANSWERS)]
    assert all(r.status_code == 200 for r in replies), replies[0].text
    got = [r.json()["rewards"][0] for r in replies]
    assert got == pytest.approx(expected_rewards(quality_judge, name))
    assert all(r.json()["extra_logs"]["unscorable"] == [0.0] for r in replies)


def test_tournament_and_group_rewards_through_the_server(quality_judge):
    with _client(quality_judge) as client:
        reply = client.post("/group_reward", json={"prompts": PROMPTS, "responses": ANSWERS, "pairs_per_completion": 2})
        assert reply.status_code == 200, reply.text
        data = reply.json()
        grade = client.post("/grade", json={"instructions": PROMPTS, "responses": ANSWERS, "rubric": CHECKLIST})
        assert grade.status_code == 200, grade.text
    assert data["rewards"] == pytest.approx(expected_rewards(quality_judge, "tournament"))
    assert data["judgments"] == 2 * (3 + 1) and data["comparisons"] == [2, 2, 2, 1, 1] and data["unscorable"] == 0
    # the tournament maths, by hand, on the judge's own preferences
    groups = {"Name a colour.": [0, 1, 2], "Say hi.": [3, 4]}
    matches = [pair for key, members in groups.items() for pair in tournament_pairs(members, 2, key)]
    prefs = quality_judge.compare([PROMPTS[i] for i, _ in matches], [ANSWERS[i] for i, _ in matches],
                                  [ANSWERS[j] for _, j in matches], "helpfulness", mode="direct")
    assert data["strengths"] == pytest.approx(tournament_strengths(groups.values(), matches, prefs, 5)[0])
    # a checklist rubric through /grade: the checklist reward's own rewards
    assert grade.json()["rewards"] == pytest.approx(expected_rewards(quality_judge, "checklist"))


def test_a_failing_judge_is_still_a_server_error(quality_judge):
    class Down:
        config = None
        model_id = "down"

        def grade(self, *args, **kwargs):
            raise RuntimeError("evaluator gone")

    with _client(Down()) as client:
        reply = client.post("/get_reward", json={"query": ["Q A"], "prompts": ["Q"]})
        assert reply.status_code == 500 and "the judge failed on this batch: RuntimeError: evaluator gone" in reply.text
        reply = client.post("/grade", json={"instructions": ["Q"], "responses": ["A"], "rubric": {"criteria": "c"}})
        assert reply.status_code == 422 and "row 0: field 'rubric' is invalid" in reply.text  # before any judging


@pytest.mark.parametrize("name", sorted(GROUP_SHAPES))
def test_the_server_refuses_a_group_shape_for_get_reward(name, quality_judge):
    from prometheus_reward.server import create_app

    with pytest.raises(UnusableReward, match=r"/get_reward\) cannot use .* one sample per request"):
        create_app(quality_judge, **GROUP_SHAPES[name])


def test_serve_refuses_a_group_shape_before_loading(tmp_path, capsys):
    from prometheus_reward.cli import main

    code = main(["serve", "--model", "embedded:tiny-random", "--reward-type", "tournament", "--port", "0"])
    assert code != 0
    assert "cannot use the tournament reward" in capsys.readouterr().err


# -- a new shape: one file (here: this one) and one registration ----------------------------------------------------
class PassFailReward(RubricReward):
    """A toy shape: 1.0 when the (expected) grade reaches 3.5, else 0.0."""

    shape = "pass_fail"

    def _finish(self, *args, **kwargs):
        batch = super()._finish(*args, **kwargs)
        for row in batch.rows:
            row.reward = None if row.value is None else float(row.value >= 3.5)
        batch.rewards = self._apply_fallback([row.reward for row in batch.rows])
        return batch


def build_pass_fail(judge, judging, reward, layout="group"):
    from prometheus_reward.rewards.base import config_options

    return PassFailReward(judge, **config_options(judging, reward))


def test_a_new_shape_is_one_registration(quality_judge):
    with pytest.raises(ConfigError, match="unknown reward_type 'pass_fail'"):
        RewardConfig(reward_type="pass_fail")
    # the one line a new shape adds (in a `with` block here, so the test leaves no registration behind)
    with REWARD_SHAPES.registered("pass_fail", f"{__name__}:build_pass_fail"):
        assert RewardConfig(reward_type="pass_fail").reward_type == "pass_fail"
        reward = shape(quality_judge, "pass_fail")
        assert isinstance(reward, PassFailReward) and reward.config.reward_type == "pass_fail"
        assert reward.score_batch(PROMPTS, ANSWERS).rewards == [1.0, 0.0, 1.0, 0.0, 0.0]
        # and the engines take it like any other
        assert [float(r["rewards"][0]) for r in _through_openrlhf(None, [None] * 5, reward)] == [1.0, 0.0, 1.0, 0.0, 0.0]
