"""Meta-evaluation of a judge against the Prometheus papers' benchmarks (and custom data).

``prometheus-reward meta-eval --benchmark vicuna|mt_bench|hhh|autoj|custom --data PATH --model M
--output-dir DIR`` judges the set (any set registered in :data:`prometheus_reward.registry.BENCHMARKS`,
each described by a :class:`BenchmarkSpec`), then writes ``predictions.jsonl`` (as it goes), ``results.json``,
``results.md`` (beside the published numbers) and ``scatter.png``, ``confusion.png``,
``calibration.png``. See ``docs/meta_evaluation.md`` for the protocol.

Example:
    >>> from prometheus_reward.metaeval import load_benchmark, run_benchmark, compute_metrics   # doctest: +SKIP
    >>> bench = load_benchmark("hhh", "data/benchmarks", limit=10)                               # doctest: +SKIP
    >>> records = run_benchmark(judge, bench, mode="expected", samples=1)                        # doctest: +SKIP
    >>> compute_metrics(bench.kind, records, "expected")["relative"]["probs"]["accuracy"]       # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from ..registry import BENCHMARKS
from .data import (
    AUTOJ_RUBRIC,
    AbsoluteFields,
    AbsoluteItem,
    Benchmark,
    PairItem,
    load_benchmark,
    render_absolute_prompt,
    split_absolute_prompt,
)
from .runner import compute_metrics, run_benchmark
from .spec import PROTOCOLS, BenchmarkSpec, DataError, Headline, PinnedFile, benchmark_spec

__all__ = [
    "AUTOJ_RUBRIC",
    "BENCHMARKS",
    "AbsoluteFields",
    "AbsoluteItem",
    "Benchmark",
    "BenchmarkSpec",
    "DataError",
    "Headline",
    "PinnedFile",
    "benchmark_spec",
    "PairItem",
    "compute_metrics",
    "load_benchmark",
    "render_absolute_prompt",
    "run_benchmark",
    "split_absolute_prompt",
    "meta_evaluate",
    "write_reports",
]

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
PREDICTIONS_FILE = "predictions.jsonl"
# Settings a resumed run must share with the run it continues.
_RESUME_KEYS = ("benchmark", "data", "kind", "model", "adapter", "mode", "samples", "protocols", "generation", "relative_variant")


def protocols_for(benchmark: str, kind: str, choice: str | None) -> tuple[str, ...]:
    """The protocols a run of ``benchmark`` uses (see :meth:`BenchmarkSpec.protocols_for`); an
    unregistered name (a set built in code) runs ``relative``, or ``choice``."""
    if benchmark in BENCHMARKS:
        return benchmark_spec(benchmark).protocols_for(kind, choice)
    if kind == "absolute":
        return ("absolute",)
    return ("relative",) if choice is None else PROTOCOLS if choice == "both" else (choice,)


def write_reports(run: dict[str, Any], records: list[dict[str, Any]], out_dir: Path, n_resamples: int = 1000,
                  seed: int = 0, plots: bool = True) -> dict[str, Any]:
    """Metrics from ``records``, then results.json, results.md and the plots in ``out_dir``."""
    from .report import write_json, write_markdown, write_plots

    metrics = compute_metrics(run["kind"], records, run["mode"], run["samples"], n_resamples, seed)
    result = {**run, "n": len(records), "bootstrap_resamples": n_resamples, "metrics": metrics}
    write_json(result, out_dir / "results.json")
    write_markdown(result, out_dir / "results.md")
    if plots:
        result["plots"] = [p.name for p in write_plots(result, records, out_dir)]
        write_json(result, out_dir / "results.json")
    return result


def meta_evaluate(
    judge,
    bench: Benchmark,
    output_dir: str | Path,
    mode: str = "expected",
    samples: int = 3,
    protocols: Sequence[str] | None = None,
    batch_size: int = 16,
    overrides: dict[str, Any] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    plots: bool = True,
    resume: bool = False,
    run_info: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Judge ``bench`` and write every output into ``output_dir``; returns the results dict.

    Predictions are appended to ``predictions.jsonl`` chunk by chunk (flushed), so an interrupted
    run keeps what it did; ``resume=True`` skips the rows already there (same settings only).
    """
    from ..io import JsonlWriter, iter_jsonl

    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    protocols = protocols_for(bench.name, bench.kind, None) if protocols is None else tuple(protocols)
    overrides = dict(overrides or {})
    run = {
        "benchmark": bench.name,
        "data": bench.path,
        "kind": bench.kind,
        "model": getattr(judge, "model_id", None),
        "model_revision": getattr(getattr(judge, "backend", None), "revision", None),
        "mode": mode,
        "samples": samples,
        "protocols": list(protocols) if bench.kind == "pairwise" else ["absolute"],
        "generation": {**asdict(judge.sampling), **overrides} if hasattr(judge, "sampling") else overrides,
        "relative_variant": getattr(judge, "relative_variant", None),
        **(run_info or {}),
    }
    predictions = out_dir / PREDICTIONS_FILE
    done: list[dict[str, Any]] = []
    if resume and predictions.is_file() and (out_dir / RUN_FILE).is_file():
        before = json.loads((out_dir / RUN_FILE).read_text(encoding="utf-8"))
        changed = [k for k in _RESUME_KEYS if json.dumps(before.get(k), default=str) != json.dumps(run.get(k), default=str)]
        if changed:
            raise DataError(f"cannot resume in {out_dir}: settings differ from the earlier run ({', '.join(changed)})")
        wanted = {it.id for it in bench.items}
        done = [r for r in iter_jsonl(predictions) if r.get("id") in wanted]
    (out_dir / RUN_FILE).write_text(json.dumps(run, indent=2, default=str) + "\n", encoding="utf-8")
    started = time.perf_counter()
    with JsonlWriter(predictions, append=bool(done)) as writer:
        records = run_benchmark(
            judge, bench, mode=mode, samples=samples, protocols=protocols, batch_size=batch_size,
            overrides=overrides, on_chunk=writer.write_many, skip_ids={r["id"] for r in done}, progress=progress,
        )
    run["runtime_s"] = round(time.perf_counter() - started, 2)
    run["resumed_rows"] = len(done)
    stats = getattr(getattr(judge, "backend", None), "stats", None)
    if stats is not None:
        run["tokens"] = {"prompt": stats.prompt_tokens, "completion": stats.completion_tokens}
    (out_dir / RUN_FILE).write_text(json.dumps(run, indent=2, default=str) + "\n", encoding="utf-8")
    return write_reports(run, done + records, out_dir, n_resamples, seed, plots)
