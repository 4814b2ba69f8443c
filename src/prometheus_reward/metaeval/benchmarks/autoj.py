"""Auto-J pairwise (1,392 pairs with human labels, ties included): relative-grading accuracy.

Upstream names the file ``autoj_pairwise.json`` but its content is JSON Lines, so it is kept under
a ``.jsonl`` name, byte for byte (no conversion); a folder holding upstream's name works too.

Example:
    >>> SPEC.default_file, SPEC.other_file_names, SPEC.default_protocols
    ('autoj_pairwise.jsonl', ('autoj_pairwise.json',), ('relative',))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data import Benchmark, load_autoj
from ..spec import BenchmarkSpec, Headline, PinnedFile
from . import P2_7B, P2_8X7B, PROMETHEUS_EVAL_COMMIT


def load(path: Path, limit: int | None = None, rubric: Any = None, skip_bad_rows: bool = False) -> Benchmark:
    return load_autoj(path, limit, rubric, skip_bad_rows)


SPEC = BenchmarkSpec(
    name="autoj",
    load=load,
    kind="pairwise",
    default_file="autoj_pairwise.jsonl",
    other_file_names=("autoj_pairwise.json",),
    pin=PinnedFile("autoj_pairwise.jsonl", PROMETHEUS_EVAL_COMMIT, "eval/benchmark/data/autoj_pairwise.json",
                   "56f32fad71d9b6b33bc4d51794c324981e26355bcbf3ce4908d7f8ddcc61f80e", 4066039),
    default_protocols=("relative",),
    # Prometheus 2 paper (EMNLP 2024), full set
    published=(
        Headline("accuracy without ties, relative", ("relative", "{rel}", "accuracy", "value"),
                 {P2_7B: 0.7507, P2_8X7B: 0.7998, "GPT-4-1106": 0.8312}),
        Headline("accuracy with ties, relative", ("relative", "{rel}", "accuracy_with_ties", "value"),
                 {P2_7B: 0.5496, P2_8X7B: 0.5841}),
        Headline("accuracy without ties, absolute", ("absolute", "{src}", "accuracy", "value"), {}),
    ),
)
