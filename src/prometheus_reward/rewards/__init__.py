"""TRL reward functions backed by a Prometheus-style judge.

- :class:`RubricReward` / :class:`AsyncRubricReward` (:mod:`.absolute`): each completion graded 1-5
  against a rubric, normalised into a reward.
- :class:`ChecklistReward` (:mod:`.checklist`): a weighted checklist of criteria (RaR), one
  judgment per item or one for the whole list, with per-item logs.
- :class:`PairwiseReward` (:mod:`.pairwise`): A-vs-B judgments in both orders; the Online DPO layout
  (:class:`OnlineDPOPairwiseReward`) and the GRPO/RLOO group layout (:class:`GroupPairwiseReward`,
  :class:`AsyncPairwiseReward`).
- :mod:`.build`: rewards from the recipes' :data:`RewardArguments`, YAML mappings and the environment,
  each shape found by ``reward_type`` in :data:`~prometheus_reward.registry.REWARD_SHAPES`.
- :mod:`.contract`: the one scoring contract of every shape: ``reward.score_batch(prompts,
  completions, **columns)`` -> :class:`RewardBatch` (rewards plus per-row provenance), ``ascore_batch``,
  and the layouts engines deliver (:meth:`JudgedReward.for_engine` refuses a shape an engine
  cannot feed, with :class:`UnusableReward`).

They follow TRL's reward-function contract (``trl`` 1.16): called with keyword arguments
``prompts``, ``completions``, ``completion_ids`` plus every extra dataset column, ``trainer_state``
and, in GRPO/RLOO, ``log_extra`` / ``log_metric``; they return one float or None per completion
(None = unscorable, masked by the trainer). Who is to blame decides what an unscorable row gets
(:mod:`prometheus_reward.blame`): a response the policy made unjudgeable gets the floor reward
(never None: it must not gain by it); a row the judge or the transport failed on comes back as None
(or ``fallback``) with a warning and a logged metric per cause, and a failing or slow judge call
(see ``timeout``) turns the whole batch into None instead of stalling every rank. Inside a
training step they never raise, with one exception: the circuit breaker (``breaker_window``,
``breaker_threshold``) raises :class:`~prometheus_reward.blame.JudgeOutage` when the judge keeps
failing, rather than train on masks and fills.

Example:
    >>> from prometheus_reward import Judge, RubricReward
    >>> judge = Judge.from_pretrained("prometheus-eval/prometheus-7b-v2.0", dtype="bfloat16")  # doctest: +SKIP
    >>> reward = RubricReward(judge, rubric="helpfulness")                                     # doctest: +SKIP
    >>> reward(prompts=["Say hi."], completions=["Hello!"])                                  # doctest: +SKIP
    [0.83]
    >>> # trainer = GRPOTrainer(model=..., reward_funcs=[reward], ...)
"""

from .absolute import AsyncRubricReward, RubricReward
from .base import JudgeBusy, JudgedReward
from .checklist import ChecklistReward
from .build import RewardArguments, build_reward, make_reward, reward_from_config, with_ppo_fallback
from .contract import GROUPS, PAIRS, ROWS, RewardBatch, ScoredRow, TournamentRecord, UnusableReward
from .pairwise import AsyncPairwiseReward, GroupPairwiseReward, OnlineDPOPairwiseReward, PairwiseReward

__all__ = [
    "GROUPS",
    "PAIRS",
    "ROWS",
    "RewardBatch",
    "ScoredRow",
    "TournamentRecord",
    "UnusableReward",
    "AsyncPairwiseReward",
    "AsyncRubricReward",
    "ChecklistReward",
    "GroupPairwiseReward",
    "JudgeBusy",
    "JudgedReward",
    "OnlineDPOPairwiseReward",
    "PairwiseReward",
    "RewardArguments",
    "RubricReward",
    "build_reward",
    "make_reward",
    "reward_from_config",
    "with_ppo_fallback",
]
