"""A Prometheus judge as the custom reward function of verl's Reward Loop, judging through verl's
own reward-model servers.

verl's Reward Loop (``verl/experimental/reward_loop``) serves a generative reward model (here the
Prometheus evaluator) as vLLM or SGLang servers behind an HTTP router, and its reward managers
(``naive``, ``dapo``...) call the custom reward function once per response, concurrently on one
event loop, as::

    await compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...,
                        reward_router_address="10.0.0.5:40123", reward_model_tokenizer=tokenizer,
                        **reward_kwargs)

(the router address is ``host:port``; ``reward_kwargs`` come from
``reward.custom_reward_function.reward_kwargs``). This function renders the Prometheus prompt with
the reward model's tokenizer (its chat template, exactly as the evaluator was trained), sends it
to the router through the OpenAI-compatible completions API with the score tokens' logprobs (read
exactly by token id where the server supports it: see
:mod:`prometheus_reward.backends.logprobs`), and parses and normalises through the reward
contract (:meth:`~prometheus_reward.rewards.JudgedReward.ascore_batch`) like every other engine.
Calls arriving together are judged as one batch (``PROMETHEUS_REWARD_BATCH_WAIT`` seconds,
default 0.05); the servers batch the requests themselves.

Inputs are read as :mod:`prometheus_reward.adapters.verl` reads them: the instruction from
``extra_info`` (``question``, ``prompt``, ``instruction`` or ``query``), the reference answer from
``ground_truth`` (or a JSON object ``{"reference_answer", "rubric"}``), a per-row rubric from
``extra_info["rubric"]``; the judge options from the environment and ``reward_kwargs`` (flat
names: ``judge_mode``, ``judge_max_new_tokens``, ``rubric``, ``normalize``...). The served model
name is ``judge_model`` when given, else the router's ``/v1/models``, else the tokenizer's path.

Returns ``{"score": reward, ...}`` with the provenance verl logs per row (the same keys on every
row, all numbers): ``judge_raw_score`` (0.0 where unscorable), ``judge_unscorable``,
``judge_truncated``, ``judge_forced`` (the number came from a distribution read after an appended
``[RESULT]``), ``judge_score_mass`` and ``judge_exact_logprobs`` (1.0: the distribution was read
over the full vocabulary; 0.0: from the top logprobs), and the blame flags every PPO adapter logs
(``judge_fill``, ``judge_floor``, ``judge_unscorable_<cause>``). PPO cannot mask a reward: a
response the policy made unjudgeable scores the floor; a row the judge or the transport failed
scores ``fallback`` when set, else the mean of the scored rows of its prompt in that batch, else
the neutral value (:mod:`prometheus_reward.blame`).

Example (verl config; see ``configs/verl_reward_loop.yaml``)::

    reward:
      reward_model: {enable: true, model_path: prometheus-eval/prometheus-7b-v2.0, rollout: {name: vllm}}
      custom_reward_function:
        path: pkg://prometheus_reward.adapters.verl_reward_loop
        name: compute_score
        reward_kwargs: {judge_mode: expected, rubric: helpfulness}

The file uses absolute imports only: verl may execute it outside its package.

    >>> import asyncio
    >>> asyncio.run(compute_score("chat", "Hello!", None, {"question": "Say hi."},
    ...             reward_router_address="127.0.0.1:8000", reward_model_tokenizer=tok))  # doctest: +SKIP
    {'score': 0.79, 'judge_raw_score': 4.16, 'judge_unscorable': 0.0, ...}
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from typing import Any, Awaitable, Callable, Mapping

from prometheus_reward.adapters.protocol import VERL_PER_SAMPLE, EngineRows, judge_flags, label_fields, ppo_rewards
from prometheus_reward.config import JudgeConfig, JudgingConfig, RewardConfig, from_env, split_flat
from prometheus_reward.rewards import JudgedReward, reward_from_config, with_ppo_fallback
from prometheus_reward.rows import strip_special_tokens

__all__ = ["compute_score", "reward_for_router"]

logger = logging.getLogger(__name__)

_INSTRUCTION_KEYS = ("question", "prompt", "instruction", "query")
_REWARDS: dict[str, JudgedReward] = {}
_LOCK = threading.Lock()


def served_model(address: str, timeout: float = 10.0) -> str | None:
    """The first model the router at ``host:port`` serves (``GET /v1/models``), or None."""
    import httpx

    try:
        response = httpx.get(f"http://{address}/v1/models", timeout=timeout)
        data = response.json().get("data") if response.status_code == 200 else None
        return str(data[0]["id"]) if data else None
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
        return None


def reward_for_router(address: str, tokenizer: Any, options: Mapping[str, Any]) -> JudgedReward:
    """The reward judging through the router at ``address`` (``host:port``) with the reward model's
    ``tokenizer``, configured by the environment and ``options`` (flat names); one per distinct
    (address, options), built on first use.

    Example:
        >>> reward = reward_for_router("127.0.0.1:8000", tokenizer, {"judge_mode": "direct"})  # doctest: +SKIP
    """
    key = json.dumps([address, options], sort_keys=True, default=str)
    reward = _REWARDS.get(key)
    if reward is not None:
        return reward
    with _LOCK:
        reward = _REWARDS.get(key)
        if reward is None:
            reward = _REWARDS[key] = _build(address, tokenizer, options)
    return reward


def _build(address: str, tokenizer: Any, options: Mapping[str, Any]) -> JudgedReward:
    from prometheus_reward.backends.openai import OpenAIBackend
    from prometheus_reward.judge import Judge

    config = from_env()
    parts = split_flat(options, "verl reward_kwargs")
    section = config.pop("judge", None) or {}
    judge_fields = {**({"model": section} if isinstance(section, str) else dict(section)), **parts[JudgeConfig]}
    model = (options.get("judge_model") or served_model(address)
             or getattr(tokenizer, "name_or_path", None) or judge_fields.get("model"))
    if not model:
        raise ValueError("verl reward loop: name the served reward model with reward_kwargs.judge_model")
    judge_fields.update(model=model, engine="openai", base_urls=(f"http://{address}",))
    judge_fields.setdefault("api", "completions")
    judge_config = JudgeConfig(**judge_fields)
    backend = OpenAIBackend.from_config(judge_config, **({"tokenizer": tokenizer} if tokenizer is not None else {}))
    judge = Judge.from_backend(backend, judge_config)
    config.update(parts[JudgingConfig])
    config.update(parts[RewardConfig])
    logger.info("verl reward loop: judging through %s (model %r, logprobs %s)", address, model, backend.logprob_mode)
    return with_ppo_fallback(reward_from_config({**config, "judge": judge})).for_engine(*VERL_PER_SAMPLE)


class _AsyncBatcher:
    """Gather the calls that arrive on one event loop within ``wait`` seconds into one batch."""

    def __init__(self, run: Callable[[list[Any]], Awaitable[list[Any]]], wait: float) -> None:
        self.run, self.wait = run, wait
        self._pending: list[tuple[Any, asyncio.Future]] = []
        self._flush: asyncio.Task | None = None

    async def __call__(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((item, future))
        if self._flush is None:
            self._flush = loop.create_task(self._run_batch())
        return await future

    async def _run_batch(self) -> None:
        await asyncio.sleep(self.wait)
        batch, self._pending, self._flush = self._pending, [], None
        try:
            results = await self.run([item for item, _ in batch])
        except BaseException as err:  # every waiter gets the error, none hangs
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            return
        for (_, future), result in zip(batch, results):
            if not future.done():
                future.set_result(result)


_BATCHERS: dict[tuple[int, int], _AsyncBatcher] = {}


async def _score_rows(reward: JudgedReward, items: list[tuple[Any, Any, Any, Any]]) -> list[dict[str, float]]:
    rows = EngineRows([i[0] for i in items], [strip_special_tokens(i[1]) if isinstance(i[1], str) else i[1] for i in items],
                      [i[2] for i in items], [i[3] for i in items])
    batch = await reward.ascore_batch(rows.prompts, rows.responses, **rows.columns(reward))
    exact = float(getattr(reward.judge.backend, "logprob_mode", None) == "exact")
    scores, how = ppo_rewards(reward, batch)  # floors for the policy's failures, signal-free fills for the judge's
    flags = judge_flags(batch, how)
    out = []
    for i, (score, row) in enumerate(zip(scores, batch.rows)):
        mass = getattr(row.judgment, "score_mass", None)
        out.append({
            "score": score,
            # 0.0 marks an unscorable row: read the mean together with judge_unscorable
            f"judge_{batch.value_name}": float(row.value) if row.value is not None else 0.0,
            "judge_unscorable": float(row.unscorable),
            "judge_truncated": float(row.truncated),
            "judge_forced": float(row.source == "forced"),
            "judge_score_mass": float(mass) if mass is not None else 0.0,
            "judge_exact_logprobs": exact,
            **{name: values[i] for name, values in flags.items()},
        })
    return out


async def compute_score(
    data_source: Any = None,
    solution_str: str = "",
    ground_truth: Any = None,
    extra_info: Mapping[str, Any] | None = None,
    reward_router_address: str | None = None,
    reward_model_tokenizer: Any = None,
    **reward_kwargs: Any,
) -> dict[str, float]:
    """verl Reward Loop's custom reward function (see the module): one response in, its reward and
    provenance out; concurrent calls share one judge batch."""
    if not reward_router_address:
        raise ValueError("prometheus_reward.adapters.verl_reward_loop needs verl's reward model servers "
                         "(reward.reward_model.enable: true); without them use prometheus_reward.adapters.verl")
    reward = await asyncio.to_thread(reward_for_router, reward_router_address, reward_model_tokenizer, reward_kwargs)
    loop = asyncio.get_running_loop()
    batcher = _BATCHERS.get((id(reward), id(loop)))
    if batcher is None:
        wait = float(os.environ.get("PROMETHEUS_REWARD_BATCH_WAIT", "0.05"))
        batcher = _BATCHERS.setdefault((id(reward), id(loop)), _AsyncBatcher(lambda items: _score_rows(reward, items), wait))
    info = extra_info or {}
    instruction = next((info[k] for k in _INSTRUCTION_KEYS if info.get(k) is not None), None)
    reference, rubric = label_fields(ground_truth, info.get("rubric"))
    return await batcher((instruction, solution_str, reference, rubric))
