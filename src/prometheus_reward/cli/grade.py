"""``prometheus-reward grade IN -o OUT``: grade each row 1-5 against a rubric, writing JSONL as it goes."""

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
    score_summary_table,
)

# How a grade's number was obtained (Grade.source), as the summary shows it.
SOURCES = {
    "parsed": "scored from the evaluator's [RESULT] (parsed)",
    "forced": "scored from a forced [RESULT] (the evaluator wrote none)",
    "direct": "scored in one forward pass (direct)",
}


def make_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("grade", help="grade responses 1-5 against a rubric")
    add_input_options(parser)
    parser.add_argument("--instruction-column", default=None, help="default: instruction, prompt or question")
    parser.add_argument("--response-column", default=None, help="default: response, completion or answer")
    add_judge_options(parser)
    add_judging_options(parser)
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..grades import Grade

    # everything the user typed is checked before the model loads
    data = open_judged_file(args, {"response": (args.response_column, ("response", "completion", "answer"),
                                                "response", "--response-column")})
    judge, judging, rows = data.judge, data.judging, data.rows
    grades: list[Grade] = []

    def judge_batch(batch: list[dict[str, Any]]) -> list[Grade]:
        return judge.grade([r["instruction"] for r in batch], [r["response"] for r in batch],
                           [r["rubric"] for r in batch], [r["reference"] for r in batch], errors="return",
                           **judging.grade_options())

    judge_in_batches(rows, data.inputs, args.batch_size, args.output, judge_batch, lambda problem: Grade(error=problem),
                     "grading", grades.append)
    console = Console()
    values = [g.value for g in grades]
    console.print(score_summary_table(
        f"{args.output} ({judge.model_id}, mode={judging.mode})",
        [None if v is None else min(5, max(1, round(v))) for v in values], values, {**provenance(grades), **data.aside},
    ))
    if any(g.items for g in grades):
        console.print(checklist_table(grades))
    forced = sum(g.value is not None and g.forced for g in grades)
    if forced:
        console.print(f"[yellow]note: {forced} row{'s were' if forced > 1 else ' was'} scored from a forced [RESULT] "
                      "(the evaluator wrote none; a distribution read after an appended marker): their rows say "
                      "\"forced\": true[/yellow]", markup=True, highlight=False)
    return 0


def checklist_table(grades: list[Any]):
    """Per checklist item (explicit aggregation): its weight, mean 1-5 value over the rows that
    have it, and how many rows scored it, so the weak or gamed criterion stands out."""
    from rich.table import Table

    table = Table(title="checklist items (explicit aggregation)")
    for column in ("item", "weight", "mean (1-5)", "scored", "unscorable", "criterion"):
        table.add_column(column, justify="left" if column in ("item", "criterion") else "right")
    seen: dict[str, dict[str, Any]] = {}
    for grade in grades:
        for item in grade.items or []:
            entry = seen.setdefault(item["id"], {"weight": item["weight"], "criterion": item["criterion"], "values": [],
                                                 "unscorable": 0})
            if item["value"] is None:
                entry["unscorable"] += 1
            else:
                entry["values"].append(item["value"])
    for item_id, entry in seen.items():
        values = entry["values"]
        criterion = entry["criterion"] if len(entry["criterion"]) <= 60 else entry["criterion"][:57] + "..."
        table.add_row(item_id, f"{entry['weight']:g}", f"{sum(values) / len(values):.2f}" if values else "n/a",
                      str(len(values)), str(entry["unscorable"]), criterion)
    return table


def provenance(grades: list[Any]) -> dict[str, Any]:
    """Summary rows: scored rows by source (``Grade.source``; forced ones highlighted) and the
    mean score mass (the probability the evaluator put on the score tokens).

    Example:
        >>> from prometheus_reward.grades import Grade
        >>> rows = provenance([Grade(score=4, source="parsed", score_mass=0.9), Grade(expected=3.0, source="forced",
        ...                    score_mass=0.5)])
        >>> rows["mean score mass"], rows[SOURCES["forced"]]
        ('0.700', '[yellow]1[/yellow]')
    """
    scored = [g for g in grades if g.value is not None]
    by_source = Counter(g.source for g in scored)
    out: dict[str, Any] = {}
    for source, label in SOURCES.items():
        count = by_source.get(source, 0)
        out[label] = f"[yellow]{count}[/yellow]" if source == "forced" and count else str(count)
    masses = [g.score_mass for g in grades if g.score_mass is not None]
    out["mean score mass"] = f"{sum(masses) / len(masses):.3f}" if masses else "n/a"
    return out
