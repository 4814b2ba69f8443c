"""``prometheus-reward``: grade | compare | label | best-of-n | meta-eval | bench | serve.

Each subcommand other than grade/compare lives beside the code it drives and registers itself
through ``add_parser(subparsers)``, setting ``func`` to its entry point.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Any, Sequence

from .cli_args import (
    add_generation_arguments,
    add_judge_arguments,
    generation_overrides,
    judge_from_args,
    score_summary_table,
)
from .io import JsonlWriter, chunks, pick_column, read_rows

_SUBCOMMAND_MODULES = {
    "label": "prometheus_reward.labeling",
    "best-of-n": "prometheus_reward.best_of_n",
    "meta-eval": "prometheus_reward.metaeval",
    "bench": "prometheus_reward.bench",
    "serve": "prometheus_reward.server",
}


def _add_io_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="JSONL, JSON, CSV or Parquet file")
    parser.add_argument("-o", "--output", required=True, help="JSONL written as results come")
    parser.add_argument("--rubric", default=None,
                        help="preset name, YAML file or rubric text (a per-row 'rubric' column takes precedence)")
    parser.add_argument("--instruction-column", default=None)
    parser.add_argument("--reference-column", default=None)
    parser.add_argument("--batch-size", type=int, default=16, help="rows per evaluator call (and per flush)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N rows")


def _rubrics_for(rows: Sequence[dict[str, Any]], default: str | None) -> list[Any]:
    if rows and "rubric" in rows[0]:
        return [row["rubric"] if row.get("rubric") is not None else default for row in rows]
    if default is None:
        raise SystemExit("error: give --rubric or a 'rubric' column in the data")
    return [default] * len(rows)


def _references_for(rows: Sequence[dict[str, Any]], column: str | None) -> list[Any]:
    column = column or ("reference_answer" if rows and "reference_answer" in rows[0] else None)
    return [row.get(column) for row in rows] if column else [None] * len(rows)


def cmd_grade(args: argparse.Namespace) -> int:
    from rich.console import Console
    from tqdm.auto import tqdm

    rows = read_rows(args.input, args.limit)
    if not rows:
        raise SystemExit(f"error: {args.input} has no rows")
    instruction_col = pick_column(rows[0], args.instruction_column, ("instruction", "prompt", "question"), "instruction")
    response_col = pick_column(rows[0], args.response_column, ("response", "completion", "answer"), "response")
    rubrics = _rubrics_for(rows, args.rubric)
    references = _references_for(rows, args.reference_column)
    judge = judge_from_args(args)
    overrides = generation_overrides(args)
    scores: list[int | None] = []
    values: list[float | None] = []
    truncated = 0
    with JsonlWriter(args.output) as writer, tqdm(total=len(rows), desc="grading", unit="row") as bar:
        for start, batch in zip(range(0, len(rows), args.batch_size), chunks(rows, args.batch_size)):
            end = start + len(batch)
            grades = judge.grade(
                [r.get(instruction_col) for r in batch],
                [r.get(response_col) for r in batch],
                rubrics[start:end],
                references[start:end],
                mode=args.mode,
                samples=args.samples,
                errors="return",
                **overrides,
            )
            writer.write_many({**row, **grade.to_dict()} for row, grade in zip(batch, grades))
            for index, grade in enumerate(grades, start=start):
                if grade.error:
                    logging.getLogger("prometheus_reward").warning("row %d unscorable: %s", index, grade.error)
            scores.extend(g.score for g in grades)
            values.extend(g.value for g in grades)
            truncated += sum(g.truncated for g in grades)
            bar.update(len(batch))
    Console().print(score_summary_table(
        f"{args.output} ({judge.model_id}, mode={args.mode})", scores, values, {"truncated": truncated}
    ))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table
    from tqdm.auto import tqdm

    rows = read_rows(args.input, args.limit)
    if not rows:
        raise SystemExit(f"error: {args.input} has no rows")
    instruction_col = pick_column(rows[0], args.instruction_column, ("instruction", "prompt", "question"), "instruction")
    a_col = pick_column(rows[0], args.a_column, ("response_a", "response_A", "chosen", "response 1"), "response A")
    b_col = pick_column(rows[0], args.b_column, ("response_b", "response_B", "rejected", "response 2"), "response B")
    rubrics = _rubrics_for(rows, args.rubric)
    references = _references_for(rows, args.reference_column)
    judge = judge_from_args(args)
    overrides = generation_overrides(args)
    tally = {"A": 0, "B": 0, "tie/none": 0, "consistent": 0, "unscorable": 0}
    with JsonlWriter(args.output) as writer, tqdm(total=len(rows), desc="comparing", unit="pair") as bar:
        for start, batch in zip(range(0, len(rows), args.batch_size), chunks(rows, args.batch_size)):
            end = start + len(batch)
            prefs = judge.compare(
                [r.get(instruction_col) for r in batch],
                [r.get(a_col) for r in batch],
                [r.get(b_col) for r in batch],
                rubrics[start:end],
                references[start:end],
                mode=args.mode,
                samples=args.samples,
                errors="return",
                **overrides,
            )
            writer.write_many({**row, **pref.to_dict()} for row, pref in zip(batch, prefs))
            for pref in prefs:
                tally[pref.winner or "tie/none"] += 1
                tally["consistent"] += pref.consistent
                tally["unscorable"] += pref.error is not None
            bar.update(len(batch))
    table = Table(title=f"{args.output} ({judge.model_id}, mode={args.mode})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("pairs", str(len(rows)))
    for key, value in tally.items():
        table.add_row(key, str(value))
    Console().print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prometheus-reward", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    grade = sub.add_parser("grade", help="grade responses 1-5 against a rubric")
    _add_io_arguments(grade)
    grade.add_argument("--response-column", default=None)
    add_judge_arguments(grade)
    add_generation_arguments(grade)
    grade.set_defaults(func=cmd_grade)

    compare = sub.add_parser("compare", help="which of two responses is better (both orders)")
    _add_io_arguments(compare)
    compare.add_argument("--a-column", default=None)
    compare.add_argument("--b-column", default=None)
    add_judge_arguments(compare)
    add_generation_arguments(compare)
    compare.set_defaults(func=cmd_compare)

    for name, module_name in _SUBCOMMAND_MODULES.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue  # that part is not built yet
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
