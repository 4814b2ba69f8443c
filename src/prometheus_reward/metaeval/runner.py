"""Run a judge over a loaded benchmark (chunked, with a progress bar, writing each chunk's
predictions as it goes) and turn the predictions into the papers' metrics.

Predictions are plain dicts (one JSONL line per row), so the metrics can be recomputed from a
``predictions.jsonl`` without the model (:func:`compute_metrics`).

Example:
    >>> from prometheus_reward import Judge                                                   # doctest: +SKIP
    >>> from prometheus_reward.metaeval import load_benchmark, run_benchmark, compute_metrics  # doctest: +SKIP
    >>> bench = load_benchmark("vicuna", "data/vicuna_eval.json", limit=8)                     # doctest: +SKIP
    >>> records = run_benchmark(Judge.from_pretrained("embedded"), bench, mode="expected")     # doctest: +SKIP
    >>> compute_metrics(bench.kind, records, mode="expected")["integer"]["pearson"]["value"]   # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Callable, Iterable, Sequence

from ..grades import Grade, Preference
from . import metrics as M
from .data import AbsoluteItem, Benchmark, PairItem
from .spec import PROTOCOLS, TIE, default_protocols

logger = logging.getLogger(__name__)

MAX_GROUPS = 12  # per-group breakdowns only for a handful of groups (HHH's 4 sources), not Auto-J's 58 scenarios
SCORE_EDGES = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]
PROB_EDGES = [k / 10 for k in range(11)]


# -- judging -------------------------------------------------------------------------------------------
def _grade_dict(grade: Grade) -> dict[str, Any]:
    # a prediction record keeps what the metrics and a reader need, not the flags' empty list
    data = grade.to_dict()
    data.pop("flags", None)
    return data


def _pref_dict(pref: Preference) -> dict[str, Any]:
    data = pref.to_dict()
    data.pop("flags", None)
    data.pop("feedback_swapped", None)  # one order per record here
    data.pop("consistent", None)
    return data


def _grade_absolute(judge, prompts: list[str | None], fields: list[tuple], mode: str, samples: int, overrides: dict) -> list[Grade]:
    """Grade rows given either as a rendered prompt (run as is) or as fields
    ``(instruction, response, rubric, reference)``; one judge call per kind."""
    grades: list[Grade | None] = [None] * len(prompts)
    rendered = [i for i, p in enumerate(prompts) if p is not None]
    if rendered:
        for i, g in zip(rendered, judge.grade_rendered([prompts[i] for i in rendered], mode=mode, samples=samples, **overrides)):
            grades[i] = g
    rest = [i for i, p in enumerate(prompts) if p is None]
    if rest:
        out = judge.grade(
            [fields[i][0] for i in rest], [fields[i][1] for i in rest], [fields[i][2] for i in rest],
            [fields[i][3] for i in rest], mode=mode, samples=samples, errors="return", **overrides,
        )
        for i, g in zip(rest, out):
            grades[i] = g
    return grades  # type: ignore[return-value]


def judge_absolute(judge, items: Sequence[AbsoluteItem], mode: str, samples: int, overrides: dict) -> list[dict[str, Any]]:
    """Grade absolute items; one prediction record per item."""
    grades = _grade_absolute(
        judge, [it.prompt for it in items],
        [(it.instruction, it.response, it.rubric, it.reference_answer) for it in items], mode, samples, overrides,
    )
    return [
        {"id": it.id, "group": it.group, "gold": it.gold, "gold_mean": sum(it.gold) / len(it.gold), **_grade_dict(g)}
        for it, g in zip(items, grades)
    ]


def judge_pairs(
    judge, items: Sequence[PairItem], protocols: Sequence[str], mode: str, samples: int, overrides: dict
) -> list[dict[str, Any]]:
    """Judge pairs by absolute grading (each response graded alone) and/or relative grading in
    both presentation orders (two one-order ``compare`` calls, so each order's answer is kept)."""
    n = len(items)
    records: list[dict[str, Any]] = [
        {"id": it.id, "group": it.group, "label": it.label, "absolute": None, "relative": None} for it in items
    ]
    if "absolute" in protocols:
        prompts = [it.prompt_1 for it in items] + [it.prompt_2 for it in items]
        fields = [(it.instruction, it.response_1, it.rubric, it.reference_answer) for it in items] + [
            (it.instruction, it.response_2, it.rubric, it.reference_answer) for it in items
        ]
        grades = _grade_absolute(judge, prompts, fields, mode, samples, overrides)
        for k in range(n):
            records[k]["absolute"] = {"1": _grade_dict(grades[k]), "2": _grade_dict(grades[n + k])}
    if "relative" in protocols:
        prefs = judge.compare(
            [it.instruction for it in items] * 2,
            [it.response_1 for it in items] + [it.response_2 for it in items],
            [it.response_2 for it in items] + [it.response_1 for it in items],
            [it.rubric for it in items] * 2,
            [it.reference_answer for it in items] * 2,
            mode=mode, samples=samples, swap=False, errors="return", **overrides,
        )
        for k in range(n):
            records[k]["relative"] = {"ab": _pref_dict(prefs[k]), "ba": _pref_dict(prefs[n + k])}
    return records


def run_benchmark(
    judge,
    bench: Benchmark,
    mode: str = "expected",
    samples: int = 3,
    protocols: Sequence[str] | None = None,
    batch_size: int = 16,
    overrides: dict[str, Any] | None = None,
    on_chunk: Callable[[list[dict[str, Any]]], None] | None = None,
    skip_ids: Iterable[int] = (),
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Judge every item of ``bench`` in chunks of ``batch_size`` rows (the progress bar moves per
    chunk; ``on_chunk`` receives each chunk's records, e.g. to write them at once).

    ``protocols`` (pairwise sets only): ``absolute`` and/or ``relative``; default: the
    benchmark spec's ``default_protocols``. Items whose id is in ``skip_ids`` are not judged (resume).
    """
    from tqdm.auto import tqdm

    overrides = dict(overrides or {})
    protocols = tuple(protocols or default_protocols(bench.name))
    unknown = set(protocols) - set(PROTOCOLS)
    if unknown:
        raise ValueError(f"unknown protocol(s) {sorted(unknown)}; choose from {PROTOCOLS}")
    skip = set(skip_ids)
    todo = [it for it in bench.items if it.id not in skip]
    records: list[dict[str, Any]] = []
    unit = "row" if bench.kind == "absolute" else "pair"
    with tqdm(total=len(todo), desc=f"meta-eval {bench.name}", unit=unit, disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            if bench.kind == "absolute":
                out = judge_absolute(judge, chunk, mode, samples, overrides)
            else:
                out = judge_pairs(judge, chunk, protocols, mode, samples, overrides)
            for record in out:
                for error in _errors(record):
                    logger.warning("%s item %s unscorable: %s", bench.name, record["id"], error)
            if on_chunk is not None:
                on_chunk(out)
            records.extend(out)
            bar.update(len(chunk))
    return records


def _errors(record: dict[str, Any]) -> list[str]:
    found = [record.get("error")]
    for part in ("absolute", "relative"):
        for sub in (record.get(part) or {}).values():
            found.append(sub.get("error"))
    return [e for e in found if e]


# -- metrics -----------------------------------------------------------------------------------------------
def integer_value(grade: dict[str, Any]) -> float | None:
    """The integer protocol's number for a grade: the mean of the k parsed sample scores (what
    the papers correlate), else the argmax score (``direct`` mode)."""
    if grade.get("mean") is not None:
        return float(grade["mean"])
    return None if grade.get("score") is None else float(grade["score"])


def _sources(mode: str) -> list[str]:
    """Which judge numbers a mode yields: parsed integers/votes, token probabilities, or both."""
    return {"generate": ["integer"], "expected": ["integer", "expected"], "direct": ["expected"]}[mode]


def absolute_metrics(records: Sequence[dict[str, Any]], mode: str, n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Correlations (with bootstrap intervals) and exact agreement of the judge against the mean
    gold score, for the integer protocol and the expected score side by side; plus calibration
    of the expected scores."""
    gold_mean = [r["gold_mean"] for r in records]
    gold = [r["gold"] for r in records]
    out: dict[str, Any] = {
        "n": len(records),
        "unscorable": sum(integer_value(r) is None and r.get("expected") is None for r in records),
        # integer metrics count parsed verdicts only; these rows have an expected score read after
        # an appended [RESULT] (the evaluator wrote none)
        "forced": sum(r.get("source") == "forced" for r in records),
        "parsed": sum(integer_value(r) is not None for r in records),
        "truncated": sum(bool(r.get("truncated")) for r in records),
        "gold_mean_score": sum(gold_mean) / len(gold_mean) if gold_mean else None,
    }
    values = {"integer": [integer_value(r) for r in records], "expected": [r.get("expected") for r in records]}
    for source in _sources(mode):
        vals = values[source]
        scored = [v for v in vals if v is not None]
        out[source] = {
            **M.correlations(vals, gold_mean, n_resamples, seed=seed),
            "agreement": M.exact_agreement(vals, gold),
            "mean_score": sum(scored) / len(scored) if scored else None,
        }
    if "expected" in _sources(mode):
        bins = M.calibration_bins(values["expected"], gold_mean, SCORE_EDGES)
        out["calibration"] = {"bins": bins, "ece": M.expected_calibration_error(bins, scale=4.0)}
    return out


def _majority(votes: Sequence[str | None]) -> str | None:
    counted = [v for v in votes if v is not None]
    a = sum(v == "A" for v in counted)
    b = len(counted) - a
    return "A" if a > b else "B" if b > a else None


def _prob_pick(prob_a: float | None) -> str | None:
    if prob_a is None:
        return None
    return "A" if prob_a > 0.5 else "B" if prob_a < 0.5 else None


def _to_pick(letter: str | None, order: str) -> int | None:
    """A/B as shown in ``order`` -> 0/1 in the data's terms (in order "ba", A is response 2)."""
    if letter is None:
        return None
    first_is_1 = order == "ab"
    return (0 if first_is_1 else 1) if letter == "A" else (1 if first_is_1 else 0)


def relative_picks(record: dict[str, Any], source: str) -> tuple[int | None, int | None, int | None, float | None]:
    """(pick in order AB, pick in order BA, combined pick, p(response 1 better)) of one pair.

    ``source="votes"``: the parsed ``[RESULT] A|B`` letters (majority per order; pooled over both
    orders for the combined pick). ``source="probs"``: the answer-token probabilities (averaged
    over both orders for the combined pick)."""
    rel = record["relative"]
    ab, ba = rel["ab"], rel["ba"]
    if source == "votes":
        pick_ab, pick_ba = _to_pick(_majority(ab["votes"]), "ab"), _to_pick(_majority(ba["votes"]), "ba")
        pooled = [_to_pick(v, "ab") for v in ab["votes"]] + [_to_pick(v, "ba") for v in ba["votes"]]
        counted = [p for p in pooled if p is not None]
        p1 = sum(p == 0 for p in counted) / len(counted) if counted else None
    else:
        pick_ab, pick_ba = _to_pick(_prob_pick(ab["prob_a"]), "ab"), _to_pick(_prob_pick(ba["prob_a"]), "ba")
        probs = [p for p in (ab["prob_a"], None if ba["prob_a"] is None else 1.0 - ba["prob_a"]) if p is not None]
        p1 = sum(probs) / len(probs) if probs else None
    combined = None if p1 is None else 0 if p1 > 0.5 else 1 if p1 < 0.5 else None
    return pick_ab, pick_ba, combined, p1


def pairwise_metrics(records: Sequence[dict[str, Any]], mode: str, samples: int = 1, n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Accuracy by absolute grading (integer and expected scores) and by relative grading
    (parsed votes and answer probabilities), with ties, swap consistency and position bias."""
    labels = [r["label"] for r in records]
    out: dict[str, Any] = {"n": len(records), "ties_in_gold": sum(l == TIE for l in labels)}
    groups = sorted({r.get("group") for r in records if r.get("group") is not None})
    by_group = len(groups) <= MAX_GROUPS and groups
    if records and records[0].get("absolute") is not None:
        absolute: dict[str, Any] = {}
        g1 = [r["absolute"]["1"] for r in records]
        g2 = [r["absolute"]["2"] for r in records]
        for source in _sources(mode):
            get = integer_value if source == "integer" else (lambda g: g.get("expected"))
            picks = [M.pick_from_scores(get(a), get(b)) for a, b in zip(g1, g2)]
            absolute[source] = M.absolute_pair_metrics(picks, labels, n_resamples, seed)
            if by_group:
                absolute[source]["by_group"] = _group_accuracy(records, picks, groups)
        if samples > 1 and "integer" in _sources(mode):
            picks = [M.first_untied_pick(a.get("samples") or [], b.get("samples") or []) for a, b in zip(g1, g2)]
            absolute["first_untied_sample"] = M.absolute_pair_metrics(picks, labels, n_resamples, seed)
        if "expected" in _sources(mode):
            p1 = [M.prob_first_better(a.get("probs"), b.get("probs")) for a, b in zip(g1, g2)]
            absolute["calibration"] = _pair_calibration(p1, labels)
        out["absolute"] = absolute
    if records and records[0].get("relative") is not None:
        relative: dict[str, Any] = {}
        for source in ("votes", "probs") if mode == "expected" else ("probs",) if mode == "direct" else ("votes",):
            picks = [relative_picks(r, source) for r in records]
            stats = M.relative_pair_metrics(
                [p[0] for p in picks], [p[1] for p in picks], [p[2] for p in picks], labels, n_resamples, seed
            )
            if by_group:
                stats["by_group"] = _group_accuracy(records, [p[2] for p in picks], groups)
            stats["calibration"] = _pair_calibration([p[3] for p in picks], labels)
            relative[source] = stats
        out["relative"] = relative
    return out


def _group_accuracy(records: Sequence[dict[str, Any]], picks: Sequence[int | None], groups: Sequence[str]) -> dict[str, Any]:
    tally: dict[str, list[float]] = defaultdict(list)
    for r, p in zip(records, picks):
        if r.get("group") is not None and r["label"] != TIE:
            tally[r["group"]].append(1.0 if p == r["label"] else 0.0)
    return {g: {"n": len(tally[g]), "accuracy": sum(tally[g]) / len(tally[g]) if tally[g] else None} for g in groups}


def _pair_calibration(p1: Sequence[float | None], labels: Sequence[int]) -> dict[str, Any]:
    """Reliability of p(response 1 better) against the gold, over non-tie pairs."""
    kept = [(p, 1.0 if l == 0 else 0.0) for p, l in zip(p1, labels) if l != TIE and p is not None]
    bins = M.calibration_bins([p for p, _ in kept], [o for _, o in kept], PROB_EDGES)
    return {"bins": bins, "ece": M.expected_calibration_error(bins)}


def compute_metrics(kind: str, records: Sequence[dict[str, Any]], mode: str, samples: int = 1, n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """All metrics of a run from its prediction records (see :func:`run_benchmark`)."""
    records = sorted(records, key=lambda r: r["id"])
    if kind == "absolute":
        return absolute_metrics(records, mode, n_resamples, seed)
    return pairwise_metrics(records, mode, samples, n_resamples, seed)
