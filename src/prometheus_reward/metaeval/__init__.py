"""Meta-evaluation of a judge against the Prometheus papers' benchmarks (and custom data).

``prometheus-reward meta-eval --benchmark vicuna|mt_bench|hhh|autoj|custom --data PATH --model M
--output-dir DIR`` judges the set, then writes ``predictions.jsonl`` (as it goes), ``results.json``,
``results.md`` (beside the published numbers) and ``scatter.png``, ``confusion.png``,
``calibration.png``. See ``docs/meta_evaluation.md`` for the protocol.

Example:
    >>> from prometheus_reward.metaeval import load_benchmark, run_benchmark, compute_metrics   # doctest: +SKIP
    >>> bench = load_benchmark("hhh", "data/benchmarks", limit=10)                               # doctest: +SKIP
    >>> records = run_benchmark(judge, bench, mode="expected", samples=1)                        # doctest: +SKIP
    >>> compute_metrics(bench.kind, records, "expected")["relative"]["probs"]["accuracy"]       # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from .data import (
    AUTOJ_RUBRIC,
    BENCHMARKS,
    AbsoluteFields,
    AbsoluteItem,
    Benchmark,
    DataError,
    PairItem,
    load_benchmark,
    render_absolute_prompt,
    split_absolute_prompt,
)
from .runner import DEFAULT_PROTOCOLS, PROTOCOLS, compute_metrics, run_benchmark

__all__ = [
    "AUTOJ_RUBRIC",
    "BENCHMARKS",
    "AbsoluteFields",
    "AbsoluteItem",
    "Benchmark",
    "DataError",
    "PairItem",
    "compute_metrics",
    "load_benchmark",
    "render_absolute_prompt",
    "run_benchmark",
    "split_absolute_prompt",
    "meta_evaluate",
    "add_parser",
]

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
PREDICTIONS_FILE = "predictions.jsonl"
# Settings a resumed run must share with the run it continues.
_RESUME_KEYS = ("benchmark", "data", "kind", "model", "adapter", "mode", "samples", "protocols", "generation", "relative_variant")


def _protocols(benchmark: str, kind: str, choice: str | None) -> tuple[str, ...]:
    if kind == "absolute":
        return ("absolute",)
    if choice is None:
        return DEFAULT_PROTOCOLS.get(benchmark, ("relative",))
    return PROTOCOLS if choice == "both" else (choice,)


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
    protocols = _protocols(bench.name, bench.kind, None) if protocols is None else tuple(protocols)
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


# -- command line ----------------------------------------------------------------------------------------
def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``meta-eval`` on the ``prometheus-reward`` command line."""
    from ..cli_args import add_generation_arguments, add_judge_arguments
    from ..templates import RELATIVE_VARIANTS

    parser = subparsers.add_parser(
        "meta-eval",
        help="agreement of a judge with GPT-4 / human labels on the Prometheus benchmarks",
        description="Judge a benchmark and report correlations / accuracies beside the published numbers.",
    )
    parser.add_argument("--benchmark", choices=BENCHMARKS, help="required unless --from-predictions")
    parser.add_argument("--data",
                        help="the benchmark file, or a folder holding its usual file name (e.g. vicuna_eval.json)")
    parser.add_argument("--output-dir", required=True, help="where results.json, results.md, plots and predictions go")
    parser.add_argument("--limit", type=int, default=None, help="only the first N rows / pairs")
    parser.add_argument("--protocol", choices=["absolute", "relative", "both"], default=None,
                        help="pairwise sets: grade each response alone, compare them, or both "
                             "(default: both for hhh, relative for autoj and custom)")
    parser.add_argument("--rubric", default=None,
                        help="rubric for sets without their own (autoj, custom rows without a 'rubric' column)")
    parser.add_argument("--relative-variant", default=None, choices=sorted(RELATIVE_VARIANTS),
                        help="wording of the pairwise prompt (default: the judge's)")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per judge call (the progress bar moves per call)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% intervals (0: none)")
    parser.add_argument("--bootstrap-seed", type=int, default=0)
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--resume", action="store_true", help="keep the rows already in DIR/predictions.jsonl")
    parser.add_argument("--from-predictions", action="store_true",
                        help="no judging: recompute results and plots from DIR/predictions.jsonl and DIR/run.json")
    add_judge_arguments(parser)
    add_generation_arguments(parser)
    # `expected` keeps the integer protocol (parsed scores) and adds the probability one: both side by side.
    parser.set_defaults(func=cmd_meta_eval, mode="expected", samples=3)
    return parser


def cmd_meta_eval(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..cli_args import generation_overrides, judge_from_args
    from ..io import iter_jsonl

    out_dir = Path(args.output_dir)
    if args.from_predictions:
        if not (out_dir / RUN_FILE).is_file() or not (out_dir / PREDICTIONS_FILE).is_file():
            raise SystemExit(f"error: --from-predictions needs {out_dir / RUN_FILE} and {out_dir / PREDICTIONS_FILE}")
        run = json.loads((out_dir / RUN_FILE).read_text(encoding="utf-8"))
        result = write_reports(run, list(iter_jsonl(out_dir / PREDICTIONS_FILE)), out_dir, args.bootstrap,
                               args.bootstrap_seed, not args.no_plots)
        _print_summary(Console(), result, out_dir)
        return 0
    if not args.benchmark or not args.data:
        raise SystemExit("error: --benchmark and --data are required (unless --from-predictions)")
    if args.samples < 1:
        raise SystemExit("error: --samples must be at least 1")
    try:
        # Load (and validate) the data before the model: a bad row fails in seconds, naming row and field.
        bench = load_benchmark(args.benchmark, args.data, args.limit, args.rubric)
    except DataError as err:
        raise SystemExit(f"error: {err}") from None
    protocols = _protocols(args.benchmark, bench.kind, args.protocol)
    judge = judge_from_args(args)
    if args.relative_variant:
        judge.relative_variant = args.relative_variant
    try:
        result = meta_evaluate(
            judge, bench, out_dir, mode=args.mode, samples=args.samples, protocols=protocols,
            batch_size=args.batch_size, overrides=generation_overrides(args), n_resamples=args.bootstrap,
            seed=args.bootstrap_seed, plots=not args.no_plots, resume=args.resume,
            run_info={"limit": args.limit, "adapter": args.adapter, "model_arg": args.model},
        )
    except DataError as err:
        raise SystemExit(f"error: {err}") from None
    _print_summary(Console(), result, out_dir)
    return 0


def _print_summary(console, result: dict[str, Any], out_dir: Path) -> None:
    from rich.table import Table

    from .report import _fmt, _with_ci, headline_rows

    table = Table(title=f"meta-eval {result['benchmark']} · {result['model']} · mode={result['mode']} · n={result['n']}")
    table.add_column("metric")
    table.add_column("integer", justify="right")
    table.add_column("expected", justify="right")
    table.add_column("Prometheus-2-7B (paper)", justify="right")
    for row in headline_rows(result):
        table.add_row(row["label"], _with_ci(row["integer"]), _with_ci(row["expected"]),
                      _fmt(row["published"].get("Prometheus-2-7B")))
    console.print(table)
    console.print(f"run time {_fmt(result.get('runtime_s'), 1)} s · wrote {out_dir}/results.json, results.md"
                  + (", " + ", ".join(result.get("plots", [])) if result.get("plots") else ""))
