"""The PPO engine adapters, loaded the way the engines load them.

- OpenRLHF: when ``openrlhf`` imports here (``pip install --no-deps openrlhf`` plus ``aiohttp`` and
  ``pylatexenc``), its own ``SingleTurnAgentExecutor`` loads the file from ``--remote_rm_url`` and
  calls it through its own ``_fetch_rewards_via_func``; otherwise the test loads the file exactly as
  that code does (``spec_from_file_location("reward_func", path)``).
- verl: ``verl/__init__`` imports Ray, so the package cannot import on this CPU box; the test runs
  verl's own loader function (``verl/utils/import_utils.py``: ``load_extern_object``, stdlib only)
  from the installed wheel by file path when present, and calls ``compute_score`` with the keyword
  arguments verl's ``NaiveRewardManager`` passes, from several threads at once as it does.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

import prometheus_reward.adapters.openrlhf as openrlhf_adapter
import prometheus_reward.adapters.verl as verl_adapter
from prometheus_reward.adapters.protocol import label_fields, split_query

OPENRLHF_FILE = Path(openrlhf_adapter.__file__)
VERL_FILE = Path(verl_adapter.__file__)


@pytest.fixture
def judge_env(monkeypatch, tiny_model_dir):
    """Configure the adapters' judge from the environment, as a PPO launch would."""
    monkeypatch.setenv("PROMETHEUS_REWARD_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("PROMETHEUS_REWARD_DTYPE", "float32")
    monkeypatch.setenv("PROMETHEUS_REWARD_RUBRIC", "helpfulness")
    monkeypatch.setenv("PROMETHEUS_REWARD_MAX_NEW_TOKENS", "6")
    monkeypatch.setenv("PROMETHEUS_REWARD_TEMPERATURE", "0")
    monkeypatch.setenv("PROMETHEUS_REWARD_MIN_SCORE_MASS", "0")  # random weights: about 2e-5 on the digits
    monkeypatch.delenv("PROMETHEUS_REWARD_CONFIG", raising=False)
    yield
    openrlhf_adapter.set_reward(None)
    verl_adapter.set_reward(None)


def _load_like_openrlhf(path: Path):
    spec = importlib.util.spec_from_file_location("reward_func", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reward_func


QUERY_PROMPT = "<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n"


def test_openrlhf_reward_func_through_the_engine_loader(judge_env, weaker_check):
    func = _load_like_openrlhf(OPENRLHF_FILE)
    params = list(inspect.signature(func).parameters)
    assert params[:3] == ["queries", "prompts", "labels"]

    if importlib.util.find_spec("openrlhf") is not None:
        try:
            from openrlhf.utils.agent import SingleTurnAgentExecutor
        except ImportError as err:  # installed without the extras its module imports
            weaker_check(f"openrlhf.utils.agent does not import ({err})")
            SingleTurnAgentExecutor = None
    else:
        weaker_check("openrlhf is not installed")
        SingleTurnAgentExecutor = None

    queries = [QUERY_PROMPT + "Blue.<|im_end|>", QUERY_PROMPT + "Green, like grass.<|im_end|>"]
    labels = ["Blue", json.dumps({"reference_answer": "Green", "rubric": "honesty"})]
    if SingleTurnAgentExecutor is not None:
        executor = SingleTurnAgentExecutor(remote_rm_url=str(OPENRLHF_FILE))
        assert executor.reward_func.__module__ == "reward_func"
        results = asyncio.run(executor._fetch_rewards_via_func(queries, [QUERY_PROMPT] * 2, labels))
    else:
        results = [func([q], [QUERY_PROMPT], [label]) for q, label in zip(queries, labels)]
    assert len(results) == 2
    for info in results:
        assert set(info) == {"rewards", "scores", "extra_logs"}
        assert isinstance(info["rewards"], torch.Tensor) and info["rewards"].shape == (1,)
        assert 0.0 <= float(info["rewards"][0]) <= 1.0
        assert set(info["extra_logs"]) == {"prometheus_raw_score", "prometheus_unscorable", *(  # issue 19: + causes
            f"prometheus_{k}" for k in ("judge_fill", "judge_floor", "unscorable_response", "unscorable_judge",
                                        "unscorable_transport"))}
        assert float(info["extra_logs"]["prometheus_unscorable"][0]) == 0.0
        assert 1.0 <= float(info["extra_logs"]["prometheus_raw_score"][0]) <= 5.0


def test_openrlhf_adapter_parses_queries_and_never_raises(judge_env, tiny_judge):
    from prometheus_reward.rewards import RubricReward

    assert split_query(QUERY_PROMPT + "Blue.<|im_end|>", QUERY_PROMPT) == "Blue."
    assert label_fields('{"reference_answer": "x", "rubric": "honesty"}') == ("x", "honesty")
    assert label_fields("") == (None, None)
    openrlhf_adapter.set_reward(RubricReward(tiny_judge, rubric="helpfulness", fallback=0.0, sampling={"max_new_tokens": 6}))
    out = openrlhf_adapter.reward_func([QUERY_PROMPT + "x", 17], [QUERY_PROMPT, QUERY_PROMPT], [None, None])
    assert out["rewards"].shape == (2,)
    assert out["extra_logs"]["prometheus_unscorable"].tolist() == [0.0, 1.0]  # the non-text query
    assert float(out["rewards"][1]) == 0.0  # PPO gets the fallback, not a crash


def _verl_loader():
    spec = importlib.util.find_spec("verl")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "utils" / "import_utils.py"
    if not path.is_file():
        return None
    module_spec = importlib.util.spec_from_file_location("verl_import_utils_ref", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.load_extern_object


def test_verl_compute_score_through_the_engine_loader(judge_env, weaker_check):
    load_extern_object = _verl_loader()
    if load_extern_object is None:
        weaker_check("verl's utils/import_utils.py is not installed")
    if load_extern_object is not None:
        compute_score = load_extern_object(module_path=str(VERL_FILE), object_name="compute_score")
        by_pkg = load_extern_object(module_path="pkg://prometheus_reward.adapters.verl", object_name="compute_score")
        assert by_pkg is verl_adapter.compute_score
    else:  # signature level: load the file by path as verl does
        spec = importlib.util.spec_from_file_location("custom_module", VERL_FILE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        compute_score = module.compute_score
    params = inspect.signature(compute_score).parameters
    assert list(params)[:4] == ["data_source", "solution_str", "ground_truth", "extra_info"]

    items = [
        ("Blue.", "Blue", {"question": "Name a colour.", "index": 0}),
        ("Green, like grass in spring.", "{\"reference_answer\": \"Green\", \"rubric\": \"honesty\"}", {"prompt": [{"role": "user", "content": "Name a colour."}]}),
        ("Red.", None, {"question": "Name a colour.", "rubric": "helpfulness"}),
        ("Yellow.", "Yellow", None),  # no instruction: unscorable, fallback score
    ]

    def call(item):  # what NaiveRewardManager.run_single does, in the default executor
        solution, truth, info = item
        return compute_score(data_source="chat", solution_str=solution, ground_truth=truth, extra_info=info)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(call, items))
    for result in results[:3]:
        assert set(result) == {"score", "judge_raw_score", "judge_unscorable", "judge_truncated",  # issue 19: + causes
                               "judge_fill", "judge_floor", "judge_unscorable_response", "judge_unscorable_judge",
                               "judge_unscorable_transport"}
        assert 0.0 <= result["score"] <= 1.0 and result["judge_unscorable"] == 0.0
        assert 1.0 <= result["judge_raw_score"] <= 5.0
    # PPO cannot mask: the unscorable row gets the neutral reward (a score of 3 under linear), not the worst
    assert results[3]["judge_unscorable"] == 1.0 and results[3]["score"] == 0.5

    # the batched entry point of the same loaded module (so the same judge)
    batch = compute_score.__globals__["compute_score_batch"](
        ["chat"] * 3, [i[0] for i in items[:3]], [i[1] for i in items[:3]], [i[2] for i in items[:3]]
    )
    # greedy judging: the micro-batched per-sample calls and one batched call agree
    for single, batched in zip(results[:3], batch):
        assert single["score"] == pytest.approx(batched["score"], abs=1e-3)


def test_verl_reward_kwargs_configure_the_judge(judge_env, tiny_model_dir, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_REWARD_MODEL")
    out = verl_adapter.compute_score(
        "chat", "Blue.", "Blue", {"question": "Name a colour."},
        judge_model=str(tiny_model_dir), judge_dtype="float32", judge_min_score_mass=0.0, rubric="honesty", judge_mode="direct",
    )
    assert out["judge_unscorable"] == 0.0
    reward = next(r for r in verl_adapter._REWARDS.values() if r.mode == "direct")
    # issue 19: PPO fills judge failures with the group mean, else the neutral value; fallback stays unset
    assert reward.rubric.name == "honesty" and reward.fallback is None and reward.neutral_reward == 0.5


def test_verl_reward_kwargs_route_judging_options_to_the_judging_config(judge_env, tiny_model_dir, monkeypatch):
    # judge_max_new_tokens is how the judge samples, not a model-loader keyword: it must reach the
    # reward's JudgingConfig and leave the model loader's options alone
    monkeypatch.delenv("PROMETHEUS_REWARD_MAX_NEW_TOKENS")
    out = verl_adapter.compute_score(
        "chat", "Blue.", "Blue", {"question": "Name a colour."},
        judge_model=str(tiny_model_dir), judge_dtype="float32", judge_min_score_mass=0.0, judge_max_new_tokens=3, judge_temperature=0.0,
        judge_mode="expected",
    )
    assert out["judge_unscorable"] == 0.0
    reward = next(r for r in verl_adapter._REWARDS.values() if r.judging.max_new_tokens == 3)
    assert reward.judging.temperature == 0.0 and reward.mode == "expected"
    assert reward.judge.config.model_kwargs == {} and reward.judge.config.dtype == "float32"
    assert reward.judge.backend.stats.completion_tokens <= 3  # the cap reached the judge's sampling
    with pytest.raises(ValueError, match="unknown option.*judge_max_tokens"):
        verl_adapter.compute_score("chat", "x", None, {"question": "q"}, judge_model=str(tiny_model_dir),
                                   judge_max_tokens=8)
