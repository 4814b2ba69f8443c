"""The judge as verl Reward Loop's custom reward function, against a real ``vllm serve`` standing in
for verl's reward router (the router proxies the same OpenAI-compatible paths to such servers).

verl's package imports Ray at its top (``verl/__init__`` -> ``verl.protocol``), which this CPU
environment does not have, so verl's own code is used file by file: its loader
(``verl/utils/import_utils.py``: ``load_extern_object``) loads the function the way
``reward.custom_reward_function.path`` does, and the wrapper verl puts around an async custom
function (``_call_with_kwargs_async`` in ``verl/trainer/ppo/reward.py``, taken from verl's source)
merges ``reward_kwargs``; the call then carries the keywords verl's ``NaiveRewardManager.run_single``
passes (``data_source``, ``solution_str``, ``ground_truth``, ``extra_info``,
``reward_router_address``, ``reward_model_tokenizer``), concurrently, as its worker does."""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import inspect
from functools import partial
from pathlib import Path

import pytest

from prometheus_reward import Judge
from prometheus_reward.adapters import verl_reward_loop
from prometheus_reward.backends.openai import OpenAIBackend

REWARD_KWARGS = {"judge_mode": "direct", "rubric": "helpfulness", "judge_min_score_mass": 0.0, "judge_max_retries": 0}
ROWS = [("What is the capital of France?", "Paris is the capital of France."), ("What is 2 + 2?", "5"),
        ("Is the earth flat?", "No, it is round.")]


def _verl_file(*parts: str) -> Path:
    spec = importlib.util.find_spec("verl")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("verl is not in .test-deps (scripts/setup.sh --test installs it there)")
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)


def _verl_loader():
    spec = importlib.util.spec_from_file_location("verl_import_utils_ref", _verl_file("utils", "import_utils.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_extern_object


def _verl_async_wrapper():
    """verl's ``_call_with_kwargs_async``, compiled from its own source (its module imports Ray)."""
    source = _verl_file("trainer", "ppo", "reward.py").read_text()
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.AsyncFunctionDef) and n.name == "_call_with_kwargs_async")
    namespace: dict = {}
    exec(compile(ast.Module(body=[node], type_ignores=[]), "verl/trainer/ppo/reward.py", "exec"), namespace)
    return namespace["_call_with_kwargs_async"]


@pytest.fixture
def router(vllm_server):
    verl_reward_loop._REWARDS.clear()
    return vllm_server.ensure_started()


@pytest.fixture(scope="module")
def rm_tokenizer(embedded_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(embedded_dir))


def _calls(fn, router, tokenizer, rows):
    async def run():
        return await asyncio.gather(*(
            fn(data_source="chat", solution_str=answer, ground_truth=None,
               extra_info={"question": question},
               reward_router_address=router.address, reward_model_tokenizer=tokenizer)
            for question, answer in rows))
    return asyncio.run(run())


def test_verl_loads_and_calls_the_reward_loop_function(router, rm_tokenizer, embedded_dir):
    raw = _verl_loader()(module_path="pkg://prometheus_reward.adapters.verl_reward_loop", object_name="compute_score")
    assert raw is verl_reward_loop.compute_score and inspect.iscoroutinefunction(raw)
    fn = partial(_verl_async_wrapper(), raw, REWARD_KWARGS)  # as get_custom_reward_fn wraps it
    assert inspect.iscoroutinefunction(fn)  # NaiveRewardManager awaits it (no executor)
    results = _calls(fn, router, rm_tokenizer, ROWS)
    assert all(set(r) == set(results[0]) for r in results)  # verl reads the extra-info keys off the first row
    for result in results:
        assert isinstance(result["score"], float) and 0.0 <= result["score"] <= 1.0
        assert result["judge_unscorable"] == 0.0 and result["judge_exact_logprobs"] == 1.0
        assert 0.0 < result["judge_score_mass"] <= 1.0
        assert all(isinstance(v, float) for v in result.values())
    # the same numbers as a judge reading the server directly (prompts rendered with the same tokenizer)
    backend = OpenAIBackend(router.url, "embedded", tokenizer=str(embedded_dir))
    grades = Judge(backend, min_score_mass=0.0, max_retries=0).grade(
        [q for q, _ in ROWS], [a for _, a in ROWS], "helpfulness", mode="direct")
    assert [r["judge_raw_score"] for r in results] == pytest.approx([g.expected for g in grades], abs=1e-5)
    assert [r["score"] for r in results] == pytest.approx([(g.expected - 1) / 4 for g in grades], abs=1e-5)
    backend.close()


def test_unscorable_row_gets_the_neutral_fallback_with_the_same_keys(router, rm_tokenizer):
    fn = partial(verl_reward_loop.compute_score, reward_router_address=router.address,
                 reward_model_tokenizer=rm_tokenizer, **REWARD_KWARGS)

    async def run():  # a row whose extra_info names no instruction cannot be judged
        return await asyncio.gather(fn("chat", ROWS[0][1], None, {"question": ROWS[0][0]}), fn("chat", "Hi.", None, {}))

    scored, empty = asyncio.run(run())
    assert set(scored) == set(empty)
    assert empty["judge_unscorable"] == 1.0 and empty["score"] == 0.5 and empty["judge_raw_score"] == 0.0
    assert scored["judge_unscorable"] == 0.0


def test_without_reward_model_servers_the_function_says_what_to_enable():
    with pytest.raises(ValueError, match="reward_model.enable"):
        asyncio.run(verl_reward_loop.compute_score("chat", "Hello!", None, {"question": "Say hi."}))
