"""A Prometheus judge as OpenRLHF's reward function file.

OpenRLHF (``openrlhf.cli.train_ppo_ray``) accepts ``--remote_rm_url /path/to/file.py``: it loads the
file by path and calls its ``reward_func(queries, prompts, labels)`` (``queries`` are the templated
prompts followed by the decoded responses, ``labels`` come from ``--label_key``). Point it at this
file; the judge is configured from the environment (see
:func:`prometheus_reward.config.from_env`), e.g. ``PROMETHEUS_REWARD_CONFIG=configs/judge.yaml``
or ``PROMETHEUS_REWARD_MODEL=...``.

``labels`` are read as the reference answer, or, when a label is a JSON object, as
``{"reference_answer": ..., "rubric": ...}`` (:mod:`prometheus_reward.adapters.protocol`). The
return value is what recent OpenRLHF expects: ``{"rewards": tensor, "scores": tensor,
"extra_logs": {...}}``. PPO has no notion of a masked reward, so unscorable rows get the config's
``fallback``, by default the normaliser's neutral value (0.5 under ``linear``: a score of 3, never
the worst reward), and are counted in ``extra_logs["prometheus_unscorable"]``.

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

from prometheus_reward.adapters.protocol import instruction_of, label_fields, split_query
from prometheus_reward.config import from_env
from prometheus_reward.rewards import RubricReward, reward_from_config, with_ppo_fallback

_REWARD: RubricReward | None = None
_LOCK = threading.Lock()


def get_reward() -> RubricReward:
    """The process-wide reward, built on first use from the environment."""
    global _REWARD
    if _REWARD is None:
        with _LOCK:
            if _REWARD is None:
                _REWARD = with_ppo_fallback(reward_from_config(from_env()))
    return _REWARD


def set_reward(reward: RubricReward | None) -> None:
    """Use ``reward`` instead of the one the environment describes (tests, custom setups)."""
    global _REWARD
    _REWARD = reward


def reward_func(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """OpenRLHF's reward-function contract: rewards (for the advantage), scores (for dynamic
    filtering; the same values here) and extra_logs (per-sample values OpenRLHF logs)."""
    import torch

    reward = get_reward()
    n = len(queries)
    labels = list(labels) if labels is not None else [None] * n
    instructions, responses, references, rubrics = [], [], [], []
    for query, prompt, label in zip(queries, prompts, labels):
        instructions.append(instruction_of(prompt))
        responses.append(split_query(query, prompt))
        reference, rubric = label_fields(label)
        references.append(reference)
        rubrics.append(rubric)
    values, grades = reward.score(
        instructions, responses, **{reward.reference_column: references, reward.rubric_column: rubrics}
    )
    fallback = reward.fallback if reward.fallback is not None else reward.neutral_reward
    rewards = torch.tensor([fallback if v is None else v for v in values], dtype=torch.float32)
    raw = [g.value if g.value is not None else 0.0 for g in grades]
    unscorable = [1.0 if g.value is None else 0.0 for g in grades]
    return {
        "rewards": rewards,
        "scores": rewards.clone(),
        "extra_logs": {
            # 0.0 marks an unscorable row: read the mean raw score together with the unscorable rate
            "prometheus_raw_score": torch.tensor(raw, dtype=torch.float32),
            "prometheus_unscorable": torch.tensor(unscorable, dtype=torch.float32),
        },
    }
