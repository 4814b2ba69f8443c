"""The one scoring contract every reward shape speaks (rubric, checklist, pairwise, tournament...):
``reward.score_batch(prompts, completions, **columns) -> RewardBatch`` and its async twin
``ascore_batch``. A :class:`RewardBatch` holds the rewards (what a TRL trainer gets from
``reward(...)``) and, per row, where each came from (:class:`ScoredRow`): the judged value, the
judgment (a :class:`~prometheus_reward.grades.Grade`, a
:class:`~prometheus_reward.grades.Preference` or a :class:`TournamentRecord`), the error of an
unscorable row, and the flat fields an engine logs (:meth:`RewardBatch.info`).

Engines hand rewards rows in different layouts, and a shape needs one of them (``needs``):
:data:`ROWS` (each row judged on its own), :data:`GROUPS` (every completion of a prompt in the same
call) or :data:`PAIRS` (TRL OnlineDPO's rows i and i + B). An engine states what it delivers with
:meth:`~prometheus_reward.rewards.JudgedReward.for_engine`; a shape it cannot feed is refused
there, when the reward is set up, with :class:`UnusableReward`.

Example:
    >>> row = ScoredRow(reward=0.75, value=4.0, error=None, source="parsed")
    >>> batch = RewardBatch([0.75], [row], "raw_score")
    >>> batch.info()
    {'raw_score': [4.0], 'unscorable': [0.0], 'truncated': [0.0], 'source': ['parsed']}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

ROWS = "rows"
GROUPS = "groups"
PAIRS = "pairs"

NEEDS_TEXT = {
    ROWS: "rows it can judge one at a time",
    GROUPS: "every completion of a prompt in the same call (it compares them with each other)",
    PAIRS: "TRL OnlineDPO's layout (rows i and i + B are two samples of one prompt)",
}
NEEDS_HINT = {
    GROUPS: "Use a row-wise shape (reward_type absolute or checklist, or pairwise with pairwise_anchor reference "
            "or auto), or an engine that passes whole groups (TRL GRPO/RLOO, verl's compute_score_batch, the "
            "server's /group_reward)",
    PAIRS: "The online_dpo layout is for TRL's OnlineDPOTrainer; use layout='group' elsewhere",
    ROWS: "",
}


class UnusableReward(ValueError):
    """A reward shape the engine cannot feed (the message says what it needs and what to use)."""


@dataclass
class TournamentRecord:
    """A row's part in its group's tournament: its fitted strength (probability of beating a random
    other member), how many of its matches were scored, and the preferences of those matches (the
    row may be A or B in them: ``opponents`` says who it met)."""

    strength: float | None
    played: int
    opponents: list[int] = field(default_factory=list)
    preferences: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"strength": self.strength, "played": self.played, "opponents": list(self.opponents),
                "preferences": [p.to_dict() if hasattr(p, "to_dict") else p for p in self.preferences]}


@dataclass
class ScoredRow:
    """One row's reward and its provenance.

    Attributes:
        reward: what the trainer gets (``fallback`` applied; None = masked).
        value: the judged number before shaping (the 1-5 score, the win probability, the
            tournament strength); None when the row is unscorable.
        error: why the row is unscorable (None when it was scored).
        judgment: the Grade, Preference or TournamentRecord behind the value (None when no judge
            call reached the row).
        truncated: an input was cut to fit the evaluator's context.
        source: how the value was read: ``parsed``, ``forced``, ``direct`` (from the judgment),
            ``tie`` (a completion against itself) or ``tournament``.
    """

    reward: float | None
    value: float | None
    error: str | None
    judgment: Any = None
    truncated: bool = False
    source: str | None = None

    @property
    def unscorable(self) -> bool:
        return self.value is None


@dataclass
class RewardBatch:
    """Rewards and per-row provenance of one scored batch (see the module).

    Attributes:
        rewards: one float or None per row: what ``reward(...)`` returns.
        rows: per row, a :class:`ScoredRow`.
        value_name: what ``ScoredRow.value`` is: ``raw_score``, ``win_prob`` or ``strength``.
        failure: the error of a judge call that failed (its rows are unscorable), else None.
        judge_rows: rows sent to the judge (grades, or comparisons: each judged in both orders).
        metrics: the statistics logged for the batch (``unscorable_frac``, ``judge_seconds``...).
    """

    rewards: list[float | None]
    rows: list[ScoredRow]
    value_name: str
    failure: str | None = None
    judge_rows: int = 0
    metrics: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[ScoredRow]:
        return iter(self.rows)

    @property
    def judgments(self) -> list[Any]:
        return [r.judgment for r in self.rows]

    @property
    def values(self) -> list[float | None]:
        return [r.value for r in self.rows]

    @property
    def errors(self) -> list[str | None]:
        return [r.error for r in self.rows]

    @property
    def unscorable(self) -> list[bool]:
        return [r.unscorable for r in self.rows]

    def info(self) -> dict[str, list[Any]]:
        """The flat per-row fields an engine logs: the value (named by ``value_name``), and
        ``unscorable``, ``truncated`` as 0.0/1.0, and ``source``."""
        return {
            self.value_name: self.values,
            "unscorable": [float(r.unscorable) for r in self.rows],
            "truncated": [float(r.truncated) for r in self.rows],
            "source": [r.source for r in self.rows],
        }
