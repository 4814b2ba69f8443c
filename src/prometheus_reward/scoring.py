"""Score distributions, expected scores, and normalizers that turn grades into rewards.

Example:
    >>> from prometheus_reward.scoring import expected_score, Normalizer
    >>> expected_score([0.0, 0.0, 0.5, 0.5, 0.0])
    3.5
    >>> Normalizer("linear")([1.0, 3.0, 5.0, None])
    [0.0, 0.5, 1.0, None]
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Literal, Sequence

import numpy as np

from .config import NORMALIZE_METHODS

SCORES = (1, 2, 3, 4, 5)
NormalizeMethod = Literal["linear", "symmetric", "centered", "zscore", "identity"]
PairwiseTransform = Literal["prob", "symmetric", "logit"]


def expected_score(probs: Sequence[float] | None) -> float | None:
    """``sum_k k * p(k)`` over the scores 1..5 (probabilities are renormalised)."""
    if probs is None:
        return None
    p = np.asarray(probs, dtype=np.float64)
    total = p.sum()
    if p.shape != (5,) or not np.isfinite(total) or total <= 0:
        return None
    return float(np.dot(p / total, SCORES))


def mean_probs(distributions: Sequence[Sequence[float] | None]) -> list[float] | None:
    """Average several score distributions (e.g. of k samples); None entries are skipped."""
    usable = [np.asarray(d, dtype=np.float64) for d in distributions if d is not None]
    if not usable:
        return None
    return (np.mean(usable, axis=0)).tolist()


class Normalizer:
    """Map raw 1-5 scores (int or expected float) to rewards.

    Methods:
        - ``linear``: (s - 1) / 4, in [0, 1]
        - ``symmetric``: (s - 3) / 2, in [-1, 1]
        - ``centered``: s - 3, in [-2, 2]
        - ``zscore``: running z-score per rubric key (Welford over every score seen so far,
          this batch included); the first scores of a key are centred on 3 until 2 are seen
        - ``identity``: s unchanged

    None stays None (unscorable rows are masked by TRL, never given a fake value).
    """

    def __init__(self, method: NormalizeMethod = "linear", eps: float = 1e-6):
        if method not in NORMALIZE_METHODS:
            raise ValueError(f"unknown normalization {method!r}; choose one of {NORMALIZE_METHODS}")
        self.method = method
        self.eps = eps
        self._count: dict[str, int] = defaultdict(int)
        self._mean: dict[str, float] = defaultdict(float)
        self._m2: dict[str, float] = defaultdict(float)

    def _update(self, key: str, value: float) -> None:
        self._count[key] += 1
        delta = value - self._mean[key]
        self._mean[key] += delta / self._count[key]
        self._m2[key] += delta * (value - self._mean[key])

    def stats(self, key: str = "") -> tuple[int, float, float]:
        """(count, mean, std) of the running statistics for ``key``."""
        n = self._count[key]
        std = math.sqrt(self._m2[key] / (n - 1)) if n > 1 else 0.0
        return n, self._mean[key], std

    def __call__(self, scores: Sequence[float | None], keys: Sequence[str] | None = None) -> list[float | None]:
        method = self.method
        if method == "zscore":
            keys = list(keys) if keys is not None else [""] * len(scores)
            for score, key in zip(scores, keys):
                if score is not None:
                    self._update(key, float(score))
            out: list[float | None] = []
            for score, key in zip(scores, keys):
                if score is None:
                    out.append(None)
                    continue
                n, mean, std = self.stats(key)
                out.append((float(score) - mean) / (std + self.eps) if n > 1 and std > 0 else float(score) - 3.0)
            return out
        return [None if s is None else self.transform(float(s)) for s in scores]

    def neutral(self) -> float:
        """The reward of the middle score (3): 0.5 linear, 0 symmetric/centered/zscore, 3 identity."""
        return 0.0 if self.method == "zscore" else self.transform(3.0)

    def floor(self, key: str = "") -> float:
        """The reward of the worst score (1): what a ``response``-caused unscorable row gets (see
        :mod:`prometheus_reward.blame`): 0 linear, -1 symmetric, -2 centered, 1 identity; under
        ``zscore``, the z-score a 1 would get now under ``key``'s running statistics (which it does
        not update), or -2 (1 centred on 3) until two scores are seen.

        Example:
            >>> Normalizer("linear").floor(), Normalizer("symmetric").floor(), Normalizer("zscore").floor()
            (0.0, -1.0, -2.0)
        """
        if self.method != "zscore":
            return self.transform(1.0)
        n, mean, std = self.stats(key)
        return (1.0 - mean) / (std + self.eps) if n > 1 and std > 0 else -2.0

    def transform(self, score: float) -> float:
        """The stateless transform of one score (not defined for ``zscore``)."""
        if self.method == "linear":
            return (score - 1.0) / 4.0
        if self.method == "symmetric":
            return (score - 3.0) / 2.0
        if self.method == "centered":
            return score - 3.0
        if self.method == "identity":
            return score
        raise ValueError("zscore depends on running statistics; call the normalizer instead")


def pairwise_reward(prob_a: float | None, transform: PairwiseTransform = "prob", clip: float = 1e-4) -> float | None:
    """Turn p(A beats B) into a reward for A: ``prob`` (p), ``symmetric`` (2p - 1) or
    ``logit`` (log p / (1 - p), clipped)."""
    if prob_a is None:
        return None
    if transform == "prob":
        return float(prob_a)
    if transform == "symmetric":
        return 2.0 * float(prob_a) - 1.0
    if transform == "logit":
        p = min(max(float(prob_a), clip), 1.0 - clip)
        return math.log(p / (1.0 - p))
    raise ValueError(f"unknown pairwise transform {transform!r}")


def combine_orders(prob_a_first: float | None, prob_a_second: float | None) -> float | None:
    """Average p(A wins) over the two presentation orders.

    ``prob_a_first`` is p(A wins) when A is shown first; ``prob_a_second`` is p(A wins) when A is
    shown second (i.e. p("B") of the swapped prompt). Either may be None (unscorable order).
    """
    values = [p for p in (prob_a_first, prob_a_second) if p is not None]
    if not values:
        return None
    return float(sum(values) / len(values))
