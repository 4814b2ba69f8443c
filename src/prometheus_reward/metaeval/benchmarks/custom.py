"""Custom data: the JSONL format of ``docs/meta_evaluation.md`` (absolute or pairwise rows), no
download (``--data PATH`` is required) and no published figures.

Example:
    >>> SPEC.kind is None and SPEC.pin is None
    True
"""

from __future__ import annotations

from ..data import load_custom
from ..spec import BenchmarkSpec

SPEC = BenchmarkSpec(
    name="custom",
    load=load_custom,
    kind=None,  # each file says: rows with gold_score are absolute, rows with label pairwise
    default_protocols=("relative",),
)
