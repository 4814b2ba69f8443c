"""Tournament maths, in one place: which completions meet (:func:`tournament_pairs`, and what that
costs, :func:`tournament_judgments`), the Bradley-Terry fit of their soft wins
(:func:`bradley_terry`), and strengths turned into per-row rewards on the win-rate scale
(:func:`win_probabilities`, :func:`tournament_strengths`).

Used by the group tournament reward (:class:`~prometheus_reward.rewards.GroupPairwiseReward` with
``anchor="tournament"``, which the server's ``/group_reward`` also runs) and by best-of-n reranking
(:mod:`prometheus_reward.rerank`). Pure functions: no judge, no torch; scipy is imported by the fit.

Example:
    >>> pairs = tournament_pairs(range(4), None)
    >>> len(pairs), tournament_judgments(4, None)
    (6, 12)
    >>> [round(p, 2) for p in win_probabilities([1.0, 0.0, -1.0])]
    [0.81, 0.5, 0.19]
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import defaultdict
from itertools import combinations
from typing import Any, Iterable, Sequence


def tournament_pairs(members: Sequence[int], k: int | None, seed: str = "") -> list[tuple[int, int]]:
    """The comparisons of one group: every pair when ``k`` is None or reaches ``len - 1``;
    otherwise a balanced circular design over a seeded shuffle of the members, in which each
    completion meets its ``ceil(k/2)`` neighbours on either side (``2 * ceil(k/2)`` comparisons
    each, ``len * ceil(k/2)`` in all). The shuffle is seeded by ``seed`` (the group's prompt), so
    every rank draws the same design.

    Example:
        >>> len(tournament_pairs(range(8), None)), len(tournament_pairs(range(8), 2)), len(tournament_pairs(range(8), 4))
        (28, 8, 16)
    """
    members = list(members)
    m = len(members)
    if m < 2:
        return []
    if k is None or k >= m - 1:
        return list(combinations(members, 2))
    order = members[:]
    random.Random(hashlib.sha256(seed.encode()).hexdigest()).shuffle(order)
    pairs: set[tuple[int, int]] = set()
    for step in range(1, math.ceil(k / 2) + 1):
        for pos in range(m):
            a, b = order[pos], order[(pos + step) % m]
            pairs.add((min(a, b), max(a, b)))
    return sorted(pairs)


def tournament_strengths(groups: Iterable[Sequence[int]], matches: Sequence[tuple[int, int]], prefs: Sequence[Any],
                         n: int) -> tuple[list[float | None], dict[int, int], list[bool]]:
    """Each row's within-group strength from its matches: soft wins (row i beat row j with weight
    p(i better than j), both orders averaged), a Bradley-Terry fit per group
    (:func:`bradley_terry`), and the fitted probability of beating a random other member of the
    group (:func:`win_probabilities`) (in (0, 1): 0.5 is average). An unscorable match drops out of
    the fit rather than counting as a loss; a row with no scored match gets None. When failed
    matches split a group's graph of scored matches, rows never compared with each other, even
    indirectly, could only be ranked through the fit's prior: only the rows of the largest
    connected component are fitted (:func:`largest_component`; none when two tie), the others get
    None. Returns (strength per row, matches scored per row, each scored match's order consistency).

    Example:
        >>> class P: prob_a, consistent = 0.9, True
        >>> probs, _, _ = tournament_strengths([[0, 1, 2, 3]], [(0, 1), (2, 3), (0, 2)], [P(), P(), None], 4)
        >>> probs
        [None, None, None, None]
    """
    probs: list[float | None] = [None] * n
    played: dict[int, int] = defaultdict(int)
    consistent: list[bool] = []
    for members in groups:
        members = list(members)
        index = {row: k for k, row in enumerate(members)}
        wins = [[0.0] * len(members) for _ in members]
        edges: list[tuple[int, int]] = []
        for (i, j), pref in zip(matches, prefs):
            if i not in index or pref is None or pref.prob_a is None or not math.isfinite(pref.prob_a):
                continue
            wins[index[i]][index[j]] += pref.prob_a
            wins[index[j]][index[i]] += 1.0 - pref.prob_a
            played[i] += 1
            played[j] += 1
            consistent.append(pref.consistent)
            edges.append((index[i], index[j]))
        scored = sorted(largest_component(len(members), edges))
        if len(scored) < 2:
            continue
        strengths = bradley_terry([[wins[a][b] for b in scored] for a in scored])
        for a, p in zip(scored, win_probabilities(strengths)):
            probs[members[a]] = p
    return probs, played, consistent


def largest_component(n: int, edges: Sequence[tuple[int, int]]) -> set[int]:
    """The nodes (0..n-1) of the largest connected component of the graph ``edges`` that has at
    least one edge; empty when there is none or when two components tie for the largest (which
    to reward would be arbitrary).

    Example:
        >>> sorted(largest_component(5, [(0, 1), (1, 2), (3, 4)])), largest_component(4, [(0, 1), (2, 3)])
        ([0, 1, 2], set())
    """
    parent = list(range(n))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in edges:
        parent[root(a)] = root(b)
    components: dict[int, set[int]] = defaultdict(set)
    for a, b in edges:
        components[root(a)].update((a, b))
    sizes = sorted((len(c) for c in components.values()), reverse=True)
    if not sizes or (len(sizes) > 1 and sizes[0] == sizes[1]):
        return set()
    return next(c for c in components.values() if len(c) == sizes[0])


def tournament_judgments(group_size: int, k: int | None) -> int:
    """Evaluator calls one group of ``group_size`` completions costs: every comparison is judged in
    both orders, so ``2 * group_size * (group_size - 1) / 2`` for all pairs, or
    ``2 * group_size * ceil(k / 2)`` for the circular design.

    Example:
        >>> tournament_judgments(8, None), tournament_judgments(8, 2), tournament_judgments(8, 4)
        (56, 16, 32)
    """
    return 2 * len(tournament_pairs(range(group_size), k))


def bradley_terry(wins: Sequence[Sequence[float]], l2: float = 1e-2) -> list[float]:
    """Bradley-Terry log-strengths from a (soft) win matrix ``wins[i][j]`` = how much ``i`` beat ``j``
    (e.g. p(i better than j), 0 where not played). Fitted by maximum likelihood with scipy and a
    small L2 penalty (keeps strengths finite when a candidate wins every match); centred at 0.

    Example:
        >>> s = bradley_terry([[0, 0.9, 0.8], [0.1, 0, 0.6], [0.2, 0.4, 0]])
        >>> s[0] > s[1] > s[2]
        True
    """
    import numpy as np
    from scipy.optimize import minimize

    w = np.asarray(wins, dtype=float)
    n = w.shape[0]
    if n == 0:
        return []

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        diff = theta[:, None] - theta[None, :]
        # log sigmoid(diff), stably
        log_p = -np.logaddexp(0.0, -diff)
        nll = -(w * log_p).sum() + l2 * (theta ** 2).sum()
        p = 1.0 / (1.0 + np.exp(-diff))
        grad_pair = w * (1.0 - p)  # d/dtheta_i of w_ij log sigma(theta_i - theta_j)
        grad = -(grad_pair.sum(axis=1) - grad_pair.sum(axis=0)) + 2 * l2 * theta
        return float(nll), grad

    result = minimize(objective, np.zeros(n), jac=True, method="L-BFGS-B")
    theta = result.x - result.x.mean()
    return [float(t) for t in theta]


def win_probabilities(strengths: Sequence[float]) -> list[float]:
    """Each member's fitted probability of beating a random other member, from Bradley-Terry
    log-strengths (in (0, 1); 0.5 is average): the win-rate scale rewards and rankings use.

    Example:
        >>> win_probabilities([0.0, 0.0])
        [0.5, 0.5]
    """
    n = len(strengths)
    if n < 2:
        return [0.5] * n
    return [sum(1.0 / (1.0 + math.exp(s_j - s_i)) for j, s_j in enumerate(strengths) if j != i) / (n - 1)
            for i, s_i in enumerate(strengths)]
