"""Contract tests of the TRL reward functions with trainer-shaped keyword arguments, on the tiny
random judge (its scores are noise; what matters here is the plumbing)."""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import pickle
import threading

import pytest
import torch

from prometheus_reward import Judge, PairwiseReward, RubricReward
from prometheus_reward.rows import group_key, prompt_text, response_text, untemplate_prompt
from prometheus_reward.rewards import (
    AsyncPairwiseReward,
    AsyncRubricReward,
    RewardArguments,
    build_reward,
    reward_from_config,
)
from prometheus_reward.config import from_env
from prometheus_reward.rubric import Rubric

GEN = {"max_new_tokens": 6, "temperature": 0.0}


class Recorder:
    """What TRL hands a reward as ``log_extra`` / ``log_metric``."""

    def __init__(self) -> None:
        self.extra: dict[str, list] = {}
        self.metrics: dict[str, float] = {}

    def kwargs(self) -> dict:
        return {"log_extra": self.extra.__setitem__, "log_metric": self.metrics.__setitem__, "trainer_state": object()}


class SpyJudge(Judge):
    """A real judge that remembers what it was asked (to check per-row routing)."""

    def __init__(self, judge: Judge):
        super().__init__(judge.backend, config=judge.config, min_score_mass=judge.min_score_mass)
        self.calls: list[tuple[str, tuple, dict]] = []

    def grade(self, *args, **kwargs):
        self.calls.append(("grade", args, kwargs))
        return super().grade(*args, **kwargs)

    def compare(self, *args, **kwargs):
        self.calls.append(("compare", args, kwargs))
        return super().compare(*args, **kwargs)


class FailingBackend:
    """Wraps a real backend; raises (``fail``) or blocks until released (``block``)."""

    def __init__(self, backend, mode: str = "fail"):
        self._backend, self.mode = backend, mode
        self.release = threading.Event()

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def generate(self, *args, **kwargs):
        if self.mode == "block":
            self.release.wait(30)
        else:
            raise RuntimeError("CUDA error: device-side assert triggered (simulated)")
        return self._backend.generate(*args, **kwargs)


# -- completion extraction ----------------------------------------------------------------------------


def test_completion_and_prompt_extraction():
    assert response_text("plain") == "plain"
    assert response_text([{"role": "assistant", "content": "Hi!"}]) == "Hi!"
    tool_run = [
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "calc", "arguments": {"x": 2}}}]},
        {"role": "tool", "name": "calc", "content": "4"},
        {"role": "assistant", "content": [{"type": "text", "text": "The answer is 4."}]},
    ]
    assert response_text(tool_run) == "The answer is 4."
    assert response_text(tool_run[:2]) == '[tool call] calc({"x": 2})'
    assert response_text(None) is None and response_text(42) is None
    assert prompt_text([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why?"}]) == "Why?"
    multi = prompt_text([{"role": "user", "content": "Name a fruit."}, {"role": "assistant", "content": "Apple."}, {"role": "user", "content": "Its colour?"}])
    assert multi.endswith("Its colour?") and "assistant: Apple." in multi
    assert group_key([{"role": "user", "content": "a"}]) == group_key([{"content": "a", "role": "user"}])
    assert untemplate_prompt("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\n") == "Say hi."
    assert untemplate_prompt("<bos><start_of_turn>user\nWhy?<end_of_turn>\n<start_of_turn>model\n") == "Why?"


# -- RubricReward ---------------------------------------------------------------------------------------


def test_rubric_reward_standard_and_conversational_rows(tiny_judge):
    reward = RubricReward(tiny_judge, rubric="helpfulness", sampling=GEN)
    assert not isinstance(reward, torch.nn.Module)
    log = Recorder()
    prompts = ["Why is the sky blue?", [{"role": "user", "content": "Name a planet."}], "Say hi."]
    completions = ["Because of scattering.", [{"role": "assistant", "content": "Mars."}], "Hello there, friend!"]
    rewards = reward(prompts=prompts, completions=completions, completion_ids=[[1], [2], [3]], **log.kwargs())
    assert len(rewards) == 3 and all(isinstance(r, float) and 0.0 <= r <= 1.0 for r in rewards)
    assert len(set(rewards)) == 3  # each completion gets its own score
    name = reward.__name__
    assert log.extra[f"{name}/raw_score"] == pytest.approx([g.value for g in reward.last_grades])
    assert len(log.extra[f"{name}/feedback"]) == 3
    assert set(log.metrics) == {f"rewards/{name}/{k}" for k in (
        "unscorable_frac", "raw_score_mean", "truncated_frac", "judge_seconds",
        "forced_frac", "flagged_frac", "score_mass_mean", "length_reward_corr",
        "unscorable_response_frac", "unscorable_judge_frac", "unscorable_transport_frac")}
    assert log.metrics[f"rewards/{name}/unscorable_frac"] == 0.0
    # the linear normalisation of the raw 1-5 score
    assert rewards == pytest.approx([(g.value - 1) / 4 for g in reward.last_grades])


def test_per_row_rubric_and_reference_columns_override_defaults(tiny_judge):
    spy = SpyJudge(tiny_judge)
    reward = RubricReward(spy, rubric="helpfulness", reference_answer="default ref", sampling=GEN)
    custom = {"criteria": "Is it short?", "score1_description": "a", "score2_description": "b",
              "score3_description": "c", "score4_description": "d", "score5_description": "e", "scores": None}
    reward(
        prompts=["q1", "q2", "q3", "q4"],
        completions=["a1", "a2", "a3", "a4"],
        rubric=[None, "honesty", custom, "Is the tone polite? Rate 1 (rude) to 5 (very polite)."],
        reference_answer=[None, "row ref", "", None],
    )
    _, args, kwargs = spy.calls[-1]
    rubrics = args[2]
    assert rubrics[0] == Rubric.preset("helpfulness")
    assert rubrics[1] == Rubric.preset("honesty")
    assert rubrics[2].criteria == "Is it short?" and rubrics[2].descriptions == ("a", "b", "c", "d", "e")
    assert rubrics[3].text.startswith("Is the tone polite?")
    assert kwargs["reference_answers"] == ["default ref", "row ref", "default ref", "default ref"]
    assert kwargs["errors"] == "return" and kwargs["mode"] == "expected"


def test_unscorable_rows_return_none_or_fallback_only_for_those_rows(tiny_judge, caplog):
    reward = RubricReward(tiny_judge, sampling=GEN)  # no default rubric
    log = Recorder()
    with caplog.at_level(logging.WARNING, logger="prometheus_reward.rewards"):
        rewards = reward(
            prompts=["q0", "q1", "q2", "q3"],
            completions=["fine", None, "fine too", [{"role": "user", "content": "no assistant turn"}]],
            rubric=["helpfulness", "helpfulness", None, "helpfulness"],
            **log.kwargs(),
        )
    assert isinstance(rewards[0], float)
    # a completion that is not text is the response's problem: the floor (issue 19), never more;
    # an empty rubric cell is the dataset's: masked
    assert rewards[1] == 0.0 and rewards[2] is None and rewards[3] == 0.0
    assert log.extra[f"{reward.__name__}/cause"] == [None, "response", None, "response"]
    assert "3 of 4 rows unscorable" in caplog.text
    feedback = log.extra[f"{reward.__name__}/feedback"]
    assert feedback[1] == "[unscorable] row 1: field 'completion' must be a string or assistant messages, got None"
    assert "row 2: field 'rubric' is empty" in feedback[2]
    assert log.metrics[f"rewards/{reward.__name__}/unscorable_frac"] == 0.75

    with_fallback = RubricReward(tiny_judge, rubric="helpfulness", fallback=-1.0, sampling=GEN)
    out = with_fallback(prompts=["q0", None], completions=["fine", "fine"])  # row 1: no prompt, an input problem
    assert out[1] == -1.0 and out[0] != -1.0
    assert with_fallback(prompts=["q0"], completions=[None]) == [0.0]  # the policy's doing: the floor, not the fallback


def test_judge_crash_and_timeout_turn_the_batch_unscorable(tiny_judge, caplog):
    broken = Judge(FailingBackend(tiny_judge.backend, "fail"), config=tiny_judge.config, min_score_mass=0.0)
    reward = RubricReward(broken, rubric="helpfulness", sampling=GEN)
    log = Recorder()
    with caplog.at_level(logging.WARNING, logger="prometheus_reward.rewards"):
        assert reward(prompts=["a", "b"], completions=["x", "y"], **log.kwargs()) == [None, None]
    assert "judge call failed: RuntimeError" in caplog.text
    assert log.metrics[f"rewards/{reward.__name__}/unscorable_frac"] == 1.0

    blocking = FailingBackend(tiny_judge.backend, "block")
    slow = RubricReward(Judge(blocking, config=tiny_judge.config, min_score_mass=0.0), rubric="helpfulness", timeout=0.2, sampling=GEN)
    assert slow(prompts=["a"], completions=["x"]) == [None]  # deadline passed
    assert slow(prompts=["a"], completions=["x"]) == [None]  # still busy: skipped, no second thread
    assert "still running" in caplog.text
    blocking.release.set()
    slow._pending_thread.join(30)
    blocking.release = threading.Event()
    blocking.release.set()
    # released: the same reward scores again (a deadline a loaded CI machine can meet; the 0.2 s
    # one above only had to expire)
    slow.timeout = 60
    assert isinstance(slow(prompts=["a"], completions=["x"])[0], float)


def test_unique_names_and_async_flavour(tiny_judge):
    from trl.trainer.utils import get_callable_name, is_async_callable

    a = RubricReward(tiny_judge, rubric="honesty")
    b = RubricReward(tiny_judge, rubric="honesty")
    c = RubricReward(tiny_judge, rubric="honesty", name="custom_name")
    assert a.__name__ == "prometheus_honesty" or a.__name__.startswith("prometheus_honesty_")
    assert len({a.__name__, b.__name__, c.__name__}) == 3 and c.__name__ == "custom_name"
    assert get_callable_name(b) == b.__name__
    areward = AsyncRubricReward(tiny_judge, rubric="honesty", sampling=GEN, timeout=60)
    assert is_async_callable(areward) and not is_async_callable(a)
    assert is_async_callable(AsyncPairwiseReward(tiny_judge, rubric="honesty", layout="group"))

    async def both():
        # two async rewards awaited together, as GRPO/RLOO do with asyncio.gather
        other = AsyncRubricReward(tiny_judge, rubric="helpfulness", sampling=GEN)
        return await asyncio.gather(
            areward(prompts=["q", "q"], completions=["x", "y"]), other(prompts=["q", "q"], completions=["x", "y"])
        )

    first, second = asyncio.run(both())
    assert len(first) == len(second) == 2 and all(isinstance(v, float) for v in first + second)


def test_zscore_normalisation_runs_per_rubric(tiny_judge):
    reward = RubricReward(tiny_judge, rubric="helpfulness", normalize="zscore", sampling=GEN)
    out = reward(prompts=["q"] * 4, completions=["a", "bb", "ccc", "dddd"], rubric=["helpfulness", "helpfulness", "honesty", "honesty"])
    assert reward.normalizer.stats("helpfulness")[0] == 2 and reward.normalizer.stats("honesty")[0] == 2
    assert out[0] == pytest.approx(-out[1], abs=1e-6) and out[2] == pytest.approx(-out[3], abs=1e-6)


# -- pickling for AsyncGRPO's spawned workers -------------------------------------------------------------


def _score_in_child(blob: bytes, queue) -> None:
    reward = pickle.loads(blob)
    queue.put(reward(prompts=["Say hi."], completions=["Hello!"]))


def test_pickles_without_weights_and_rebuilds_in_a_spawned_process(tiny_judge):
    reward = RubricReward(tiny_judge, rubric="helpfulness", sampling=GEN)
    blob = pickle.dumps(reward)
    assert len(blob) < 20_000  # the spec and settings, not the model
    copy = pickle.loads(blob)
    assert copy.__name__ == reward.__name__ and copy._judge is None
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_score_in_child, args=(blob, queue))
    child.start()
    result = queue.get(timeout=600)
    child.join(60)
    assert len(result) == 1 and isinstance(result[0], float)

    bare = RubricReward(Judge(tiny_judge.backend), rubric="helpfulness")
    with pytest.raises(TypeError, match="has no config"):
        pickle.dumps(bare)


# -- PairwiseReward -----------------------------------------------------------------------------------------


def test_pairwise_online_dpo_layout_both_orders(tiny_judge):
    spy = SpyJudge(tiny_judge)
    reward = PairwiseReward(spy, rubric="helpfulness", sampling=GEN)
    log = Recorder()
    prompts = ["p0", "p1", "p2", "p0", "p1", "other"]  # row 2 and row 5 do not share a prompt
    completions = ["a0", "a1", "a2", "b0", "b1", "b2"]
    rewards = reward(prompts=prompts, completions=completions, **log.kwargs())
    assert rewards[2] is None and rewards[5] is None
    for i in (0, 1):
        assert rewards[i] + rewards[i + 3] == pytest.approx(1.0)
        pref = reward.last_preferences[i]
        assert len(pref.votes) == 2  # judged in both orders
    _, args, kwargs = spy.calls[-1]
    assert args[1] == ["a0", "a1"] and args[2] == ["b0", "b1"] and kwargs["swap"] is True
    assert log.metrics[f"rewards/{reward.__name__}/unscorable_frac"] == pytest.approx(2 / 6)


def test_pairwise_group_mode_groups_by_prompt_identity(tiny_judge):
    spy = SpyJudge(tiny_judge)
    reward = PairwiseReward(spy, rubric="helpfulness", layout="group", anchor="group", sampling=GEN)
    # a group split and interleaved: positions say nothing, prompts do
    prompts = ["A", "B", [{"role": "user", "content": "C"}], "A", "B", [{"role": "user", "content": "C"}], "A"]
    completions = ["a1", "b1", "c1", "a2", "b2", [{"role": "assistant", "content": "c2"}], "a3"]
    rewards = reward(prompts=prompts, completions=completions)
    _, args, kwargs = spy.calls[-1]
    instructions, responses, anchors = args[0], args[1], args[2]
    for instruction, response, anchor in zip(instructions, responses, anchors):
        assert instruction[0].lower() == response[0] == anchor[0]  # same group's anchor
        assert response != anchor
    assert sum(r == 0.5 for r in rewards) >= 3  # one anchor per group ties with itself
    assert all(r is not None and 0.0 <= r <= 1.0 for r in rewards)

    with_reference = PairwiseReward(spy, rubric="helpfulness", layout="group", anchor="reference", sampling=GEN)
    out = with_reference(prompts=["A", "A", "B"], completions=["x", "y", "z"], reference_answer=["ref A", "ref A", None])
    assert out[2] is None and out[0] is not None
    _, args, _ = spy.calls[-1]
    assert args[2] == ["ref A", "ref A"]


# -- configs ----------------------------------------------------------------------------------------------------


def test_reward_from_config_env_and_recipe_arguments(tiny_model_dir, tmp_path):
    path = tmp_path / "judge.yaml"
    path.write_text(f"judge:\n  model: {tiny_model_dir}\n  dtype: float32\nrubric: honesty\nmode: direct\n")
    config = from_env({"PROMETHEUS_REWARD_CONFIG": str(path), "PROMETHEUS_REWARD_FALLBACK": "0.0",
                                     "PROMETHEUS_REWARD_MAX_NEW_TOKENS": "8"})
    assert config["fallback"] == 0.0 and config["mode"] == "direct" and config["sampling"] == {"max_new_tokens": 8}
    reward = reward_from_config(config)
    assert reward._judge is None  # lazy
    out = reward(prompts=["q"], completions=["a"])
    assert isinstance(out[0], float) and reward.judge.config.dtype == "float32"
    assert reward.judging.max_new_tokens == 8 and reward.mode == "direct"
    with pytest.raises(ValueError, match="unknown reward config key"):
        reward_from_config({"judge": {"model": "x"}, "rubrik": "typo"})
    remote = build_reward(RewardArguments(judge_model="m", judge_base_urls=["http://127.0.0.1:9/v1"], reward_type="pairwise", async_reward=True))
    assert isinstance(remote, AsyncPairwiseReward) and remote._judge_config.is_remote
    assert remote._judge_config.base_urls == ("http://127.0.0.1:9/v1",) and remote._judge_config.model == "m"


def test_bad_construction_fails_early(tiny_judge):
    with pytest.raises(ValueError, match="unknown mode"):
        RubricReward(tiny_judge, rubric="helpfulness", mode="fast")
    with pytest.raises(ValueError, match="unknown rubric preset|rubric"):
        RubricReward(tiny_judge, rubric={"no": "criteria"})
    with pytest.raises(ValueError, match="unknown JudgingConfig option.*max_tokens"):
        RubricReward(tiny_judge, rubric="helpfulness", sampling={"max_tokens": 8})
    with pytest.raises(ValueError, match="unknown layout"):
        PairwiseReward(tiny_judge, layout="pairs")
    assert math.isclose(RubricReward(tiny_judge, rubric="helpfulness", fallback=0).fallback, 0.0)
