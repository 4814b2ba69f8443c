"""``prometheus-reward compare IN -o OUT``: which of two responses is better, judged in both orders."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from .common import (
    add_input_options,
    add_judge_options,
    add_judging_options,
    judge_in_batches,
    open_judged_file,
)

FORCED = "forced (scored from a forced [RESULT]: the evaluator wrote none)"


def make_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("compare", help="which of two responses is better (both orders)")
    add_input_options(parser)
    parser.add_argument("--instruction-column", default=None, help="default: instruction, prompt or question")
    parser.add_argument("--a-column", default=None, help="default: response_a, chosen or 'response 1'")
    parser.add_argument("--b-column", default=None, help="default: response_b, rejected or 'response 2'")
    add_judge_options(parser)
    add_judging_options(parser)
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..grades import Preference

    # everything the user typed is checked before the model loads
    data = open_judged_file(args, {
        "a": (args.a_column, ("response_a", "response_A", "chosen", "response 1"), "response A", "--a-column"),
        "b": (args.b_column, ("response_b", "response_B", "rejected", "response 2"), "response B", "--b-column"),
    })
    judge, judging, rows = data.judge, data.judging, data.rows
    tally: Counter = Counter({"A": 0, "B": 0, "tie/none": 0, "consistent": 0, "unscorable": 0, FORCED: 0})

    def judge_batch(batch: list[dict[str, Any]]) -> list[Preference]:
        return judge.compare([r["instruction"] for r in batch], [r["a"] for r in batch], [r["b"] for r in batch],
                             [r["rubric"] for r in batch], [r["reference"] for r in batch], errors="return",
                             mode=judging.mode, samples=judging.samples, **judging.sampling_overrides())

    def count(pref: Preference) -> None:
        tally[pref.winner or "tie/none"] += 1
        tally["consistent"] += pref.consistent
        tally["unscorable"] += pref.error is not None
        tally[FORCED] += pref.error is None and pref.forced

    judge_in_batches(rows, data.inputs, args.batch_size, args.output, judge_batch, lambda problem: Preference(error=problem),
                     "comparing", count)
    table = Table(title=f"{args.output} ({judge.model_id}, mode={judging.mode})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("pairs", str(len(rows)))
    for key, value in {**tally, **data.aside}.items():
        table.add_row(key, f"[yellow]{value}[/yellow]" if key == FORCED and value else str(value))
    Console().print(table)
    return 0
