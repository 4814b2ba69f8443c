"""``prometheus-reward label IN -o OUT``: a preference dataset in TRL's format, resumable and cached."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..config import RerankConfig
from ..labeling import SKIP_KINDS, LabelSummary, label_preferences, margin_histogram, resolve_format
from .common import (
    UserError,
    add_cache_options,
    add_judge_options,
    add_judging_options,
    add_options,
    add_skip_option,
    check_output,
    config_from,
    judge_configs,
    judge_from_args,
    positive_int,
    read_input,
    rubric_option,
)


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
    p.add_argument("--batch-size", type=positive_int, default=16, help="rows per judge call and per fsynced write")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N rows")
    p.add_argument("--overwrite", action="store_true", help="start over instead of resuming")
    p.add_argument("--summary-json", default=None, help="also write the summary as JSON here")
    add_skip_option(p, "OUT.skipped.jsonl (skip_reason: unreadable; a resumed run reads them again)")
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
    # everything the user typed is checked before the model loads
    judge_config, judging = judge_configs(args)
    rerank = config_from(RerankConfig, args)
    check_output(args.output, inputs=[args.input])
    if args.summary_json:
        check_output(args.summary_json, "--summary-json", inputs=[args.input, args.output])
    rubric = rubric_option(args.rubric)
    data = read_input(args.input, args.limit, args.skip_bad_rows, args.output)
    check_columns(data.rows[0], args.input_format, columns)
    if rubric is None and not any(row.get("rubric") is not None for row in data):
        raise UserError("give --rubric or a 'rubric' column in the data")
    judge = judge_from_args(args, cached=True, config=judge_config)
    summary = label_preferences(
        data, judge, rubric, output=args.output, mode=judging.mode, method=args.method,
        list_pairs=args.list_pairs, tournament=rerank.tournament, inconsistent=args.inconsistent,
        min_margin=args.min_margin, samples=judging.samples, batch_size=args.batch_size,
        input_format=args.input_format, columns=columns, reference_column=args.reference_column,
        overwrite=args.overwrite, **judging.sampling_overrides(),
    )
    Console(stderr=True).print(summary_table(summary))
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary.to_dict(), indent=2))
    return 0


_COLUMN_FLAGS = {"prompt": "--prompt-column", "a": "--a-column", "b": "--b-column", "responses": "--responses-column"}


def check_columns(row: dict[str, Any], input_format: str | None, columns: dict[str, str]) -> None:
    """The input format can be told from the columns (or is given), and every column named by an
    option exists: otherwise every row would be skipped one by one."""
    for name, column in columns.items():
        if column not in row:
            raise UserError(f"{_COLUMN_FLAGS[name]}: column {column!r} is not in the data (columns: {', '.join(row)})")
    try:
        resolve_format(row, input_format, columns)
    except ValueError as err:
        raise UserError(f"{err}; name the columns with --prompt-column, --a-column/--b-column or "
                        "--responses-column, or the format with --format") from None


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
