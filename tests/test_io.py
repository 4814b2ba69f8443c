"""The one reader of input files (:func:`prometheus_reward.io.read_data`): line-accurate errors for
JSON Lines, rows set aside with their line and number, never a line dropped silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prometheus_reward.io import DataFileError, DataRows, iter_jsonl, load_train_dataset, read_data, read_rows, write_skipped


def jsonl(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


def test_a_malformed_line_is_an_error_naming_it(tmp_path):
    path = jsonl(tmp_path / "in.jsonl", [{"a": 1}, '{"a": 2', {"a": 3}, "[1]"])
    with pytest.raises(DataFileError) as info:
        read_rows(path)
    assert str(info.value) == f"{path} line 2: invalid JSON (Expecting ',' delimiter at column 8) (and 1 more bad line)"
    assert [(b.line, b.row) for b in info.value.bad_lines] == [(2, 1), (4, 3)]


def test_skip_bad_rows_sets_lines_aside_and_rows_keep_their_numbers(tmp_path):
    path = jsonl(tmp_path / "in.jsonl", [{"a": "x"}, "", "  {broken", {"a": "y"}, '"text"', {"a": "z", "b": 1}])
    data = read_data(path, skip_bad_rows=True)
    # datasets unifies the columns: every row has every column
    assert data.rows == [{"a": "x", "b": None}, {"a": "y", "b": None}, {"a": "z", "b": 1}]
    assert data.numbers == [0, 2, 4] and data.records == 5  # the blank line is no record
    assert [(b.line, b.row, b.problem) for b in data.bad_lines] == [
        (3, 1, "invalid JSON (Expecting property name enclosed in double quotes at column 4)"),
        (5, 3, "expected a JSON object (one row per line), got a string"),
    ]
    assert data.bad_lines[0].to_dict() == {"input_row": 1, "line": 3, "skip_reason": "unreadable",
                                           "reason": f"{path} line 3: invalid JSON (Expecting property name "
                                                     "enclosed in double quotes at column 4)", "text": "  {broken"}


def test_limit_counts_records_and_reads_no_further(tmp_path):
    path = jsonl(tmp_path / "in.jsonl", [{"a": 0}, "{bad", {"a": 2}, {"a": 3}, "{also bad"])
    data = read_data(path, limit=3, skip_bad_rows=True)
    assert [r["a"] for r in data] == [0, 2] and data.numbers == [0, 2] and [b.line for b in data.bad_lines] == [2]
    assert read_rows(path, limit=1) == [{"a": 0}]  # the bad lines past the limit are never read


def test_mixed_types_fall_back_to_row_by_row_with_the_same_numbers(tmp_path):
    path = jsonl(tmp_path / "in.jsonl", [{"r": "text"}, "{oops", {"r": 42}, {"r": [{"role": "assistant"}], "x": 1}])
    data = read_data(path, skip_bad_rows=True)
    assert data.rows == [{"r": "text", "x": None}, {"r": 42, "x": None}, {"r": [{"role": "assistant"}], "x": 1}]
    assert data.numbers == [0, 2, 3]


def test_encoding_bom_and_json_flavours(tmp_path):
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"a": "ok"}\n{"a": "caf\xe9"}\n')
    with pytest.raises(DataFileError, match=r"latin.jsonl line 2: not UTF-8 text \(byte 0xe9 at column 11; save"):
        read_rows(latin)
    assert read_data(latin, skip_bad_rows=True).bad_lines[0].text == '{"a": "caf\ufffd"}'
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"a": 1}\n{"a": 2}\n')
    assert read_rows(bom) == [{"a": 1}, {"a": 2}]
    lines_in_json = jsonl(tmp_path / "autoj.json", [{"a": 1}, "{x"])  # upstream names JSON Lines .json
    with pytest.raises(DataFileError, match=r"autoj.json line 2: invalid JSON"):
        read_rows(lines_in_json)
    array = tmp_path / "array.json"
    array.write_text('[{"a": 1},\n {"a": 2}]')
    assert read_rows(array) == [{"a": 1}, {"a": 2}]
    array.write_text('[{"a": 1},\n 7]')
    with pytest.raises(DataFileError, match=r"array.json: item 1 of the array is a number, not a JSON object"):
        read_rows(array)


def test_file_level_problems(tmp_path):
    with pytest.raises(DataFileError, match=r"absent.jsonl: no such file$"):
        read_rows(tmp_path / "absent.jsonl")
    with pytest.raises(DataFileError, match="is a folder"):
        read_rows(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataFileError, match=r"unsupported format '.txt'; use .jsonl, .json, .csv or .parquet"):
        read_rows(tmp_path / "notes.txt")
    bad_parquet = tmp_path / "x.parquet"
    bad_parquet.write_text("not parquet")
    with pytest.raises(DataFileError, match=r"x.parquet: could not be read as Parquet: "):
        read_rows(bad_parquet)


def test_csv_and_parquet_are_numbered_in_order(tmp_path):
    import datasets

    ds = datasets.Dataset.from_list([{"q": "a"}, {"q": "b"}, {"q": "c"}])
    for fmt in ("csv", "parquet"):
        path = tmp_path / f"in.{fmt}"
        getattr(ds, f"to_{fmt}")(str(path))
        data = read_data(path, limit=2)
        assert [r["q"] for r in data] == ["a", "b"] and data.numbers == [0, 1] and data.bad_lines == []


def test_write_skipped_replaces_or_removes_the_side_file(tmp_path):
    path = jsonl(tmp_path / "in.jsonl", [{"a": 1}, "{x"])
    side = tmp_path / "out.skipped.jsonl"
    data = read_data(path, skip_bad_rows=True)
    write_skipped(side, data.bad_lines)
    write_skipped(side, data.bad_lines)
    assert [r["line"] for r in iter_jsonl(side)] == [2]  # replaced, not appended
    assert write_skipped(side, []) is None and not side.exists()
    assert DataRows.of([{"a": 1}]).numbers == [0]


def test_recipes_loader_reports_a_bad_line(tmp_path):
    path = jsonl(tmp_path / "train.jsonl", [{"prompt": "a"}, '{"prompt": "b"'])
    with pytest.raises(DataFileError, match=r"train.jsonl line 2: invalid JSON"):
        load_train_dataset(str(path))
    jsonl(path, [{"prompt": "a"}, {"prompt": "b"}])
    assert load_train_dataset(str(path))["prompt"] == ["a", "b"]
