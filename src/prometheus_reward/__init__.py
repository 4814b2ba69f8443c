"""prometheus-reward: an open, rubric-driven evaluator LLM (Prometheus) as an RLHF reward.

Example:
    >>> from prometheus_reward import Judge, Rubric
    >>> judge = Judge.from_pretrained("prometheus-eval/prometheus-7b-v2.0", dtype="bfloat16", device_map="auto")  # doctest: +SKIP
    >>> grades = judge.grade(["Explain rain to a child."], ["Clouds get heavy..."], Rubric.preset("helpfulness"))  # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .cached import CachedJudge
from .config import DEFAULT_EVALUATOR, JudgeConfig, JudgingConfig
from .grades import Grade, Preference
from .judge import Judge
from .rubric import Rubric

__version__ = "0.1.0"

# Heavier parts load on first use (TRL is only needed for the reward functions).
_LAZY = {
    "RubricReward": "prometheus_reward.rewards",
    "PairwiseReward": "prometheus_reward.rewards",
    "AsyncRubricReward": "prometheus_reward.rewards",
    "AsyncPairwiseReward": "prometheus_reward.rewards",
    "reward_from_config": "prometheus_reward.rewards",
    "ChecklistReward": "prometheus_reward.rewards",
    "Checklist": "prometheus_reward.checklist",
}

__all__ = ["DEFAULT_EVALUATOR", "CachedJudge", "Grade", "Judge", "JudgeConfig", "JudgingConfig", "Preference", "Rubric",
           *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'prometheus_reward' has no attribute {name!r}")
