"""The grade / compare commands, run in-process on real (tiny) models and real files (bench: test_bench.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prometheus_reward.cli import main
from prometheus_reward.io import iter_jsonl

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "grade_demo.jsonl"


def test_grade_command_writes_every_row_and_a_summary(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "grades.jsonl"
    rubric = REPO / "configs" / "rubrics" / "child_readability.yaml"
    code = main(["grade", str(DEMO), "-o", str(out), "--model", str(tiny_model_dir), "--min-score-mass", "0", "--rubric", str(rubric),
                 "--mode", "direct", "--batch-size", "3"])
    assert code == 0
    rows = list(iter_jsonl(out))
    source = list(iter_jsonl(DEMO))
    assert [r["id"] for r in rows] == [r["id"] for r in source]  # order kept, input columns carried
    for row in rows:
        assert row["error"] is None and 1 <= row["expected"] <= 5 and len(row["probs"]) == 5
    printed = capsys.readouterr().out
    assert "rows" in printed and "mean score" in printed and "score 5" in printed


def test_grade_command_reports_bad_rows_and_keeps_going(tiny_model_dir, tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in [
        {"prompt": "q1", "completion": "fine", "rubric": "honesty"},
        {"prompt": "q2", "completion": None, "rubric": "honesty"},
        {"prompt": "q3", "completion": "also fine", "rubric": "Is it polite?"},
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["grade", str(data), "-o", str(out), "--model", str(tiny_model_dir), "--min-score-mass", "0", "--mode", "direct"]) == 0
    rows = list(iter_jsonl(out))
    assert len(rows) == 3
    assert rows[1]["error"] == "row 1: field 'completion' must be a string or assistant messages, got None"
    assert rows[0]["error"] is None and rows[2]["error"] is None


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_grade_reads_csv_and_parquet(tiny_model_dir, tmp_path, fmt):
    import datasets

    ds = datasets.Dataset.from_list([{"instruction": "Say hi.", "response": "Hello"}, {"instruction": "2+2?", "response": "4"}])
    path = tmp_path / f"in.{fmt}"
    getattr(ds, f"to_{fmt}")(str(path))
    out = tmp_path / "out.jsonl"
    assert main(["grade", str(path), "-o", str(out), "--model", str(tiny_model_dir), "--min-score-mass", "0", "--rubric", "helpfulness",
                 "--mode", "direct"]) == 0
    assert len(list(iter_jsonl(out))) == 2


def test_missing_rubric_and_columns_are_clear(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"question": "q", "text": "t"}) + "\n")
    assert main(["grade", str(data), "-o", str(tmp_path / "o.jsonl"), "--model", str(tiny_model_dir), "--min-score-mass", "0", "--rubric", "honesty"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no column for the response") and err.count("\n") == 1
    assert main(["grade", str(DEMO), "-o", str(tmp_path / "o.jsonl"), "--model", str(tiny_model_dir)]) == 2
    assert capsys.readouterr().err == "error: give --rubric or a 'rubric' column in the data\n"
    assert not (tmp_path / "o.jsonl").exists()  # refused before any work


def test_compare_command(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"}) for i in range(3)) + "\n")
    out = tmp_path / "prefs.jsonl"
    assert main(["compare", str(data), "-o", str(out), "--model", str(tiny_model_dir), "--min-score-mass", "0", "--rubric", "helpfulness",
                 "--mode", "direct"]) == 0
    rows = list(iter_jsonl(out))
    assert len(rows) == 3 and all(0.0 <= r["prob_a"] <= 1.0 and r["winner"] in ("A", "B") for r in rows)
    assert "consistent" in capsys.readouterr().out


def test_mixed_type_jsonl_reports_the_bad_row(tiny_model_dir, tmp_path):
    """A number where text belongs breaks Arrow's column typing; the row is still reported by
    index and field and the others are graded."""
    data = tmp_path / "mixed.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in [
        {"instruction": "q1", "response": "fine"},
        {"instruction": "q2", "response": 42},
        {"instruction": "q3", "response": "also fine"},
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["grade", str(data), "-o", str(out), "--model", str(tiny_model_dir), "--min-score-mass", "0", "--rubric", "honesty",
                 "--mode", "direct"]) == 0
    rows = list(iter_jsonl(out))
    assert [r["error"] for r in rows] == [None, "row 1: field 'response' must be a string or assistant messages, got int", None]


def test_top_level_help_describes_the_commands_without_markup(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    description = " ".join(out.split("\n\n")[1].split())  # the paragraph after the usage lines
    assert description == ("prometheus-reward: grade | compare | label | best-of-n | meta-eval | bench | serve | audit "
                           "| merge-adapters.")
    assert "``" not in out
