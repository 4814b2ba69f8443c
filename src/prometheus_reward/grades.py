"""What a judgment returns: :class:`Grade` (absolute, 1-5) and :class:`Preference` (A vs B).

Both say how their number was obtained (``source``: ``parsed`` from a written ``[RESULT]``,
``forced`` when a distribution read after an appended marker contributed, ``direct`` for the
one-forward-pass mode) and how much probability the evaluator put on the answer tokens
(``score_mass`` / ``answer_mass``). A judgment that earned no number has ``error`` set and its
``value`` / ``prob_a`` is None: never a default.

Example:
    >>> Grade(score=4, mean=4.0, source="parsed").value
    4.0
    >>> Grade(expected=3.0, source="forced", error="below min_score_mass").value is None
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class Grade:
    """One absolute judgment.

    Attributes:
        score: the integer score 1-5 (mean of the parsed samples, rounded half up; in ``direct``
            mode the most likely score), or None when unscorable.
        expected: ``sum k * p(k)`` from the score-token probabilities (``expected``/``direct``).
        probs: p(1..5) at the result position, averaged over samples.
        feedback: the evaluator's feedback (first sample); empty in ``direct`` mode.
        truncated: the input was cut to fit the evaluator's context.
        mean: the mean of the parsed sample scores (what the papers correlate for k samples).
        samples: each sample's parsed score (None where unparseable after retries).
        error: why the row is unscorable, when it is.
        source: how the number was obtained: ``parsed``, ``forced`` (a distribution read after an
            appended ``[RESULT]`` contributed to ``expected``), ``direct``; None when unscorable.
        score_mass: the probability the evaluator put on the five score tokens before
            renormalising (mean over samples); None when not measured.
        flags: judge-gaming patterns found in the graded response (see :mod:`prometheus_reward.guards`),
            and what an allowed partial number rests on: ``partial_samples`` (fewer samples than
            asked gave it, allowed by ``min_samples``), ``invalid_verdict`` (a forced reading stood
            in for a verdict outside the scale); on an unscorable row, why the response is to
            blame (``unterminated_reasoning``, ``too_long``).
        items: for a checklist graded item by item, each item's result (``id``, ``criterion``,
            ``weight``, ``value``, ``score``, ``source``, ``score_mass``, ``error``, ``cause``);
            None otherwise.
        cause: who is to blame when the row is unscorable: ``response`` (the policy's output
            cannot be judged), ``judge`` or ``transport`` (see :mod:`prometheus_reward.blame`);
            None on a scored row, and on a row the user's input made unjudgeable (a missing
            instruction or rubric: an input error, not the policy's nor the judge's).
        logprobs: how a server's score distribution was read (HTTP engines): ``exact`` (every
            score token's logprob, asked for by id) or ``top-k`` (the top logprobs the server
            returned); None for local engines or when no distribution was used.
    """

    score: int | None = None
    expected: float | None = None
    probs: list[float] | None = None
    feedback: str = ""
    truncated: bool = False
    mean: float | None = None
    samples: list[int | None] = field(default_factory=list)
    error: str | None = None
    source: str | None = None
    score_mass: float | None = None
    flags: list[str] = field(default_factory=list)
    items: list[dict[str, Any]] | None = None
    cause: str | None = None
    logprobs: str | None = None

    @property
    def forced(self) -> bool:
        """A distribution read after an appended ``[RESULT]`` marker contributed to this grade."""
        return self.source == "forced"

    @property
    def value(self) -> float | None:
        """The best available scalar: expected score, else the sample mean, else the score; None
        when the row is unscorable (``error`` set)."""
        if self.error is not None:
            return None
        if self.expected is not None:
            return self.expected
        if self.mean is not None:
            return self.mean
        return None if self.score is None else float(self.score)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "forced": self.forced}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Grade":
        """The inverse of :meth:`to_dict` (derived keys such as ``forced`` are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Preference:
    """One pairwise judgment (both presentation orders unless ``swap=False``).

    Attributes:
        winner: "A", "B", or None when the orders disagree and the probabilities tie, or when
            the pair is unscorable.
        prob_a: p(A is better), averaged over both orders (from answer-token probabilities when
            available, else the fraction of votes for A).
        feedback: the evaluator's feedback for the A-first order.
        feedback_swapped: the feedback for the B-first order.
        consistent: both orders picked the same response (False when either is missing).
        truncated: an input was cut to fit the evaluator's context.
        error: why the pair is unscorable, when it is.
        source: ``parsed``, ``forced`` or ``direct`` (as for :class:`Grade`).
        answer_mass: the probability on the ``A`` / ``B`` tokens before renormalising (mean over
            the orders); None when not measured.
        flags: judge-gaming patterns found in either response (``A:``/``B:`` prefixed, as is why
            a response is to blame for an unscorable pair), ``single_order`` (one presentation
            order gave the verdict, allowed by ``allow_single_order``), ``partial_samples``.
        cause: who is to blame when the pair is unscorable (as for :class:`Grade`).
        logprobs: how a server's answer distribution was read (as for :class:`Grade`).
    """

    winner: str | None = None
    prob_a: float | None = None
    feedback: str = ""
    consistent: bool = False
    feedback_swapped: str = ""
    truncated: bool = False
    votes: list[str | None] = field(default_factory=list)
    error: str | None = None
    source: str | None = None
    answer_mass: float | None = None
    flags: list[str] = field(default_factory=list)
    cause: str | None = None
    logprobs: str | None = None

    @property
    def forced(self) -> bool:
        return self.source == "forced"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "forced": self.forced}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preference":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
