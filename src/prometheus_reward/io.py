"""Reading rows (JSONL/JSON/CSV/Parquet through ``datasets``) and writing JSONL as results come.

Example:
    >>> from prometheus_reward.io import read_rows
    >>> rows = read_rows("examples/grade_demo.jsonl")          # doctest: +SKIP
    >>> sorted(rows[0])                                         # doctest: +SKIP
    ['instruction', 'reference_answer', 'response']
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

logger = logging.getLogger(__name__)

_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def read_rows(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Load a local data file into a list of row dicts (format from the file extension)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {path}")
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unsupported format {path.suffix!r}; use .jsonl, .json, .csv or .parquet")
    from datasets import load_dataset
    from datasets.utils import logging as datasets_logging

    # datasets' "Generating train split" bars are noise for a small local file
    bars = datasets_logging.is_progress_bar_enabled()
    datasets_logging.disable_progress_bar()
    try:
        dataset = load_dataset(fmt, data_files=str(path), split="train")
    except Exception as err:
        if path.suffix.lower() != ".jsonl":
            raise ValueError(f"{path}: could not be read: {err}") from err
        # Arrow needs one type per column; a JSONL row with a number where text belongs (or
        # text among message lists) would fail the whole file here. Read it line by line instead
        # so that the bad row is reported by index and field and every other row is judged.
        logger.warning("%s: columns mix types (%s); reading it row by row", path, type(err).__name__)
        rows = list(iter_jsonl(path))
        return rows[:limit] if limit is not None else rows
    finally:
        if bars:
            datasets_logging.enable_progress_bar()
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return dataset.to_list()


def pick_column(row_keys: Iterable[str], wanted: str | None, candidates: Sequence[str], what: str) -> str:
    """The column to read ``what`` from: ``wanted`` if given, else the first candidate present."""
    keys = list(row_keys)
    if wanted:
        if wanted not in keys:
            raise ValueError(f"column {wanted!r} for the {what} is not in the data (columns: {', '.join(keys)})")
        return wanted
    for name in candidates:
        if name in keys:
            return name
    raise ValueError(f"no column for the {what}: expected one of {', '.join(candidates)} (columns: {', '.join(keys)})")


class JsonlWriter:
    """Append rows to a JSONL file, flushing and fsyncing each batch so that a crash loses nothing
    that was reported written."""

    def __init__(self, path: str | Path, append: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a" if append else "w", encoding="utf-8")

    def write_many(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self._handle.write(json.dumps(row, ensure_ascii=False, default=_jsonable) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL file, skipping a torn last line (a crash mid-write)."""
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_train_dataset(name: str | None, config: str | None = None, split: str = "train",
                       required: Sequence[str] = ("prompt",)):
    """A ``datasets.Dataset`` from a local file (JSONL/JSON/CSV/Parquet) or a hub dataset id,
    checked for the ``required`` columns (for the recipes)."""
    from datasets import load_dataset

    if name is None:
        raise ValueError("set dataset_name: a local data file or a hub dataset id")
    path = Path(name)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is not None and path.is_file():
        dataset = load_dataset(fmt, data_files=str(path), split="train")
    else:
        dataset = load_dataset(name, name=config, split=split)
    missing = [c for c in required if c not in dataset.column_names]
    if missing:
        raise ValueError(f"{name}: no {', '.join(repr(c) for c in missing)} column (columns: {', '.join(dataset.column_names)})")
    return dataset
