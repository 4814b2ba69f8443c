"""HHH Alignment (221 pairs, a chosen and a rejected response): pairwise accuracy, by absolute and
relative grading.

Example:
    >>> SPEC.kind, SPEC.default_protocols
    ('pairwise', ('absolute', 'relative'))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data import Benchmark, load_hhh
from ..spec import BenchmarkSpec, Headline, PinnedFile
from . import P2_7B, P2_8X7B, PROMETHEUS_EVAL_COMMIT


def load(path: Path, limit: int | None = None, rubric: Any = None, skip_bad_rows: bool = False) -> Benchmark:
    return load_hhh(path, limit, skip_bad_rows)  # every row carries its own rubric


_FIGURES = {P2_7B: 0.7466, P2_8X7B: 0.8552, "GPT-4-1106": 0.9095}
SPEC = BenchmarkSpec(
    name="hhh",
    load=load,
    kind="pairwise",
    default_file="hhh_alignment_eval.json",
    pin=PinnedFile("hhh_alignment_eval.json", PROMETHEUS_EVAL_COMMIT, "eval/benchmark/data/hhh_alignment_eval.json",
                   "fe6655dfeec99d04d582692767c736f2385b5e067f0b894d1b73a32af7be9c9e", 1207596),
    default_protocols=("absolute", "relative"),
    # Prometheus 2 paper (EMNLP 2024), full set
    published=(
        Headline("accuracy, absolute grading", ("absolute", "{src}", "accuracy", "value"), _FIGURES),
        Headline("accuracy, relative grading", ("relative", "{rel}", "accuracy", "value"), _FIGURES),
    ),
)
