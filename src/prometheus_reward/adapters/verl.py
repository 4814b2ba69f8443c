"""A Prometheus judge as verl's custom reward function.

verl (``verl.trainer.main_ppo``) loads ``reward.custom_reward_function.path`` (a file path, or
``pkg://prometheus_reward.adapters.verl``) and calls ``compute_score(data_source=...,
solution_str=..., ground_truth=..., extra_info=...)`` once per response, from several threads at
once. It accepts a float or a dict with ``"score"`` (the other keys become
``reward_extra_info``). Here concurrent calls are gathered into one judge batch (a short wait,
``PROMETHEUS_REWARD_BATCH_WAIT`` seconds, default 0.05), since one batched judge call is far
cheaper than many single ones.

Inputs: the instruction comes from ``extra_info`` (``question``, ``prompt``, ``instruction`` or
``query``; a string or chat messages), the reference answer from ``ground_truth`` (a JSON object
``{"reference_answer", "rubric"}`` also works), a per-row rubric from ``extra_info["rubric"]``.
Configure the judge from the environment (see :func:`prometheus_reward.config.from_env`) or
through ``custom_reward_function.reward_kwargs``, which verl passes to every call, with the flat
option names of the recipes (``judge_model``, ``judge_base_urls``, ``judge_mode``,
``judge_max_new_tokens``, ``rubric``, ``normalize``...; an unknown name is an error). PPO cannot
mask a reward, so an unscorable row (``judge_unscorable`` = 1) is settled by who is to blame
(:mod:`prometheus_reward.blame`): a response the policy made unjudgeable scores the floor
(``judge_floor`` = 1); a row the judge or the transport failed on scores the mean of the scored
rows of its prompt in the same batch, else the neutral value, or ``fallback`` when set
(``judge_fill`` = 1); ``judge_unscorable_response`` / ``_judge`` / ``_transport`` say which cause.
When the judge keeps failing, the circuit breaker raises
:class:`~prometheus_reward.blame.JudgeOutage` from the call, which stops the run.

Every reward shape scores through its ``score_batch``. ``compute_score`` (one response per call)
serves the row-wise shapes (rubric, checklist, pairwise against the reference); the shapes that
compare a prompt's completions with each other (``tournament``, ``pairwise_anchor: group``) need
``compute_score_batch`` (verl's ``BatchRewardManager``), and are refused by ``compute_score`` with
:class:`~prometheus_reward.rewards.UnusableReward`.

The file uses absolute imports only: verl may execute it outside its package.

Example:
    >>> compute_score("chat", "Hello!", "Hi there!", {"question": "Say hi."})   # doctest: +SKIP
    {'score': 0.81, 'judge_raw_score': 4.24, 'judge_unscorable': 0.0, 'judge_truncated': 0.0}
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Callable, Mapping, Sequence

from prometheus_reward.adapters.protocol import (
    VERL_BATCH,
    VERL_PER_SAMPLE,
    EngineRows,
    judge_flags,
    label_fields,
    ppo_rewards,
)
from prometheus_reward.config import JudgeConfig, JudgingConfig, RewardConfig, from_env, split_flat
from prometheus_reward.rewards import JudgedReward, reward_from_config, with_ppo_fallback
from prometheus_reward.rows import strip_special_tokens

_INSTRUCTION_KEYS = ("question", "prompt", "instruction", "query")
_REWARDS: dict[str, JudgedReward] = {}
_LOCK = threading.Lock()


def _reward_for(options: Mapping[str, Any]) -> JudgedReward:
    """One reward per distinct configuration (environment + reward_kwargs), built on first use."""
    key = json.dumps(options, sort_keys=True, default=str)
    reward = _REWARDS.get(key)
    if reward is None:
        with _LOCK:
            reward = _REWARDS.get(key)
            if reward is None:
                config = from_env()
                # each flat option goes to its own config: judge_max_new_tokens is a judging
                # option (sampling), not a model-loader keyword
                parts = split_flat(options, "verl reward_kwargs")
                config["judge"] = {**dict(config.get("judge") or {}), **parts[JudgeConfig]}
                config.update(parts[JudgingConfig])
                config.update(parts[RewardConfig])
                reward = _REWARDS[key] = with_ppo_fallback(reward_from_config(config))
    return reward


def set_reward(reward: JudgedReward | None) -> None:
    """Use ``reward`` for calls without ``reward_kwargs`` (tests, custom setups)."""
    with _LOCK:
        _REWARDS.clear()
        if reward is not None:
            _REWARDS[json.dumps({})] = reward


class _MicroBatcher:
    """Gather concurrent single-item calls into batches: the first caller waits ``wait`` seconds,
    then runs the batch for everyone who arrived; callers arriving meanwhile form the next one."""

    def __init__(self, run: Callable[[list[Any]], list[Any]], wait: float = 0.05, max_batch: int = 256):
        self.run, self.wait, self.max_batch = run, wait, max_batch
        self._lock = threading.Lock()
        self._queue: list[tuple[Any, dict[str, Any], threading.Event]] = []
        self._leader = False

    def __call__(self, item: Any) -> Any:
        slot: dict[str, Any] = {}
        done = threading.Event()
        with self._lock:
            self._queue.append((item, slot, done))
            lead = not self._leader
            self._leader = self._leader or lead
        if lead:
            self._lead()
        done.wait()
        if "error" in slot:
            raise slot["error"]
        return slot["value"]

    def _lead(self) -> None:
        threading.Event().wait(self.wait)
        while True:
            with self._lock:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                if not batch:
                    self._leader = False
                    return
            try:
                results = self.run([item for item, _, _ in batch])
                for (_, slot, _), value in zip(batch, results):
                    slot["value"] = value
            except BaseException as err:  # every waiter gets the error, none hangs
                for _, slot, _ in batch:
                    slot["error"] = err
            for _, _, done in batch:
                done.set()


def _instruction(extra_info: Mapping[str, Any] | None) -> Any:
    info = extra_info or {}
    for key in _INSTRUCTION_KEYS:
        if info.get(key) is not None:
            return info[key]
    return None


def _reference_and_rubric(ground_truth: Any, extra_info: Mapping[str, Any] | None) -> tuple[Any, Any]:
    return label_fields(ground_truth, (extra_info or {}).get("rubric"))


def _score_batch(reward: JudgedReward, items: list[tuple[Any, str, Any, Any]]) -> list[dict[str, float]]:
    rows = EngineRows([i[0] for i in items], [strip_special_tokens(i[1]) if isinstance(i[1], str) else i[1] for i in items],
                      [i[2] for i in items], [i[3] for i in items])
    batch = reward.score_batch(rows.prompts, rows.responses, **rows.columns(reward))
    value_key = f"judge_{batch.value_name}"
    scores, how = ppo_rewards(reward, batch)
    flags = judge_flags(batch, how)
    return [
        {
            "score": score,
            # 0.0 marks an unscorable row: read the mean together with judge_unscorable
            value_key: float(row.value) if row.value is not None else 0.0,
            "judge_unscorable": float(row.unscorable),
            "judge_truncated": float(row.truncated),
            **{name: values[i] for name, values in flags.items()},
        }
        for i, (score, row) in enumerate(zip(scores, batch.rows))
    ]


_BATCHERS: dict[int, _MicroBatcher] = {}


def compute_score(
    data_source: Any = None,
    solution_str: str = "",
    ground_truth: Any = None,
    extra_info: Mapping[str, Any] | None = None,
    **reward_kwargs: Any,
) -> dict[str, float]:
    """verl's per-sample contract; concurrent calls share one judge batch."""
    reward_kwargs = {k: v for k, v in reward_kwargs.items() if k not in ("reward_router_address", "reward_model_tokenizer")}
    # per-sample calls are gathered into micro-batches that may split a prompt's group: shapes that
    # compare a group's completions are refused here (compute_score_batch can serve them)
    reward = _reward_for(reward_kwargs).for_engine(*VERL_PER_SAMPLE)
    batcher = _BATCHERS.get(id(reward))
    if batcher is None:
        with _LOCK:
            batcher = _BATCHERS.setdefault(
                id(reward),
                _MicroBatcher(lambda items: _score_batch(reward, items), wait=float(os.environ.get("PROMETHEUS_REWARD_BATCH_WAIT", "0.05"))),
            )
    reference, rubric = _reference_and_rubric(ground_truth, extra_info)
    return batcher((_instruction(extra_info), solution_str, reference, rubric))


def compute_score_batch(
    data_sources: Sequence[Any],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
    **reward_kwargs: Any,
) -> list[dict[str, float]]:
    """The batched contract of verl's ``BatchRewardManager`` (one call per batch, whole groups: every
    shape but the OnlineDPO layout works here)."""
    reward = _reward_for(reward_kwargs).for_engine(*VERL_BATCH)
    infos = list(extra_infos) if extra_infos is not None else [None] * len(solution_strs)
    items = []
    for solution, truth, info in zip(solution_strs, ground_truths, infos):
        reference, rubric = _reference_and_rubric(truth, info)
        items.append((_instruction(info), solution, reference, rubric))
    return _score_batch(reward, items)
