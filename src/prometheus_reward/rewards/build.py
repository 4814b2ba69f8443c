"""Rewards built from configuration: the recipes' :data:`RewardArguments` (flat options read by
``trl.TrlParser``), plain mappings (YAML, the PPO adapters, :func:`prometheus_reward.config.from_env`).
All of them are generated from :mod:`prometheus_reward.config`, so an option and its default exist
once; the shape is looked up by ``reward_type`` in :data:`~prometheus_reward.registry.REWARD_SHAPES`.

Example:
    >>> args = RewardArguments(judge_model="embedded:tiny-random", judge_max_new_tokens=8)
    >>> reward = build_reward(args)
    >>> reward.mode, reward.judging.max_new_tokens
    ('expected', 8)
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from ..config import JudgeConfig, JudgingConfig, RewardConfig, flat_dataclass, from_mapping, from_object, options
from ..registry import REWARD_SHAPES
from .base import JudgedReward, judge_config_of
from .pairwise import Layout

logger = logging.getLogger("prometheus_reward.rewards")

RewardArguments = flat_dataclass(
    "RewardArguments",
    doc="The judge and reward options of the training recipes, as ``trl.TrlParser`` reads them from the "
        "command line and YAML: every :class:`~prometheus_reward.config.JudgeConfig` and "
        ":class:`~prometheus_reward.config.JudgingConfig` field as ``judge_<name>`` (``judge_model``, "
        "``judge_mode``, ``judge_max_new_tokens``), every :class:`~prometheus_reward.config.RewardConfig` "
        "field by its name (``rubric``, ``normalize``, ``fallback``).",
)
RewardArguments.__module__ = __name__


def make_reward(judge: Any, judging: JudgingConfig | None = None, reward: RewardConfig | None = None,
                layout: Layout = "group") -> JudgedReward:
    """The reward function the configs describe: the shape ``reward.reward_type`` names in
    :data:`~prometheus_reward.registry.REWARD_SHAPES` builds it (``layout`` for pairwise rewards:
    ``group`` for GRPO/RLOO, ``online_dpo`` for OnlineDPOTrainer). ``judge`` is a Judge, a
    JudgeConfig, its dict or a model id; a config is built lazily, on the first call, in the
    process that calls."""
    judging = judging or JudgingConfig()
    reward = reward or RewardConfig()
    return REWARD_SHAPES.get(reward.reward_type)(judge, judging, reward, layout)


def build_reward(args: Any, layout: Layout = "group") -> JudgedReward:
    """The reward a recipe's :data:`RewardArguments` describe (judge built lazily)."""
    return make_reward(from_object(JudgeConfig, args, flat=True), from_object(JudgingConfig, args, flat=True),
                       from_object(RewardConfig, args, flat=True), layout)


def reward_from_config(config: Mapping[str, Any], layout: Layout = "group", **overrides: Any) -> JudgedReward:
    """A reward from a plain mapping (YAML): a ``judge`` section (:class:`JudgeConfig` fields, or a
    model id), :class:`JudgingConfig` fields (``mode``, ``samples``, and the sampling fields
    directly or in a ``sampling`` section) and :class:`RewardConfig` fields (``rubric``,
    ``normalize``, ``fallback``...). Unknown keys are errors.

    Example:
        >>> r = reward_from_config({"judge": {"model": "embedded:tiny-random"}, "rubric": "honesty"})
        >>> r.__name__.startswith("prometheus_honesty")
        True
    """
    config = {**dict(config), **overrides}
    judge = config.pop("judge", None)
    if judge is None:
        raise ValueError("the reward config needs a 'judge' section")
    sampling = dict(config.pop("sampling", None) or {})
    judging_names = {o.name for o in options(JudgingConfig)}
    reward_names = {o.name for o in options(RewardConfig)}
    unknown = set(config) - judging_names - reward_names
    if unknown:
        raise ValueError(f"unknown reward config key(s): {', '.join(sorted(unknown))}")
    judging = from_mapping(JudgingConfig, {**{k: v for k, v in config.items() if k in judging_names}, **sampling},
                           "reward config")
    reward = from_mapping(RewardConfig, {k: v for k, v in config.items() if k in reward_names}, "reward config")
    return make_reward(judge if hasattr(judge, "grade") else judge_config_of(judge, "reward config: judge"), judging, reward,
                       layout)


def with_ppo_fallback(reward: JudgedReward) -> JudgedReward:
    """Set ``reward`` up for an engine that cannot mask (PPO), and say how its unscorable rows are
    paid (:meth:`~prometheus_reward.rewards.RewardBatch.filled`): a response the policy made
    unjudgeable gets the floor (never more: it must not gain by it); a row the judge or the
    transport failed on gets the mean reward of its prompt group's scored rows in the call, else
    the neutral value (0.5 under ``linear``), so a judge outage neither punishes nor pays the
    policy. An explicit ``fallback`` replaces that fill (never the floor). Logged, so the choice
    is visible; ``fallback`` itself is left as the user set it."""
    if reward.fallback is None:
        logger.warning("%s: rows the judge fails on get their prompt group's mean reward, else the neutral reward "
                       "%.3g (set 'fallback' to choose another); unjudgeable responses get the floor %.3g",
                       reward.__name__, reward.neutral_reward, reward.floor_reward())
    return reward
