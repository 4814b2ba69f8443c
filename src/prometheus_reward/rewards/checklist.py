"""Checklist rubrics as a TRL reward (RaR's explicit and implicit aggregation): see
:mod:`prometheus_reward.checklist` for the checklist itself and the formula.

:class:`ChecklistReward` is a :class:`~prometheus_reward.rewards.RubricReward` whose rubric is a
checklist (one for every row, or a per-row ``rubric`` column holding checklists, as RaR's data
does). Under the default ``linear`` normaliser the reward is RaR's ``sum_i w_i s_i / sum_i |w_i|``.
Every call logs each item's value per completion (``<name>/item/<id>`` in the completions table)
and each item's mean (``rewards/<name>/item/<id>/mean``), so a user sees which criterion the
policy is learning, or gaming.

Cost per completion: explicit aggregation, one judgment per item (all items of all completions in
one evaluator batch); implicit, one judgment.

Example:
    >>> reward = ChecklistReward(judge, "configs/rubrics/medication_advice_checklist.yaml")  # doctest: +SKIP
    >>> reward(prompts=["How much ibuprofen can I take?"], completions=["Up to 400 mg every..."])  # doctest: +SKIP
    [0.71]
"""

from __future__ import annotations

from typing import Any

from ..checklist import Checklist, coerce_criteria
from ..config import JudgingConfig, RewardConfig
from .absolute import RubricReward
from .base import config_options


class ChecklistReward(RubricReward):
    """A :class:`~prometheus_reward.rewards.RubricReward` over a checklist.

    Args:
        judge: as for :class:`~prometheus_reward.rewards.RubricReward`.
        checklist: a :class:`~prometheus_reward.checklist.Checklist`, its dict or item list, a
            YAML/JSON file; or None when every row brings its own in the ``rubric`` column.
        aggregation: ``explicit`` (default: each checklist's own) or ``implicit``.
        min_items_frac: explicit aggregation: the share of the total |weight| that must be scored
            (default: the checklist's own, 1.0 unless it says otherwise).
        **options: every other :class:`~prometheus_reward.rewards.RubricReward` option (as keywords).
    """

    _default_prefix = "prometheus_checklist"
    shape = "checklist"

    def __init__(self, judge: Any, checklist: Any = None, *, aggregation: str | None = None,
                 min_items_frac: float | None = None, **options: Any):
        if checklist is not None:
            checklist = coerce_criteria(checklist)
            if not isinstance(checklist, Checklist):
                raise ValueError("ChecklistReward needs a checklist (items with criteria and weights), not a single "
                                 "rubric; use RubricReward for a rubric")
            if min_items_frac is not None:
                checklist = Checklist(checklist.items, checklist.name, checklist.aggregation, min_items_frac)
        if aggregation is not None or "checklist_aggregation" not in options:
            options["checklist_aggregation"] = aggregation
        super().__init__(judge, checklist, **options)


def build_checklist_reward(judge: Any, judging: JudgingConfig, reward: RewardConfig,
                           layout: str = "group") -> ChecklistReward:
    """The ``checklist`` reward shape: a :class:`ChecklistReward` over ``reward.rubric`` (a
    checklist file or mapping; None when every row brings its own), aggregated as
    ``judging.checklist_aggregation`` says."""
    options = config_options(judging, reward, "rubric", "checklist_aggregation")
    return ChecklistReward(judge, reward.rubric, aggregation=judging.checklist_aggregation, **options)
