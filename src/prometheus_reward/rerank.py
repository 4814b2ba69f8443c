"""Rerank candidate responses of each prompt with the judge (best-of-n, list labeling).

Strategies and their cost in judge calls, for ``n`` candidates of one prompt:

- ``"absolute"``: each candidate graded once (expected score when the mode gives one):
  ``n`` grading calls (times ``samples``).
- ``"pairwise"`` with ``tournament="knockout"``: a single-elimination bracket, byes for odd
  rounds: ``n - 1`` comparisons, each judged in both orders: ``2 (n - 1)`` relative calls. A
  failed match advances neither side, and a candidate that reaches the end on byes alone, never
  judged, is not crowned (``best`` None).
- ``"pairwise"`` with ``tournament="round-robin"``: every pair once, both orders:
  ``n (n - 1) / 2`` comparisons = ``n (n - 1)`` relative calls; ranked by mean win
  probability (``ranking="win-rate"``) or by a Bradley-Terry fit (``ranking="bradley-terry"``).

Calls for all prompts of a round are batched into one judge call; with a
:class:`~prometheus_reward.cached.CachedJudge`, judgments already made are free.

Example:
    >>> from prometheus_reward.rerank import rerank
    >>> results = rerank(["Say hi."], [["Hello!", "Go away.", "Hi there!"]], judge, "helpfulness")  # doctest: +SKIP
    >>> results[0].best, len(results[0].scores)                                                     # doctest: +SKIP
    (2, 3)
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any, Literal, Sequence

from .config import JudgingConfig, RerankConfig
from .rows import column
from .tournament import bradley_terry, win_probabilities

logger = logging.getLogger(__name__)

Strategy = Literal["absolute", "pairwise"]
Tournament = Literal["knockout", "round-robin"]
Ranking = Literal["win-rate", "bradley-terry"]


@dataclass
class Comparison:
    """One pairwise match between candidates ``i`` (shown as A first) and ``j``."""

    i: int
    j: int
    prob_i: float | None
    winner: int | None
    consistent: bool
    feedback: str = ""
    error: str | None = None


@dataclass
class RerankResult:
    """The reranking of one prompt's candidates.

    Attributes:
        best: index of the chosen candidate, or None when no candidate could be judged.
        scores: per candidate: the (expected) score for ``absolute``; the mean win probability
            (win-rate), the Bradley-Terry win probability against a random other candidate, or
            (knockout) the mean win probability over the matches it played; None when unjudged.
        feedback: per candidate, the judge's feedback (absolute strategy; empty for pairwise,
            whose feedback is in ``comparisons``).
        order: candidate indices from best to worst (unjudged ones last).
        comparisons: the pairwise matches played.
        judge_calls: evaluator prompts this prompt cost (cache hits included).
        errors: per candidate, why it could not be judged.
    """

    best: int | None
    scores: list[float | None]
    feedback: list[str]
    order: list[int]
    strategy: str
    comparisons: list[Comparison] = field(default_factory=list)
    judge_calls: int = 0
    errors: list[str | None] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge_calls(n: int, strategy: Strategy = RerankConfig.strategy, tournament: Tournament = RerankConfig.tournament,
                samples: int = 1) -> int:
    """Evaluator prompts one prompt with ``n`` candidates costs (before caching).

    Example:
        >>> judge_calls(4, "absolute"), judge_calls(4, "pairwise", "knockout"), judge_calls(4, "pairwise", "round-robin")
        (4, 6, 12)
    """
    if strategy == "absolute":
        return n * samples
    if tournament == "knockout":
        return 2 * max(n - 1, 0) * samples
    return n * (n - 1) * samples


def _argbest(scores: Sequence[float | None]) -> int | None:
    live = [(s, -i) for i, s in enumerate(scores) if s is not None]
    return -max(live)[1] if live else None  # ties go to the lower index


def _order(scores: Sequence[float | None]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (scores[i] is None, -(scores[i] or 0.0), i))


def rerank(
    prompts: Sequence[str],
    candidates: Sequence[Sequence[str]],
    judge: Any,
    rubric: Any,
    strategy: Strategy = RerankConfig.strategy,
    *,
    tournament: Tournament = RerankConfig.tournament,
    ranking: Ranking = RerankConfig.ranking,
    reference_answers: Sequence[str | None] | str | None = None,
    mode: str = JudgingConfig.mode,
    samples: int = 1,
    **sampling: Any,
) -> list[RerankResult]:
    """Pick the best of each prompt's candidates with the judge.

    Args:
        prompts: one instruction per prompt.
        candidates: per prompt, the candidate responses (any number, may differ by prompt).
        judge: a :class:`~prometheus_reward.judge.Judge` (or a
            :class:`~prometheus_reward.cached.CachedJudge`: only cache misses reach the evaluator).
        rubric: one rubric, or one per prompt.
        strategy: ``absolute`` (n calls: grade each, rank by expected score) or ``pairwise``
            (both presentation orders per comparison).
        tournament: pairwise only: ``round-robin`` (n(n-1) calls) or ``knockout`` (2(n-1) calls).
        ranking: round-robin only: ``win-rate`` or ``bradley-terry``.
        reference_answers: None, one for all, or one per prompt.
        mode: judge mode (``expected`` by default: scores and probabilities, not only integers).
        samples: judgments per call, averaged.
        **sampling: overrides of the judge's sampling (``max_new_tokens``, ``temperature``...).

    Returns:
        One :class:`RerankResult` per prompt. Unjudgeable candidates score None and are never
        picked; ``best`` is None when no candidate could be judged.

    Example:
        >>> r = rerank(["2+2?"], [["4", "5"]], judge, "reasoning", strategy="pairwise", tournament="round-robin",
        ...            ranking="bradley-terry", mode="direct")  # doctest: +SKIP
    """
    if strategy not in ("absolute", "pairwise"):
        raise ValueError(f"unknown strategy {strategy!r}; choose absolute or pairwise")
    if tournament not in ("knockout", "round-robin"):
        raise ValueError(f"unknown tournament {tournament!r}; choose knockout or round-robin")
    if ranking not in ("win-rate", "bradley-terry"):
        raise ValueError(f"unknown ranking {ranking!r}; choose win-rate or bradley-terry")
    prompts = list(prompts)
    candidates = [list(c) for c in candidates]
    if len(candidates) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(candidates)} candidate lists")
    rubrics = column(rubric, len(prompts), "rubric")
    references = column(reference_answers, len(prompts), "reference_answers")
    kwargs = dict(mode=mode, samples=samples, **sampling)
    if strategy == "absolute":
        return _rerank_absolute(prompts, candidates, judge, rubrics, references, kwargs)
    if tournament == "knockout":
        return _rerank_knockout(prompts, candidates, judge, rubrics, references, kwargs)
    return _rerank_round_robin(prompts, candidates, judge, rubrics, references, kwargs, ranking)


def _rerank_absolute(prompts, candidates, judge, rubrics, references, kwargs) -> list[RerankResult]:
    flat = [(p, k) for p, cands in enumerate(candidates) for k in range(len(cands))]
    grades = judge.grade(
        [prompts[p] for p, _ in flat], [candidates[p][k] for p, k in flat],
        [rubrics[p] for p, _ in flat], [references[p] for p, _ in flat], errors="return", **kwargs,
    ) if flat else []
    results = []
    cursor = 0
    for p, cands in enumerate(candidates):
        mine = grades[cursor : cursor + len(cands)]
        cursor += len(cands)
        scores = [g.value for g in mine]
        results.append(RerankResult(
            best=_argbest(scores), scores=scores, feedback=[g.feedback for g in mine], order=_order(scores),
            strategy="absolute", judge_calls=len(cands) * kwargs["samples"], errors=[g.error for g in mine],
        ))
    return results


def _play(matches, prompts, candidates, judge, rubrics, references, kwargs) -> list[Comparison]:
    """Judge (prompt, i, j) matches in one batched call (both orders)."""
    if not matches:
        return []
    prefs = judge.compare(
        [prompts[p] for p, _, _ in matches], [candidates[p][i] for p, i, _ in matches],
        [candidates[p][j] for p, _, j in matches], [rubrics[p] for p, _, _ in matches],
        [references[p] for p, _, _ in matches], swap=True, errors="return", **kwargs,
    )
    played = []
    for (p, i, j), pref in zip(matches, prefs):
        winner = i if pref.winner == "A" else j if pref.winner == "B" else None
        played.append(Comparison(i, j, pref.prob_a, winner, pref.consistent, pref.feedback, pref.error))
    return played


def _rerank_knockout(prompts, candidates, judge, rubrics, references, kwargs) -> list[RerankResult]:
    alive = [list(range(len(c))) for c in candidates]
    history: list[list[Comparison]] = [[] for _ in prompts]
    while True:
        matches = []
        for p, survivors in enumerate(alive):
            for k in range(0, len(survivors) - 1, 2):
                matches.append((p, survivors[k], survivors[k + 1]))
        if not matches:
            break
        played = _play(matches, prompts, candidates, judge, rubrics, references, kwargs)
        nxt: list[list[int]] = [[] for _ in prompts]
        by_prompt: dict[int, list[Comparison]] = {}
        for (p, _, _), comp in zip(matches, played):
            history[p].append(comp)
            by_prompt.setdefault(p, []).append(comp)
        for p, survivors in enumerate(alive):
            if len(survivors) < 2:
                nxt[p] = survivors
                continue
            for comp in by_prompt.get(p, []):
                if comp.winner is not None:
                    nxt[p].append(comp.winner)
                elif comp.prob_i is not None:  # an exact tie: keep the earlier candidate
                    nxt[p].append(comp.i)
                # both unjudgeable: neither advances
            if len(survivors) % 2:
                nxt[p].append(survivors[-1])  # bye
        alive = nxt
    results = []
    for p, cands in enumerate(candidates):
        probs: dict[int, list[float]] = {}
        for comp in history[p]:
            if comp.prob_i is None:
                continue
            probs.setdefault(comp.i, []).append(comp.prob_i)
            probs.setdefault(comp.j, []).append(1.0 - comp.prob_i)
        scores = [sum(probs[k]) / len(probs[k]) if k in probs else None for k in range(len(cands))]
        best = alive[p][0] if alive[p] else None
        if best is not None and best not in probs:
            # it reached the end on byes while the matches around it failed: never judged, never crowned
            best = None
        if len(cands) == 1:
            best, scores = 0, [None]
        # the knockout winner first, then the rest by their mean win probability
        order = _order(scores)
        if best is not None:
            order = [best] + [k for k in order if k != best]
        results.append(RerankResult(
            best=best, scores=scores, feedback=[""] * len(cands), order=order, strategy="pairwise-knockout",
            comparisons=history[p], judge_calls=2 * len(history[p]) * kwargs["samples"],
            errors=[None] * len(cands),
        ))
    return results


def _rerank_round_robin(prompts, candidates, judge, rubrics, references, kwargs, ranking) -> list[RerankResult]:
    matches = [(p, i, j) for p, cands in enumerate(candidates) for i, j in combinations(range(len(cands)), 2)]
    played = _play(matches, prompts, candidates, judge, rubrics, references, kwargs)
    history: list[list[Comparison]] = [[] for _ in prompts]
    for (p, _, _), comp in zip(matches, played):
        history[p].append(comp)
    results = []
    for p, cands in enumerate(candidates):
        n = len(cands)
        wins = [[0.0] * n for _ in range(n)]
        seen = [0] * n
        for comp in history[p]:
            if comp.prob_i is None:
                continue
            wins[comp.i][comp.j] += comp.prob_i
            wins[comp.j][comp.i] += 1.0 - comp.prob_i
            seen[comp.i] += 1
            seen[comp.j] += 1
        if ranking == "win-rate":
            scores = [sum(wins[k]) / seen[k] if seen[k] else None for k in range(n)]
        else:
            # the fitted probability of beating a random other candidate: on the win-rate scale
            fitted = win_probabilities(bradley_terry(wins)) if n > 1 else [0.5] * n
            scores = [fitted[k] if seen[k] else None for k in range(n)]
        if n == 1:
            scores = [None]
        best = 0 if n == 1 else _argbest(scores)
        results.append(RerankResult(
            best=best, scores=scores, feedback=[""] * n, order=_order(scores),
            strategy=f"pairwise-round-robin-{ranking}", comparisons=history[p],
            judge_calls=2 * len(history[p]) * kwargs["samples"], errors=[None] * n,
        ))
    return results
