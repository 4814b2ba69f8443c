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
    >>> batch.info()["raw_score"], batch.info()["cause"], batch.info()["judge_floor"]
    ([4.0], [None], [0.0])

Unscorable rows carry a ``cause`` (:mod:`prometheus_reward.blame`): a ``response``-caused row gets
the **floor** reward (``floor=True``: the reward is real, never None, so the policy never gains by
being unjudgeable); a ``judge``- or ``transport``-caused row (or one whose cause is unknown, such as
a malformed input row) is masked (None) unless ``fallback`` is set. Trainers that cannot mask
(PPO engines, the server) read :meth:`RewardBatch.filled`: the same rewards with those rows given
a fill that carries no signal for their prompt group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable, Iterator, Sequence

from ..blame import CAUSES, counted, fill

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
        cause: who is to blame when the row is unscorable: ``response``, ``judge``, ``transport``
            (see :mod:`prometheus_reward.blame`), or None (scored, or unknown: treated as ``judge``).
        floor: the reward is the floor given to a ``response``-caused row.
        group: the row's prompt group (what a fill averages over).
    """

    reward: float | None
    value: float | None
    error: str | None
    judgment: Any = None
    truncated: bool = False
    source: str | None = None
    cause: str | None = None
    floor: bool = False
    group: Hashable = None

    @property
    def unscorable(self) -> bool:
        return self.value is None

    @property
    def blamed(self) -> str | None:
        """The cause as counted: an unscorable row with no known cause counts as ``judge``."""
        return counted(self.cause) if self.unscorable else None


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

    @property
    def causes(self) -> list[str | None]:
        """Per row, the cause as counted (:attr:`ScoredRow.blamed`): None for scored rows."""
        return [r.blamed for r in self.rows]

    def filled(self, neutral: float) -> tuple[list[float], list[str | None]]:
        """Rewards for a trainer that cannot mask (PPO engines, the server), and per row how each
        was made: None (scored, or a user's ``fallback``), ``"floor"`` (``response``-caused) or
        ``"fill"`` (``judge``/``transport``: the mean reward of the scored rows of the same prompt
        group in this batch, else ``neutral``; see :func:`prometheus_reward.blame.fill`).

        Example:
            >>> rows = [ScoredRow(0.2, 1.8, None, group="p"), ScoredRow(None, None, "timed out", cause="transport", group="p"),
            ...         ScoredRow(0.0, None, "unterminated <think>", cause="response", floor=True, group="p")]
            >>> RewardBatch([0.2, None, 0.0], rows, "raw_score").filled(neutral=0.5)
            ([0.2, 0.2, 0.0], [None, 'fill', 'floor'])
        """
        scored = [None if (row.unscorable or row.floor) else r for r, row in zip(self.rewards, self.rows)]
        out, how = fill(scored, [row.blamed for row in self.rows], groups=[row.group for row in self.rows],
                        floor=0.0, neutral=neutral)
        for i, (reward, row) in enumerate(zip(self.rewards, self.rows)):
            if row.floor:  # the reward's own floor (length-penalised like any real reward)
                out[i], how[i] = float(reward), "floor"  # type: ignore[arg-type]
            elif row.unscorable and reward is not None:  # the user's explicit fallback wins over the fill
                out[i], how[i] = float(reward), None
        return out, how

    def info(self) -> dict[str, list[Any]]:
        """The flat per-row fields an engine logs: the value (named by ``value_name``), and
        ``unscorable``, ``truncated`` as 0.0/1.0, ``source``, the ``cause`` of an unscorable
        row, and ``judge_floor`` (1.0: the row got the floor reward)."""
        return {
            self.value_name: self.values,
            "unscorable": [float(r.unscorable) for r in self.rows],
            "truncated": [float(r.truncated) for r in self.rows],
            "source": [r.source for r in self.rows],
            "cause": self.causes,
            "judge_floor": [float(r.floor) for r in self.rows],
        }


def cause_counts(causes: Sequence[str | None]) -> dict[str, float]:
    """The per-cause shares a reward logs: ``unscorable_frac`` and ``unscorable_<cause>_frac``.

    Example:
        >>> cause_counts(["response", None, "judge", None])
        {'unscorable_frac': 0.5, 'unscorable_response_frac': 0.25, 'unscorable_judge_frac': 0.25, 'unscorable_transport_frac': 0.0}
    """
    n = len(causes)
    out = {"unscorable_frac": sum(c is not None for c in causes) / n if n else 0.0}
    for cause in CAUSES:
        out[f"unscorable_{cause}_frac"] = sum(c == cause for c in causes) / n if n else 0.0
    return out
