"""Vicuna (320 rows, each graded 3 times by GPT-4): absolute grading against the mean GPT-4 score.

Example:
    >>> SPEC.kind, SPEC.pin.size
    ('absolute', 2292270)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data import Benchmark, load_gpt4_graded
from ..spec import BenchmarkSpec, Headline, PinnedFile
from . import P2_7B, P2_8X7B, PROMETHEUS_EVAL_COMMIT


def load(path: Path, limit: int | None = None, rubric: Any = None, skip_bad_rows: bool = False) -> Benchmark:
    return load_gpt4_graded(path, "vicuna", limit, skip_bad_rows)


SPEC = BenchmarkSpec(
    name="vicuna",
    load=load,
    kind="absolute",
    default_file="vicuna_eval.json",
    pin=PinnedFile("vicuna_eval.json", PROMETHEUS_EVAL_COMMIT, "eval/benchmark/data/vicuna_eval.json",
                   "131550a5815f75014a3ea71b0f534fb7ef0ca49b714c4e66935c35fdee1daacc", 2292270),
    protocols=("absolute",),
    default_protocols=("absolute",),
    # Prometheus 2 paper (EMNLP 2024), full set
    published=(
        Headline("Pearson vs GPT-4 (mean of k)", ("{src}", "pearson", "value"),
                 {P2_7B: 0.666, P2_8X7B: 0.685, "Prometheus-1-13B": 0.492}),
    ),
)
