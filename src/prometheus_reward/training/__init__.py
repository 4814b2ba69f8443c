"""Train your own evaluator: the Prometheus data formats and this library's graded rows as SFT
data rendered exactly as the judge renders them (:mod:`.data`, :mod:`.sft`), and LoRA adapter
merging, the Prometheus 2 recipe (:mod:`.merge`). The runnable script is
``recipes/train_evaluator.py``; ``docs/training.md`` walks through it.

Example:
    >>> from prometheus_reward.training import detect_schema
    >>> detect_schema(["instruction", "response_a", "response_b", "feedback", "winner"])
    'relative'
"""

from .data import (
    DEFAULT_DATASETS,
    SCHEMAS,
    DataReport,
    EvaluatorExample,
    detect_schema,
    load_examples,
    read_examples,
)
from .merge import MERGE_METHODS, MergeError, merge_adapters

__all__ = [
    "DEFAULT_DATASETS",
    "MERGE_METHODS",
    "SCHEMAS",
    "DataReport",
    "EvaluatorExample",
    "MergeError",
    "detect_schema",
    "load_examples",
    "merge_adapters",
    "read_examples",
]
