"""The two files of a preference-labeling run, written durably: what makes labeling resumable.

A run writes the preference rows to its output JSONL and the rows without a usable preference to
``<output stem>.skipped.jsonl``; every row carries the number of its input row (``input_row``).
Both files are appended and fsynced batch by batch (the kept file first, so a crash in between
leaves the skipped rows to be redone). On resume, :meth:`LabelFiles.resume` rewrites each file
atomically without a torn last line, drops the rows of a multi-pair group cut short by a crash and
any duplicate, and returns the input rows already finished; lines set aside as unreadable are not
finished (they are read again). Which pairs are judged and why a row is skipped is
:mod:`prometheus_reward.labeling`'s business, not this module's.

Example:
    >>> import tempfile, pathlib
    >>> files = LabelFiles(pathlib.Path(tempfile.mkdtemp()) / "prefs.jsonl")
    >>> files.skipped.name, files.resume()
    ('prefs.skipped.jsonl', set())
    >>> with files.appending() as write:
    ...     write.batch([{"chosen": "a", "rejected": "b", "margin": 0.5, "input_row": 0}],
    ...                 [{"skip_reason": "tie", "input_row": 1}])
    >>> files.resume(), files.count(("tie",)).skipped
    ({0, 1}, {'tie': 1})
"""

from __future__ import annotations

import json
import os
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .io import ROW_FIELD, UNREADABLE, BadLine, JsonlWriter, iter_jsonl, skipped_path


@dataclass
class FileCounts:
    """What the two files hold: rows per file, preference rows, margins, skipped rows by kind."""

    kept_rows: int = 0
    skipped_rows: int = 0
    pairs: int = 0
    inconsistent_kept: int = 0
    margins: list[float] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


class _Appender:
    """Appends one batch at a time to both files (fsynced by :class:`~prometheus_reward.io.JsonlWriter`)."""

    def __init__(self, kept: JsonlWriter, skipped: JsonlWriter):
        self._kept, self._skipped = kept, skipped

    def batch(self, kept: Sequence[dict[str, Any]], skipped: Sequence[dict[str, Any]]) -> None:
        # the kept file first: a crash in between leaves the skipped rows to be redone
        if kept:
            self._kept.write_many(kept)
        if skipped:
            self._skipped.write_many(skipped)

    def set_aside(self, lines: Iterable[BadLine]) -> None:
        """Unreadable input lines, to the skipped file (``skip_reason: unreadable``)."""
        self._skipped.write_many(line.to_dict() for line in lines)


class LabelFiles:
    """A labeling run's output file and its skipped file (``<stem>.skipped.jsonl``)."""

    def __init__(self, output: str | Path):
        self.output = Path(output)
        self.skipped = skipped_path(self.output)

    def clear(self) -> None:
        """Start over: remove both files."""
        for path in (self.output, self.skipped):
            if path.exists():
                path.unlink()

    def resume(self) -> set[int]:
        """The input rows already finished, each now in one file, once (see the module's docstring)."""
        kept_rows = _recover(self.output)
        recovered = _recover(self.skipped)
        skip_rows = [r for r in recovered if r.get("skip_reason") != UNREADABLE]
        groups: dict[int, list[dict]] = {}
        for row in kept_rows:
            groups.setdefault(row[ROW_FIELD], []).append(row)
        complete: dict[int, list[dict]] = {}
        for index, rows in groups.items():
            expected = rows[0].get("pairs_in_row", 1)
            seen_pairs = {json.dumps(r.get("pair")) for r in rows}
            if len(seen_pairs) >= expected:
                # keep one row per pair
                by_pair: dict[str, dict] = {}
                for r in rows:
                    by_pair.setdefault(json.dumps(r.get("pair")), r)
                complete[index] = list(by_pair.values())
        skip_by_row: dict[int, dict] = {}
        for row in skip_rows:
            if row[ROW_FIELD] not in complete:
                skip_by_row.setdefault(row[ROW_FIELD], row)
        final_kept = [r for rows in complete.values() for r in rows]
        final_skip = list(skip_by_row.values())
        if len(final_kept) != len(kept_rows):
            _rewrite(self.output, final_kept)
        if len(final_skip) != len(recovered):
            _rewrite(self.skipped, final_skip)
        return set(complete) | set(skip_by_row)

    @contextmanager
    def appending(self) -> Iterator[_Appender]:
        """Both files open for appending, batch by batch."""
        with JsonlWriter(self.output, append=True) as kept, JsonlWriter(self.skipped, append=True) as skipped:
            yield _Appender(kept, skipped)

    def count(self, kinds: Sequence[str]) -> FileCounts:
        """Count both files as they are now (resumed parts included); ``skipped`` by each of ``kinds``."""
        counts = FileCounts()
        kept_rows: set[int] = set()
        for row in iter_jsonl(self.output):
            kept_rows.add(row[ROW_FIELD])
            counts.pairs += 1
            if row.get("margin") is not None:
                counts.margins.append(float(row["margin"]))
            if row.get("consistent") is False:
                counts.inconsistent_kept += 1
        skipped: Counter[str] = Counter()
        skip_rows = set()
        for row in iter_jsonl(self.skipped):
            skip_rows.add(row[ROW_FIELD])
            skipped[row.get("skip_reason", "judge_error")] += 1
        counts.kept_rows = len(kept_rows)
        counts.skipped_rows = len(skip_rows)
        counts.skipped = {kind: skipped.get(kind, 0) for kind in kinds}
        return counts


def _recover(path: Path) -> list[dict[str, Any]]:
    """The intact rows of a file, rewritten atomically without a torn last line."""
    if not path.exists():
        return []
    rows = [r for r in iter_jsonl(path) if isinstance(r, dict) and isinstance(r.get(ROW_FIELD), int)]
    _rewrite(path, rows)
    return rows


def _rewrite(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
