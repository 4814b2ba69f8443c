"""MT-Bench (320 rows, each graded 3 times by GPT-4): absolute grading against the mean GPT-4 score.

Example:
    >>> SPEC.kind, SPEC.pin.size
    ('absolute', 2472853)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data import Benchmark, load_gpt4_graded
from ..spec import BenchmarkSpec, Headline, PinnedFile
from . import P2_7B, P2_8X7B, PROMETHEUS_EVAL_COMMIT


def load(path: Path, limit: int | None = None, rubric: Any = None, skip_bad_rows: bool = False) -> Benchmark:
    return load_gpt4_graded(path, "mt_bench", limit, skip_bad_rows)


SPEC = BenchmarkSpec(
    name="mt_bench",
    load=load,
    kind="absolute",
    default_file="mt_bench_eval.json",
    pin=PinnedFile("mt_bench_eval.json", PROMETHEUS_EVAL_COMMIT, "eval/benchmark/data/mt_bench_eval.json",
                   "5bf33413c34173c3b94f008499fd9098fb6338d5d1cf64f341e8e0c9b9f105cf", 2472853),
    protocols=("absolute",),
    default_protocols=("absolute",),
    # Prometheus 2 paper (EMNLP 2024), full set
    published=(
        Headline("Pearson vs GPT-4 (mean of k)", ("{src}", "pearson", "value"),
                 {P2_7B: 0.548, P2_8X7B: 0.665, "Prometheus-1-13B": 0.404}),
    ),
)
