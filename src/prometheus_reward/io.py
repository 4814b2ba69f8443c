"""Data files in and out: reading rows from JSONL/JSON/CSV/Parquet files (through ``datasets``)
and writing JSONL as results come. What a row's cells mean to the evaluator is
:mod:`prometheus_reward.rows`; this module only gets the rows off the disk and back.

Every command (grade, compare, label, best-of-n, meta-eval, bench) and the library read files
with :func:`read_data`. A file that cannot be read raises :class:`DataFileError`, whose
message names the file (and, for JSON Lines, the line) and the problem. JSON Lines are checked
line by line before ``datasets`` sees them, so a malformed line is never dropped silently: by
default it stops the read (``FILE line N: invalid JSON (...)``); with ``skip_bad_rows=True`` it is
set aside as a :class:`BadLine` (with its line number, the row number it would have had, the
reason and its text) for the caller to write to a side file and count.

Rows keep the number of their record in the file (``DataRows.numbers``: the k-th non-blank line
of a JSONL file is row k-1, whether or not an earlier line was set aside), so that "row N" in an
error means the same row in every run and resumable commands stay aligned with the file.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "in.jsonl"
    >>> _ = path.write_text('{"prompt": "a"}\\n{"prompt": "b"\\n{"prompt": "c"}\\n')
    >>> read_rows(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    prometheus_reward.io.DataFileError: ... line 2: invalid JSON (Expecting ',' delimiter at column 15)
    >>> data = read_data(path, skip_bad_rows=True)
    >>> [r["prompt"] for r in data], data.numbers, [b.line for b in data.bad_lines]
    (['a', 'c'], [0, 2], [2])
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

logger = logging.getLogger(__name__)

_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
ROW_FIELD = "input_row"
UNREADABLE = "unreadable"


class DataFileError(ValueError):
    """A data file that cannot be read as rows; the message names the file (and the line, for
    JSON Lines) and the problem. ``bad_lines`` holds the malformed lines found (JSON Lines only),
    so that a caller can offer to set them aside."""

    def __init__(self, message: str, bad_lines: Sequence["BadLine"] = ()):
        super().__init__(message)
        self.bad_lines = list(bad_lines)


@dataclass(frozen=True)
class BadLine:
    """A line of a JSON Lines file that holds no readable row.

    Attributes:
        path: the file. line: its 1-based line number. row: the row number it would have had
        (its index among the file's non-blank lines). problem: what is wrong with it.
        text: the line as written (undecodable bytes replaced).
    """

    path: str
    line: int
    row: int
    problem: str
    text: str

    @property
    def reason(self) -> str:
        """``FILE line N: problem``."""
        return f"{self.path} line {self.line}: {self.problem}"

    def to_dict(self) -> dict[str, Any]:
        """The side-file record: ``input_row``, ``line``, ``skip_reason`` (``unreadable``),
        ``reason`` and ``text`` (the labeling side file's fields)."""
        return {ROW_FIELD: self.row, "line": self.line, "skip_reason": UNREADABLE, "reason": self.reason,
                "text": self.text}


@dataclass
class DataRows(Sequence):
    """The rows of a data file (a sequence of row dicts) with each row's record number
    (``numbers``) and the lines set aside (``bad_lines``, only with ``skip_bad_rows=True``).

    Example:
        >>> data = DataRows.of([{"prompt": "a"}, {"prompt": "b"}])
        >>> len(data), data.numbers, data.records
        (2, [0, 1], 2)
    """

    rows: list[dict[str, Any]]
    numbers: list[int]
    bad_lines: list[BadLine] = field(default_factory=list)
    path: str | None = None

    @classmethod
    def of(cls, rows: Iterable[Any], path: str | None = None) -> "DataRows":
        """Rows in memory (numbered 0, 1, ...); a :class:`DataRows` is returned as it is."""
        if isinstance(rows, DataRows):
            return rows
        rows = [dict(r) for r in rows]
        return cls(rows, list(range(len(rows))), [], path)

    @property
    def records(self) -> int:
        """Rows read plus lines set aside: every record of the (limited) file."""
        return len(self.rows) + len(self.bad_lines)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):  # type: ignore[override]
        return self.rows[index]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)


# -- reading --------------------------------------------------------------------------------------------------
def read_data(path: str | Path, limit: int | None = None, *, skip_bad_rows: bool = False) -> DataRows:
    """The rows of a local data file (format from the extension: .jsonl, .json, .csv, .parquet).

    JSON Lines (``.jsonl``, and ``.json`` files that are not one JSON array) are checked line by
    line first: a line that is not UTF-8, not JSON or not a JSON object raises
    :class:`DataFileError` (``FILE line N: invalid JSON (...)``), or, with ``skip_bad_rows``,
    is returned in ``bad_lines`` and left out of ``rows``. ``limit`` keeps the first ``limit``
    records (non-blank lines; rows set aside count). Whole-file formats (a JSON array, CSV,
    Parquet) are read as a whole: any problem is a :class:`DataFileError` naming the file.

    Example:
        >>> data = read_data("examples/pairs_smoke.jsonl", limit=2)            # doctest: +SKIP
        >>> len(data), data.numbers, data.bad_lines                              # doctest: +SKIP
        (2, [0, 1], [])
    """
    path = Path(path)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    _check_file(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl" or (suffix == ".json" and _first_char(path) != "["):
        return _read_json_lines(path, limit, skip_bad_rows)
    fmt = _FORMATS[suffix]
    if fmt in ("json", "csv"):
        _check_utf8(path)
    rows = _read_whole(path, fmt)
    if limit is not None:
        rows = rows[:limit]
    return DataRows(rows, list(range(len(rows))), [], str(path))


def read_rows(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The rows of a data file as a list of dicts; any malformed line is a :class:`DataFileError`
    (:func:`read_data` without setting lines aside).

    Example:
        >>> rows = read_rows("examples/grade_demo.jsonl")          # doctest: +SKIP
        >>> sorted(rows[0])                                         # doctest: +SKIP
        ['id', 'instruction', 'reference_answer', 'response']
    """
    return read_data(path, limit).rows


def _where(path: Path) -> str:
    return f"{path} (relative to {Path.cwd()})" if not path.is_absolute() else str(path)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataFileError(f"{_where(path)}: no such file")
    if path.is_dir():
        raise DataFileError(f"{path}: is a folder; give the data file itself")
    if path.suffix.lower() not in _FORMATS:
        raise DataFileError(f"{path}: unsupported format {path.suffix or '(no extension)'!r}; "
                            "use .jsonl, .json, .csv or .parquet")
    if not os.access(path, os.R_OK):
        raise DataFileError(f"{path}: cannot be read (permission denied)")


def _first_char(path: Path) -> str | None:
    """The first character of a text file that is not whitespace or a byte-order mark."""
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(65536)
            if not chunk:
                return None
            text = chunk.lstrip(b" \t\r\n").removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
            if text:
                return chr(text[0]) if text[0] < 128 else None


def _undecodable(raw: bytes, err: UnicodeDecodeError) -> str:
    column = len(raw[: err.start].decode("utf-8", "replace")) + 1
    return f"not UTF-8 text (byte 0x{raw[err.start]:02x} at column {column}; save the file as UTF-8)"


def _check_utf8(path: Path) -> None:
    """A whole-file format must be UTF-8: name the first line that is not."""
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataFileError(f"{path} line {line_no}: {_undecodable(raw, err)}") from None


_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true/false",
               type(None): "null"}


def _scan_json_lines(path: Path, limit: int | None) -> Iterator[tuple[int, int, str, Any, str | None]]:
    """Per record (non-blank line): (line number, record number, text (undecodable bytes
    replaced), parsed row or None, problem or None); stops after ``limit`` records."""
    record = 0
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, 1):
            if limit is not None and record >= limit:
                return
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield line_no, record, raw.decode("utf-8", "replace"), None, _undecodable(raw, err)
                record += 1
                continue
            if line_no == 1:
                text = text.removeprefix("\ufeff")
            body = text.strip()
            if not body:
                continue
            try:
                value = json.loads(body)
            except json.JSONDecodeError as err:
                column = err.colno + len(text) - len(text.lstrip())
                yield line_no, record, text, None, f"invalid JSON ({err.msg} at column {column})"
            except RecursionError:
                yield line_no, record, text, None, "invalid JSON (nested too deeply)"
            else:
                if isinstance(value, dict):
                    yield line_no, record, text, value, None
                else:
                    kind = _JSON_KINDS.get(type(value), type(value).__name__)
                    yield line_no, record, text, None, f"expected a JSON object (one row per line), got {kind}"
            record += 1


def _read_json_lines(path: Path, limit: int | None, skip_bad_rows: bool) -> DataRows:
    good: dict[int, int] = {}  # line number -> record number
    bad: list[BadLine] = []
    records = 0
    for line_no, record, text, _, problem in _scan_json_lines(path, limit):
        records += 1
        if problem is None:
            good[line_no] = record
        else:
            bad.append(BadLine(str(path), line_no, record, problem, text.rstrip("\r\n")))
    if bad and not skip_bad_rows:
        more = f" (and {len(bad) - 1} more bad line{'s' if len(bad) > 2 else ''})" if len(bad) > 1 else ""
        raise DataFileError(bad[0].reason + more, bad)
    if not good:
        return DataRows([], [], bad, str(path))
    if not bad and (limit is None or records < limit):  # the whole file is good: datasets reads it as it is
        rows = _load_json_lines(path, path, good)
    else:
        # hand datasets exactly the good lines within the limit
        with tempfile.TemporaryDirectory(prefix="prometheus-reward-") as tmp:
            part = Path(tmp) / "rows.jsonl"
            with path.open("rb") as src, part.open("w", encoding="utf-8") as dst:
                for line_no, raw in enumerate(src, 1):
                    if line_no in good:
                        dst.write(raw.decode("utf-8").removeprefix("\ufeff").strip() + "\n")
            rows = _load_json_lines(path, part, good, cache_dir=tmp)
    return DataRows(rows, list(good.values()), bad, str(path))


def _load_json_lines(path: Path, source: Path, good: dict[int, int], cache_dir: str | None = None) -> list[dict]:
    """Rows of already-checked JSON Lines through ``datasets``; a file whose columns mix types
    (Arrow needs one type per column) is read row by row instead, so that a bad field is
    reported by row and field downstream rather than failing the file."""
    try:
        return _datasets_rows("json", source, cache_dir)
    except Exception as err:  # noqa: BLE001 - Arrow's typing errors come in many classes
        logger.warning("%s: columns mix types (%s); reading it row by row", path, type(err).__name__)
    return _uniform([value for line_no, _, _, value, _ in _scan_json_lines(path, None) if line_no in good])


def _uniform(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every row every column (None where absent), as ``datasets`` does."""
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    return [{k: row.get(k) for k in keys} for row in rows]


def _datasets_rows(fmt: str, source: Path, cache_dir: str | None = None) -> list[dict[str, Any]]:
    from datasets import load_dataset
    from datasets.utils import logging as datasets_logging

    # datasets' "Generating train split" bars are noise for a small local file
    bars = datasets_logging.is_progress_bar_enabled()
    datasets_logging.disable_progress_bar()
    try:
        return load_dataset(fmt, data_files=str(source), split="train", cache_dir=cache_dir).to_list()
    finally:
        if bars:
            datasets_logging.enable_progress_bar()


_KIND = {"json": "a JSON array of rows", "csv": "CSV", "parquet": "Parquet"}


def _read_whole(path: Path, fmt: str) -> list[dict[str, Any]]:
    try:
        return _datasets_rows(fmt, path)
    except Exception as err:  # noqa: BLE001 - reported with the file name, traceback kept as the cause
        if fmt != "json":
            raise DataFileError(f"{path}: could not be read as {_KIND[fmt]}: {one_line(err)}") from err
        cause = err
    try:
        value = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise DataFileError(f"{path} line {err.lineno}: invalid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(value, list):
        raise DataFileError(f"{path}: expected a JSON array of rows") from cause
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            kind = _JSON_KINDS.get(type(item), type(item).__name__)
            raise DataFileError(f"{path}: item {index} of the array is {kind}, not a JSON object (a row)") from cause
    logger.warning("%s: columns mix types (%s); reading it row by row", path, type(cause).__name__)
    return _uniform(value)


def one_line(err: BaseException | str, limit: int = 300) -> str:
    """An exception's message on one line (whitespace collapsed, cut at ``limit`` characters).

    Example:
        >>> one_line(ValueError("first\\n  second"))
        'first second'
    """
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


# -- writing ----------------------------------------------------------------------------------------------------
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


def skipped_path(output: str | Path) -> Path:
    """``<output stem>.skipped.jsonl`` beside the output: where rows set aside go.

    Example:
        >>> str(skipped_path("out/prefs.jsonl"))
        'out/prefs.skipped.jsonl'
    """
    output = Path(output)
    return output.with_name(output.stem + ".skipped.jsonl")


def write_skipped(path: str | Path, bad_lines: Sequence[BadLine], append: bool = False) -> Path | None:
    """Write the lines set aside (:meth:`BadLine.to_dict` records) to ``path``, replacing it
    unless ``append``. With nothing to write and ``append=False``, a file left there by an
    earlier run is removed (the side file always describes the output beside it). Returns the
    path written, or None.

    Example:
        >>> write_skipped("out.skipped.jsonl", data.bad_lines)      # doctest: +SKIP
    """
    path = Path(path)
    if not bad_lines:
        if not append and path.is_file():
            path.unlink()
        return None
    with JsonlWriter(path, append=append) as writer:
        writer.write_many(b.to_dict() for b in bad_lines)
    return path


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL file *this library wrote* (outputs, caches of results), skipping a torn
    last line (a crash mid-write). Input files go through :func:`read_data`, which never skips
    a line silently."""
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


def is_data_file(name: str | Path) -> bool:
    """Whether ``name`` is a local data file this module reads (else, for the loaders that take
    both, a hub dataset id).

    Example:
        >>> is_data_file("prometheus-eval/Feedback-Collection")
        False
    """
    path = Path(name)
    return path.suffix.lower() in _FORMATS and path.is_file()


def load_train_dataset(name: str | None, config: str | None = None, split: str = "train",
                       required: Sequence[str] = ("prompt",)):
    """A ``datasets.Dataset`` from a local file (JSONL/JSON/CSV/Parquet) or a hub dataset id,
    checked for the ``required`` columns (for the recipes). A local JSON Lines file is checked
    line by line first (a malformed line is a :class:`DataFileError` naming it).

    Example:
        >>> ds = load_train_dataset("examples/prompts_smoke.jsonl")       # doctest: +SKIP
    """
    from datasets import load_dataset

    if name is None:
        raise ValueError("set dataset_name: a local data file or a hub dataset id")
    path = Path(name)
    if is_data_file(path):
        fmt = _FORMATS[path.suffix.lower()]
        if path.suffix.lower() == ".jsonl" or (fmt == "json" and _first_char(path) != "["):
            for _, _, _, _, problem in _scan_json_lines(path, None):
                if problem is not None:
                    # the first bad line, named exactly; read_data reports it the same way
                    read_data(path)
        dataset = load_dataset(fmt, data_files=str(path), split="train")
    else:
        dataset = load_dataset(name, name=config, split=split)
    if "prompt" in required and "prompt" not in dataset.column_names and "question" in dataset.column_names:
        # RaR's data (ScaleAI/RaR-Medicine, -Science) names its prompts "question"
        logger.info("%s: using the 'question' column as 'prompt'", name)
        dataset = dataset.rename_column("question", "prompt")
    missing = [c for c in required if c not in dataset.column_names]
    if missing:
        raise ValueError(f"{name}: no {', '.join(repr(c) for c in missing)} column (columns: {', '.join(dataset.column_names)})")
    return dataset
