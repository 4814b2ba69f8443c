"""What a judgment returns: :class:`Grade` (absolute, 1-5) and :class:`Preference` (A vs B)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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
    """

    score: int | None = None
    expected: float | None = None
    probs: list[float] | None = None
    feedback: str = ""
    truncated: bool = False
    mean: float | None = None
    samples: list[int | None] = field(default_factory=list)
    error: str | None = None

    @property
    def value(self) -> float | None:
        """The best available scalar: expected score, else the sample mean, else the score."""
        if self.expected is not None:
            return self.expected
        if self.mean is not None:
            return self.mean
        return None if self.score is None else float(self.score)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    """

    winner: str | None = None
    prob_a: float | None = None
    feedback: str = ""
    consistent: bool = False
    feedback_swapped: str = ""
    truncated: bool = False
    votes: list[str | None] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
