"""``prometheus-reward label IN -o OUT``: a preference dataset in TRL's format, resumable and cached."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..config import RerankConfig
from ..labeling import SKIP_KINDS, LabelSummary, label_preferences, margin_histogram
from .common import add_cache_options, add_judge_options, add_judging_options, add_options, config_from, judge_from_args, judging_from_args


def make_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("label", help="label preference pairs for DPO (resumable, cached)")
    p.add_argument("input", help="JSONL/JSON/CSV/Parquet: (prompt, response_a, response_b), (prompt, responses) "
                                 "or (prompt, chosen, rejected)")
    p.add_argument("-o", "--output", required=True, help="preference JSONL; skipped rows go to <stem>.skipped.jsonl")
    p.add_argument("--rubric", default=None, help="preset, YAML/JSON file or text (a per-row 'rubric' column wins)")
    p.add_argument("--method", default="pairwise", choices=["pairwise", "absolute"],
                   help="pairwise: compare in both orders; absolute: grade each response")
    p.add_argument("--format", dest="input_format", default=None, choices=["pair", "list", "rejudge"],
                   help="input format (default: from the columns)")
    p.add_argument("--prompt-column", default=None)
    p.add_argument("--a-column", default=None)
    p.add_argument("--b-column", default=None)
    p.add_argument("--responses-column", default=None)
    p.add_argument("--reference-column", default=None)
    p.add_argument("--list-pairs", default="best-vs-worst", choices=["best-vs-worst", "all"])
    p.add_argument("--inconsistent", default="keep", choices=["keep", "skip"],
                   help="pairs whose two presentation orders disagree")
    p.add_argument("--min-margin", type=float, default=0.0, help="|margin| at or below this is a tie")
    p.add_argument("--batch-size", type=int, default=16, help="rows per judge call and per fsynced write")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--overwrite", action="store_true", help="start over instead of resuming")
    p.add_argument("--summary-json", default=None, help="also write the summary as JSON here")
    add_options(p, RerankConfig, "ranking of list inputs (best-vs-worst)", skip=("strategy", "ranking"))
    add_cache_options(p)
    add_judge_options(p)
    add_judging_options(p)
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    columns = {k: v for k, v in {"prompt": args.prompt_column, "a": args.a_column, "b": args.b_column,
                                   "responses": args.responses_column}.items() if v}
    judging = judging_from_args(args)
    rerank = config_from(RerankConfig, args)
    judge = judge_from_args(args, cached=True)
    summary = label_preferences(
        args.input, judge, args.rubric, output=args.output, mode=judging.mode, method=args.method,
        list_pairs=args.list_pairs, tournament=rerank.tournament, inconsistent=args.inconsistent,
        min_margin=args.min_margin, samples=judging.samples, batch_size=args.batch_size,
        input_format=args.input_format, columns=columns, reference_column=args.reference_column,
        overwrite=args.overwrite, limit=args.limit, **judging.sampling_overrides(),
    )
    Console(stderr=True).print(summary_table(summary))
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary.to_dict(), indent=2))
    return 0


def summary_table(summary: LabelSummary):
    """A rich table of a labeling run, with a text histogram of the margins."""
    from rich.table import Table

    table = Table(title=f"{summary.output}: preference labeling")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("input rows", str(summary.rows))
    table.add_row("kept rows (pairs)", f"{summary.kept_rows} ({summary.pairs})")
    table.add_row("dropped rows", f"{summary.skipped_rows}  -> {summary.skipped_output}")
    for kind in SKIP_KINDS:
        table.add_row(f"  {kind.replace('_', ' ')}", str(summary.skipped.get(kind, 0)))
    table.add_row("kept but order-inconsistent", str(summary.inconsistent_kept))
    table.add_row("resumed (already done)", str(summary.resumed))
    for key, value in summary.cache.items():
        table.add_row(f"cache {key}", str(value))
    rate = summary.judged_rows / summary.seconds if summary.seconds else 0.0
    table.add_row("this run", f"{summary.judged_rows} rows in {summary.seconds:.1f} s ({rate:.2f} rows/s)")
    bins = margin_histogram(summary.margins)
    peak = max((c for _, _, c in bins), default=0)
    for lo, hi, count in bins:
        bar = "#" * round(25 * count / peak) if peak else ""
        table.add_row(f"margin {lo:+.3f}..{hi:+.3f}", f"{count:>5} {bar:<25}")
    return table
