"""``prometheus-reward meta-eval``: agreement of a judge with GPT-4 / human labels on the Prometheus
benchmarks, written beside the published numbers (see ``docs/meta_evaluation.md``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..metaeval import load_benchmark, meta_evaluate, write_reports
from ..metaeval import RUN_FILE, PREDICTIONS_FILE, protocols_for
from ..registry import BENCHMARKS
from .common import (
    UserError,
    add_judge_options,
    add_judging_options,
    add_skip_option,
    check_output_dir,
    input_error,
    judge_configs,
    judge_from_args,
    non_negative_int,
    positive_int,
    rubric_option,
)


def make_parser(subparsers: Any) -> argparse.ArgumentParser:

    parser = subparsers.add_parser(
        "meta-eval",
        help="agreement of a judge with GPT-4 / human labels on the Prometheus benchmarks",
        description="Judge a benchmark and report correlations / accuracies beside the published numbers.",
    )
    parser.add_argument("--benchmark", choices=BENCHMARKS.names(),
                        help="required unless --from-predictions: "
                             + "; ".join(f"{name}: {BENCHMARKS.help(name)}" for name in BENCHMARKS))
    parser.add_argument("--data",
                        help="the benchmark file, or a folder holding its usual file name (e.g. vicuna_eval.json); "
                             "default: the pinned upstream file, downloaded once into the cache (checksum-checked)")
    parser.add_argument("--output-dir", required=True, help="where results.json, results.md, plots and predictions go")
    parser.add_argument("--limit", type=positive_int, default=None, help="only the first N rows / pairs")
    parser.add_argument("--protocol", choices=["absolute", "relative", "both"], default=None,
                        help="pairwise sets: grade each response alone, compare them, or both "
                             f"(default: {_default_protocols()})")
    parser.add_argument("--rubric", default=None,
                        help="rubric for sets without their own (autoj, custom rows without a 'rubric' column)")
    parser.add_argument("--batch-size", type=positive_int, default=16,
                        help="rows per judge call (the progress bar moves per call)")
    parser.add_argument("--bootstrap", type=non_negative_int, default=1000,
                        help="bootstrap resamples for the 95%% intervals (0: none)")
    parser.add_argument("--bootstrap-seed", type=int, default=0)
    parser.add_argument("--no-plots", action="store_true")
    add_skip_option(parser, "DIR/predictions.skipped.jsonl")
    parser.add_argument("--resume", action="store_true", help="keep the rows already in DIR/predictions.jsonl")
    parser.add_argument("--from-predictions", action="store_true",
                        help="no judging: recompute results and plots from DIR/predictions.jsonl and DIR/run.json")
    add_judge_options(parser)
    # the papers' protocol averages 3 samples per row (the one command whose default differs)
    add_judging_options(parser, samples=3)
    parser.set_defaults(func=main)
    return parser


def _default_protocols() -> str:
    """'both for hhh, relative for autoj, custom': each pairwise set's default, from its spec."""
    by_default: dict[str, list[str]] = {}
    for name in BENCHMARKS:
        spec = BENCHMARKS.get(name)
        if spec.kind != "absolute":
            chosen = "both" if set(spec.default_protocols) == {"absolute", "relative"} else "+".join(spec.default_protocols)
            by_default.setdefault(chosen, []).append(name)
    return "; ".join(f"{chosen} for {', '.join(names)}" for chosen, names in by_default.items())


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..io import DataFileError, iter_jsonl, skipped_path, write_skipped

    out_dir = Path(args.output_dir)
    if args.from_predictions:
        if not (out_dir / RUN_FILE).is_file() or not (out_dir / PREDICTIONS_FILE).is_file():
            raise UserError(f"--from-predictions needs {out_dir / RUN_FILE} and {out_dir / PREDICTIONS_FILE}")
        run = json.loads((out_dir / RUN_FILE).read_text(encoding="utf-8"))
        result = write_reports(run, list(iter_jsonl(out_dir / PREDICTIONS_FILE)), out_dir, args.bootstrap,
                               args.bootstrap_seed, not args.no_plots)
        _print_summary(Console(), result, out_dir)
        return 0
    if not args.benchmark:
        raise UserError("--benchmark is required (unless --from-predictions)")
    # everything the user typed is checked before the model loads
    judge_config, judging = judge_configs(args)
    check_output_dir(out_dir)
    rubric = rubric_option(args.rubric)
    side = skipped_path(out_dir / PREDICTIONS_FILE)
    # Load (and validate) the data before the model: a bad row fails in seconds, naming row and field.
    try:
        bench = load_benchmark(args.benchmark, args.data, args.limit, rubric, skip_bad_rows=args.skip_bad_rows)
    except DataFileError as err:
        raise input_error(err, side) from None
    protocols = protocols_for(args.benchmark, bench.kind, args.protocol)
    judge = judge_from_args(args, config=judge_config)
    written = write_skipped(side, bench.bad_lines)
    result = meta_evaluate(
        judge, bench, out_dir, mode=judging.mode, samples=judging.samples, protocols=protocols,
        batch_size=args.batch_size, overrides=judging.sampling_overrides(), n_resamples=args.bootstrap,
        seed=args.bootstrap_seed, plots=not args.no_plots, resume=args.resume,
        run_info={"limit": args.limit, "adapter": args.adapter, "model_arg": args.model,
                  "malformed_lines_set_aside": len(bench.bad_lines)},
    )
    _print_summary(Console(), result, out_dir)
    if written:
        Console().print(f"set aside {len(bench.bad_lines)} malformed line(s) of {bench.path} -> {written}")
    return 0


def _print_summary(console, result: dict[str, Any], out_dir: Path) -> None:
    from rich.table import Table

    from ..metaeval.report import _fmt, _with_ci, headline_rows

    table = Table(title=f"meta-eval {result['benchmark']} · {result['model']} · mode={result['mode']} · n={result['n']}")
    table.add_column("metric")
    table.add_column("integer", justify="right")
    table.add_column("expected", justify="right")
    table.add_column("Prometheus-2-7B (paper)", justify="right")
    for row in headline_rows(result):
        table.add_row(row["label"], _with_ci(row["integer"]), _with_ci(row["expected"]),
                      _fmt(row["published"].get("Prometheus-2-7B")))
    console.print(table)
    m = result.get("metrics", {})
    if "forced" in m:
        console.print(f"integer column: {m['parsed']} rows with a parsed [RESULT]; expected column: {m['forced']} rows "
                      "used a forced [RESULT] reading (the evaluator wrote none)")
    console.print(f"run time {_fmt(result.get('runtime_s'), 1)} s · wrote {out_dir}/results.json, results.md"
                  + (", " + ", ".join(result.get("plots", [])) if result.get("plots") else ""))
