"""A Prometheus judge as OpenRLHF's reward function file.

OpenRLHF (``openrlhf.cli.train_ppo_ray``) accepts ``--remote_rm_url /path/to/file.py``: it loads the
file by path and calls its ``reward_func(queries, prompts, labels)`` (``queries`` are the templated
prompts followed by the decoded responses, ``labels`` come from ``--label_key``). Point it at this
file; the judge is configured from the environment (see
:func:`prometheus_reward.config.from_env`), e.g. ``PROMETHEUS_REWARD_CONFIG=configs/judge.yaml``
or ``PROMETHEUS_REWARD_MODEL=...``.

``labels`` are read as the reference answer, or, when a label is a JSON object, as
``{"reference_answer": ..., "rubric": ...}`` (:mod:`prometheus_reward.adapters.protocol`). Every
reward shape OpenRLHF can feed works (it scores through the reward's ``score_batch``): rubric,
checklist, pairwise against the reference (``pairwise_anchor`` reference or auto). OpenRLHF calls
with one sample at a time, so the shapes that compare a prompt's completions with each other
(``tournament``, ``pairwise_anchor: group``) and the OnlineDPO layout are refused when the reward is
set up (:class:`~prometheus_reward.rewards.UnusableReward`); serve them through the reward server's
``/group_reward`` instead. The
return value is what recent OpenRLHF expects: ``{"rewards": tensor, "scores": tensor,
"extra_logs": {...}}``. PPO has no notion of a masked reward, so an unscorable row is settled by who
is to blame (:mod:`prometheus_reward.blame`): a response the policy made unjudgeable (an unclosed
``<think>``...) gets the floor reward (0.0 under ``linear``: it must never gain by it), flagged in
``extra_logs["prometheus_judge_floor"]``; a row the judge or the transport failed on gets the mean
reward of the scored rows of its prompt in the call, else the neutral value (0.5 under ``linear``),
or the config's ``fallback`` when set, flagged in ``extra_logs["prometheus_judge_fill"]``. Every
unscorable row is counted in ``extra_logs["prometheus_unscorable"]`` and by cause in
``prometheus_unscorable_response`` / ``_judge`` / ``_transport``. When the judge keeps failing, the
circuit breaker (``breaker_window``, ``breaker_threshold``) raises
:class:`~prometheus_reward.blame.JudgeOutage` from ``reward_func``, which stops the run.

The file uses absolute imports only: OpenRLHF executes it outside its package.

Example:
    >>> import os; os.environ["PROMETHEUS_REWARD_MODEL"] = "prometheus-eval/prometheus-7b-v2.0"  # doctest: +SKIP
    >>> reward_func(["<|im_start|>user\\nSay hi.<|im_end|>\\n<|im_start|>assistant\\nHello!"],
    ...             ["<|im_start|>user\\nSay hi.<|im_end|>\\n<|im_start|>assistant\\n"], [""])["rewards"]  # doctest: +SKIP
    tensor([0.8100])
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

from prometheus_reward.adapters.protocol import OPENRLHF, blame_flags, openrlhf_rows, ppo_rewards
from prometheus_reward.config import from_env
from prometheus_reward.rewards import JudgedReward, reward_from_config, with_ppo_fallback

_REWARD: JudgedReward | None = None
_LOCK = threading.Lock()


def _for_openrlhf(reward: JudgedReward) -> JudgedReward:
    """``reward`` set up for OpenRLHF, which scores one sample per call: a shape that needs whole
    groups or OnlineDPO pairs is refused here, with one clear error, before any rollout."""
    return reward.for_engine(*OPENRLHF)


def get_reward() -> JudgedReward:
    """The process-wide reward, built on first use from the environment."""
    global _REWARD
    if _REWARD is None:
        with _LOCK:
            if _REWARD is None:
                _REWARD = with_ppo_fallback(_for_openrlhf(reward_from_config(from_env())))
    return _REWARD


def set_reward(reward: JudgedReward | None) -> None:
    """Use ``reward`` (any shape OpenRLHF can feed) instead of the one the environment describes."""
    global _REWARD
    _REWARD = None if reward is None else _for_openrlhf(reward)


def reward_func(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """OpenRLHF's reward-function contract: rewards (for the advantage), scores (for dynamic
    filtering; the same values here) and extra_logs (per-sample values OpenRLHF logs: the judged
    value, ``prometheus_raw_score`` for rubric rewards, ``prometheus_win_prob`` for pairwise ones)."""
    import torch

    reward = get_reward()
    rows = openrlhf_rows(queries, prompts, labels)
    batch = reward.score_batch(rows.prompts, rows.responses, **rows.columns(reward))
    values, how = ppo_rewards(reward, batch)
    rewards = torch.tensor(values, dtype=torch.float32)
    return {
        "rewards": rewards,
        "scores": rewards.clone(),
        "extra_logs": {
            # 0.0 marks an unscorable row: read the mean value together with the unscorable rate
            f"prometheus_{batch.value_name}": torch.tensor([v if v is not None else 0.0 for v in batch.values],
                                                           dtype=torch.float32),
            "prometheus_unscorable": torch.tensor([float(u) for u in batch.unscorable], dtype=torch.float32),
            **{f"prometheus_{name}": torch.tensor(flags, dtype=torch.float32)
               for name, flags in blame_flags(batch, how).items()},
        },
    }
