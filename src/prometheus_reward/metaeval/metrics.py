"""Statistics of the meta-evaluation, on the Prometheus papers' protocol.

Everything here works on plain numbers (no model): correlations with bootstrap intervals,
exact agreement, and the pairwise accuracies, swap consistency and position bias. Judge picks
are coded in the data's own terms: ``0`` = response 1 better, ``1`` = response 2 better,
``2`` = tie, ``None`` = no pick.

Example:
    >>> from prometheus_reward.metaeval.metrics import correlations, round_half_up
    >>> stats = correlations([1, 2, 3, 4], [1, 3, 2, 4], n_resamples=200, seed=0)
    >>> round(stats["pearson"]["value"], 3), stats["n"]
    (0.8, 4)
    >>> round_half_up(2.5)
    3
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Sequence

import numpy as np
from scipy import stats as sps

from .spec import TIE

Pick = "int | None"


def round_half_up(x: float) -> int:
    """Round x.5 up (the papers' mean-of-samples rounding; Python's ``round`` rounds to even)."""
    return int(math.floor(x + 0.5))


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _quiet(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn`` with scipy's constant-input / degenerate warnings silenced: a judge that gives
    every row the same score has an undefined correlation, reported as None, not a warning storm."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)

    return wrapped


_CORRELATIONS: dict[str, Callable[..., Any]] = {
    "pearson": sps.pearsonr,
    "spearman": sps.spearmanr,
    "kendall": sps.kendalltau,
}


@_quiet
def bootstrap_ci(
    statistic: Callable[..., float],
    samples: Sequence[Sequence[float]],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of ``statistic`` over rows resampled with replacement
    (paired: the same rows of every array; seeded numpy resampling).

    Resamples where the statistic is undefined (a correlation over a resample whose scores are
    all equal) are left out, rather than turning the whole interval into NaN as
    ``scipy.stats.bootstrap`` does; when more than half are undefined the interval is None.
    On well-behaved data this agrees with ``scipy.stats.bootstrap(method="percentile")``.
    """
    data = [np.asarray(s, dtype=np.float64) for s in samples]
    n = len(data[0])
    if n_resamples <= 0 or n < 3:
        return None, None
    rng = np.random.default_rng(seed)
    index = rng.integers(0, n, size=(n_resamples, n))
    values = np.array([statistic(*(d[rows] for d in data)) for rows in index], dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size * 2 < n_resamples:
        return None, None
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return _finite(low), _finite(high)


@_quiet
def correlations(
    judge: Sequence[float | None],
    gold: Sequence[float | None],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Pearson, Spearman and Kendall (tau-b) of judge scores against gold scores, each with its
    p-value and a bootstrap interval. Rows where either side is None are dropped (``n`` counts
    the rows used).

    Returns ``{"n": int, "pearson": {"value", "p_value", "ci_low", "ci_high"}, ...}``; a value
    is None when undefined (fewer than 2 rows, or constant scores).
    """
    pairs = [(float(j), float(g)) for j, g in zip(judge, gold) if j is not None and g is not None]
    out: dict[str, Any] = {"n": len(pairs)}
    x = np.asarray([p[0] for p in pairs])
    y = np.asarray([p[1] for p in pairs])
    for name, fn in _CORRELATIONS.items():
        entry: dict[str, float | None] = {"value": None, "p_value": None, "ci_low": None, "ci_high": None}
        if len(pairs) >= 2:
            result = fn(x, y)
            entry["value"] = _finite(result.statistic)
            entry["p_value"] = _finite(result.pvalue)
        if entry["value"] is not None:
            entry["ci_low"], entry["ci_high"] = bootstrap_ci(
                lambda a, b, fn=fn: fn(a, b).statistic, (x, y), n_resamples, confidence, seed
            )
        out[name] = entry
    return out


def mean_ci(values: Sequence[float], n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """The mean of ``values`` (e.g. 0/1 correctness) with a bootstrap interval."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {"value": None, "n": 0, "ci_low": None, "ci_high": None}
    low, high = bootstrap_ci(np.mean, (arr,), n_resamples, confidence, seed) if np.ptp(arr) > 0 else (float(arr[0]), float(arr[0]))
    return {"value": float(arr.mean()), "n": int(arr.size), "ci_low": low, "ci_high": high}


def exact_agreement(judge: Sequence[float | None], gold: Sequence[Sequence[float]]) -> dict[str, Any]:
    """How often the rounded judge score equals the gold.

    - ``exact``: round(judge) == round(mean of the gold scores) (both rounded half up);
    - ``any_gold``: round(judge) equals one of the gold scores (e.g. any of GPT-4's 3 runs);
    - ``within_1``: |round(judge) - round(gold mean)| <= 1.

    Rows with no judge score count as disagreement (``n`` counts every row with gold).
    """
    rows = [(j, list(g)) for j, g in zip(judge, gold) if g]
    if not rows:
        return {"n": 0, "exact": None, "any_gold": None, "within_1": None}
    exact = any_gold = within = 0
    for j, g in rows:
        if j is None:
            continue
        rj, rg = round_half_up(j), round_half_up(sum(g) / len(g))
        exact += rj == rg
        any_gold += rj in {round_half_up(v) for v in g}
        within += abs(rj - rg) <= 1
    n = len(rows)
    return {"n": n, "exact": exact / n, "any_gold": any_gold / n, "within_1": within / n}


def pick_from_scores(a: float | None, b: float | None) -> int | None:
    """The pick that absolute grading implies for a pair: 0 if response 1 scored strictly
    higher, 1 if response 2 did, 2 (tie) when equal, None when either is unscorable."""
    if a is None or b is None:
        return None
    return 0 if a > b else 1 if b > a else TIE


def first_untied_pick(samples_a: Sequence[int | None], samples_b: Sequence[int | None]) -> int | None:
    """prometheus-eval's HHH absolute rule: walk the k sample pairs in order; the first pair
    whose scores differ decides; all tied (or unparseable) -> tie."""
    for a, b in zip(samples_a, samples_b):
        if a is None or b is None or a == b:
            continue
        return 0 if a > b else 1
    return TIE if samples_a and samples_b else None


def absolute_pair_metrics(
    picks: Sequence[int | None], labels: Sequence[int], n_resamples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Pairwise accuracy of picks implied by absolute scores.

    - ``accuracy``: over pairs whose label is not a tie, pick == label; a tied or missing pick
      counts as wrong (the papers' rule: the better response must be graded strictly higher);
    - ``accuracy_ties_half``: the same with a tied pick counting 0.5;
    - ``tie_rate``: share of those pairs graded equal;
    - ``accuracy_with_ties``: over all pairs, a tied pick is right for a tie label
      (only when the data has tie labels).
    """
    decided = [(p, l) for p, l in zip(picks, labels) if l != TIE]
    out: dict[str, Any] = {"pairs": len(picks)}
    correct = [1.0 if p == l else 0.0 for p, l in decided]
    out["accuracy"] = mean_ci(correct, n_resamples, seed=seed)
    out["accuracy_ties_half"] = (
        sum(1.0 if p == l else 0.5 if p == TIE else 0.0 for p, l in decided) / len(decided) if decided else None
    )
    out["tie_rate"] = sum(p == TIE for p, _ in decided) / len(decided) if decided else None
    out["unscorable"] = sum(p is None for p in picks)
    if any(l == TIE for l in labels):
        out["accuracy_with_ties"] = mean_ci([1.0 if p == l else 0.0 for p, l in zip(picks, labels)], n_resamples, seed=seed)
    return out


def combine_picks(pick_ab: int | None, pick_ba: int | None) -> int | None:
    """The with-ties prediction of a pair judged in both orders: the agreed pick, else a tie
    (the orders disagree, or one gave no answer); None when neither order answered."""
    if pick_ab is None and pick_ba is None:
        return None
    if pick_ab is not None and pick_ab == pick_ba:
        return pick_ab
    return TIE


def relative_pair_metrics(
    pick_ab: Sequence[int | None],
    pick_ba: Sequence[int | None],
    combined: Sequence[int | None],
    labels: Sequence[int],
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Pairwise metrics of relative grading in both presentation orders.

    Args:
        pick_ab: per pair, the pick (0/1/None, in the data's terms) with response 1 shown as A.
        pick_ba: the same with response 2 shown as A.
        combined: the pick from both orders together (averaged probabilities or pooled votes;
            None when they cancel out).
        labels: gold 0/1/2.

    Returns:
        ``accuracy``: combined == label over non-tie pairs (None counts wrong);
        ``accuracy_single_order``: each order's pick scored on its own, averaged over both orders
        (the expectation of a protocol that shows each pair once in random order);
        ``accuracy_with_ties`` (data with tie labels): a pair is predicted a tie when the orders
        disagree (see :func:`combine_picks`);
        ``swap_consistency``: share of pairs where both orders picked the same response;
        ``position_bias_rate``: among inconsistent pairs (at least one order answered, and the
        orders did not name the same response), the share where the same *position* won both
        times (both orders answered, and differently); ``first_position_share``: share
        of all answers that chose the response shown first (0.5 = no lean).
    """
    n = len(labels)
    decided = [i for i in range(n) if labels[i] != TIE]
    out: dict[str, Any] = {"pairs": n}
    out["accuracy"] = mean_ci([1.0 if combined[i] == labels[i] else 0.0 for i in decided], n_resamples, seed=seed)
    single = [1.0 if pick == labels[i] else 0.0 for i in decided for pick in (pick_ab[i], pick_ba[i])]
    out["accuracy_single_order"] = sum(single) / len(single) if single else None
    if any(l == TIE for l in labels):
        with_ties = [1.0 if combine_picks(pick_ab[i], pick_ba[i]) == labels[i] else 0.0 for i in range(n)]
        out["accuracy_with_ties"] = mean_ci(with_ties, n_resamples, seed=seed)
    consistent = [pick_ab[i] is not None and pick_ab[i] == pick_ba[i] for i in range(n)]
    out["swap_consistency"] = sum(consistent) / n if n else None
    # A pair where neither order answered is unscorable, not inconsistent.
    inconsistent = [i for i in range(n) if not consistent[i] and (pick_ab[i] is not None or pick_ba[i] is not None)]
    # Both orders answered but named different responses: the same slot won twice.
    same_slot = [i for i in inconsistent if pick_ab[i] is not None and pick_ba[i] is not None]
    out["inconsistent_pairs"] = len(inconsistent)
    out["position_bias_rate"] = len(same_slot) / len(inconsistent) if inconsistent else None
    # In order AB the first slot holds response 1 (pick 0); in order BA it holds response 2 (pick 1).
    first_slot = [p == 0 for p in pick_ab if p is not None] + [p == 1 for p in pick_ba if p is not None]
    out["first_position_share"] = sum(first_slot) / len(first_slot) if first_slot else None
    out["unscorable"] = sum(c is None for c in combined)
    return out


def confusion_matrix(gold: Sequence[int | None], pred: Sequence[int | None], labels: Sequence[int]) -> list[list[int]]:
    """Counts[gold_index][pred_index] over ``labels`` (rows with a None on either side skipped)."""
    index = {label: k for k, label in enumerate(labels)}
    counts = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, pred):
        if g in index and p in index:
            counts[index[g]][index[p]] += 1
    return counts


def calibration_bins(
    predicted: Sequence[float | None], observed: Sequence[float | None], edges: Sequence[float]
) -> list[dict[str, Any]]:
    """Bin ``predicted`` by ``edges`` and average ``observed`` per bin (a reliability table):
    ``[{"low", "high", "n", "predicted", "observed"}, ...]`` (means None for empty bins)."""
    pairs = [(float(p), float(o)) for p, o in zip(predicted, observed) if p is not None and o is not None]
    rows = []
    for k, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        last = k == len(edges) - 2
        members = [(p, o) for p, o in pairs if low <= p < high or (last and p == high)]
        rows.append({
            "low": float(low),
            "high": float(high),
            "n": len(members),
            "predicted": sum(p for p, _ in members) / len(members) if members else None,
            "observed": sum(o for _, o in members) / len(members) if members else None,
        })
    return rows


def expected_calibration_error(bins: Sequence[dict[str, Any]], scale: float = 1.0) -> float | None:
    """Count-weighted mean |predicted - observed| over the bins, divided by ``scale``
    (4 for 1-5 scores, so the error is on a 0-1 scale)."""
    total = sum(b["n"] for b in bins)
    if not total:
        return None
    return sum(b["n"] * abs(b["predicted"] - b["observed"]) for b in bins if b["n"]) / total / scale


def prob_first_better(probs_a: Sequence[float] | None, probs_b: Sequence[float] | None) -> float | None:
    """p(response 1 graded higher) + p(tie) / 2 from two independent 1-5 score distributions
    (what expected-mode absolute grading implies for a pair)."""
    if probs_a is None or probs_b is None:
        return None
    a = np.asarray(probs_a, dtype=np.float64)
    b = np.asarray(probs_b, dtype=np.float64)
    if a.shape != (5,) or b.shape != (5,) or a.sum() <= 0 or b.sum() <= 0:
        return None
    a, b = a / a.sum(), b / b.sum()
    joint = np.outer(a, b)  # joint[i, j] = p(score_1 = i+1, score_2 = j+1)
    return float(np.tril(joint, -1).sum() + 0.5 * np.trace(joint))
