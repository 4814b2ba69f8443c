"""``prometheus-reward grade IN -o OUT``: grade each row 1-5 against a rubric, writing JSONL as it goes."""

from __future__ import annotations

import argparse
from typing import Any

from ..rows import require_prompt, require_response
from .common import (
    add_input_options,
    add_judge_options,
    add_judging_options,
    judge_from_args,
    judge_in_batches,
    judging_from_args,
    pick,
    read_input,
    read_judge_rows,
    score_summary_table,
)


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

    rows = read_input(args.input, args.limit)
    instruction_col = pick(rows[0], args.instruction_column, ("instruction", "prompt", "question"), "instruction")
    response_col = pick(rows[0], args.response_column, ("response", "completion", "answer"), "response")
    inputs = read_judge_rows(rows, {"instruction": (instruction_col, require_prompt),
                                    "response": (response_col, require_response)}, args.rubric, args.reference_column)
    judging = judging_from_args(args)
    judge = judge_from_args(args)
    scores: list[int | None] = []
    values: list[float | None] = []
    truncated = [0]

    def judge_batch(batch: list[dict[str, Any]]) -> list[Grade]:
        return judge.grade([r["instruction"] for r in batch], [r["response"] for r in batch],
                           [r["rubric"] for r in batch], [r["reference"] for r in batch], mode=judging.mode,
                           samples=judging.samples, errors="return", **judging.sampling_overrides())

    def count(grade: Grade) -> None:
        scores.append(grade.score)
        values.append(grade.value)
        truncated[0] += grade.truncated

    judge_in_batches(rows, inputs, args.batch_size, args.output, judge_batch, lambda problem: Grade(error=problem),
                     "grading", count)
    Console().print(score_summary_table(
        f"{args.output} ({judge.model_id}, mode={judging.mode})", scores, values, {"truncated": truncated[0]}
    ))
    return 0
