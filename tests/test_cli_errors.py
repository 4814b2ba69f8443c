"""Every bad input at the command line: exit status 2, exactly one ``error: ...`` line naming the
file, line or option, no traceback, and no output row lost or invented.

Most checks must fail before any model loads: the ``no_loading`` fixture makes loading a judge
or a policy fail the test, and ``--model`` points at a folder that does not exist (checked only
after the input), so an error that comes from the input proves the input was checked first.
The tiny random model is loaded only where a command must run (``--skip-bad-rows``, per-row
errors, forced provenance).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prometheus_reward.cli import main
from prometheus_reward.io import iter_jsonl, skipped_path

REPO = Path(__file__).resolve().parents[1]
TINY = ["--model", "embedded:tiny-random", "--min-score-mass", "0", "--dtype", "float32", "--seed", "0"]

# one valid row per command, and the options each command needs besides its input
ROWS = {
    "grade": lambda k: {"id": k, "instruction": f"Question {k}?", "response": f"Answer {k}."},
    "compare": lambda k: {"id": k, "prompt": f"Question {k}?", "response_a": f"Answer {k}.", "response_b": "No idea."},
    "label": lambda k: {"id": k, "prompt": f"Question {k}?", "response_a": f"Answer {k}.", "response_b": "No idea."},
    "best-of-n": lambda k: {"id": k, "prompt": f"Say something about {k}."},
    "meta-eval": lambda k: {"instruction": f"Question {k}?", "response": f"Answer {k}.", "gold_score": 1 + k % 5},
}
COMMANDS = list(ROWS)


def argv_for(command: str, data: Path, out: Path, *extra: str, model: str | None = None) -> list[str]:
    """A full command line; ``model`` defaults to a folder that does not exist."""
    model_args = ["--model", model or str(out.parent / "no-such-model")]
    if command == "meta-eval":
        return ["meta-eval", "--benchmark", "custom", "--data", str(data), "--output-dir", str(out.parent / "eval"),
                "--no-plots", "--bootstrap", "0", *model_args, *extra]
    argv = [command, str(data), "-o", str(out), *model_args, *extra]
    if command == "best-of-n":
        argv += ["--policy", str(out.parent / "no-such-policy")]
    if command in ("label", "best-of-n"):
        argv += ["--cache", str(data.parent / "judgments.sqlite")]
    return argv


def write_jsonl(path: Path, lines: list) -> Path:
    """Rows (dicts) and raw lines (str) as a JSONL file."""
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines),
                    encoding="utf-8")
    return path


def one_error(capsys) -> str:
    """The command's stderr: exactly one line, starting ``error: ``."""
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err.rstrip("\n")


def outputs(tmp_path: Path) -> list[str]:
    """Files a command left behind, other than the inputs (names starting with 'in')."""
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if not p.name.startswith("in"))


@pytest.fixture
def no_loading(monkeypatch):
    """Loading a judge or a policy fails the test: these errors must come first."""
    from prometheus_reward import best_of_n
    from prometheus_reward.judge import Judge

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the error")

    monkeypatch.setattr(Judge, "from_config", refuse)
    monkeypatch.setattr(best_of_n, "load_policy", refuse)


def bad_middle_line(tmp_path: Path, command: str) -> Path:
    return write_jsonl(tmp_path / "in.jsonl", [ROWS[command](0), '{"prompt": "torn", "response": "x"', ROWS[command](2)])


# -- malformed input lines ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", COMMANDS)
def test_malformed_line_stops_every_command_before_any_work(command, tmp_path, capsys, no_loading):
    data = bad_middle_line(tmp_path, command)
    assert main(argv_for(command, data, tmp_path / "out.jsonl", "--rubric", "helpfulness")) == 2
    err = one_error(capsys)
    assert err.startswith(f"error: {data} line 2: invalid JSON (Expecting ',' delimiter at column 35)")
    assert "--skip-bad-rows" in err
    assert outputs(tmp_path) == []  # nothing written, nothing loaded


@pytest.mark.parametrize("line, problem", [
    ('["a list"]', "expected a JSON object (one row per line), got an array"),
    ("42", "expected a JSON object (one row per line), got a number"),
    ("{'single': 'quotes'}", "invalid JSON (Expecting property name enclosed in double quotes at column 2)"),
])
def test_other_malformed_lines_name_the_line(line, problem, tmp_path, capsys, no_loading):
    data = write_jsonl(tmp_path / "in.jsonl", [ROWS["grade"](0), "", line])  # a blank line is no record
    assert main(argv_for("grade", data, tmp_path / "out.jsonl", "--rubric", "helpfulness")) == 2
    assert one_error(capsys).startswith(f"error: {data} line 3: {problem}; fix the line, or pass --skip-bad-rows")


@pytest.mark.parametrize("command", COMMANDS)
def test_non_utf8_file_names_the_line_and_byte(command, tmp_path, capsys, no_loading):
    data = tmp_path / "in.jsonl"
    data.write_bytes(json.dumps(ROWS[command](0)).encode() + b"\n" + '{"instruction": "café"}\n'.encode("latin-1"))
    assert main(argv_for(command, data, tmp_path / "out.jsonl", "--rubric", "helpfulness")) == 2
    assert one_error(capsys).startswith(
        f"error: {data} line 2: not UTF-8 text (byte 0xe9 at column 21; save the file as UTF-8)")


def test_non_utf8_csv_names_the_line(tmp_path, capsys, no_loading):
    data = tmp_path / "in.csv"
    data.write_bytes(b"instruction,response\nq1,a1\nq2,caf\xe9\n")
    assert main(argv_for("grade", data, tmp_path / "out.jsonl", "--rubric", "helpfulness")) == 2
    assert one_error(capsys) == f"error: {data} line 3: not UTF-8 text (byte 0xe9 at column 7; save the file as UTF-8)"


def test_broken_json_array_names_the_line(tmp_path, capsys, no_loading):
    data = tmp_path / "in.json"
    data.write_text('[\n  {"instruction": "q", "response": "a"},\n  {"instruction": "q2" "response": "b"}\n]\n')
    assert main(argv_for("grade", data, tmp_path / "out.jsonl", "--rubric", "helpfulness")) == 2
    assert one_error(capsys) == f"error: {data} line 3: invalid JSON (Expecting ',' delimiter at column 24)"


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_input_file(command, tmp_path, capsys, no_loading):
    missing = tmp_path / "in-missing.jsonl"
    assert main(argv_for(command, missing, tmp_path / "out.jsonl", "--rubric", "helpfulness")) == 2
    err = one_error(capsys)
    assert err in (f"error: {missing}: no such file", f"error: no such data file: {missing}")  # meta-eval: --data
    assert outputs(tmp_path) == []


def test_input_that_is_a_folder_or_has_no_rows(tmp_path, capsys, no_loading):
    assert main(argv_for("grade", tmp_path, tmp_path / "out.jsonl", "--rubric", "helpfulness")) == 2
    assert one_error(capsys) == f"error: {tmp_path}: is a folder; give the data file itself"
    empty = write_jsonl(tmp_path / "in.jsonl", ["", ""])
    assert main(argv_for("grade", empty, tmp_path / "out.jsonl", "--rubric", "helpfulness")) == 2
    assert one_error(capsys) == f"error: {empty}: no rows"
    allbad = write_jsonl(tmp_path / "in2.jsonl", ["{", "}"])
    assert main(argv_for("grade", allbad, tmp_path / "out.jsonl", "--rubric", "helpfulness", "--skip-bad-rows")) == 2
    assert one_error(capsys).startswith(f"error: {allbad}: no readable rows: all 2 lines are malformed (first: {allbad} line 1")


def test_a_bad_line_past_the_limit_is_not_read(tmp_path, capsys, no_loading):
    data = bad_middle_line(tmp_path, "grade")
    assert main(argv_for("grade", data, tmp_path / "out.jsonl", "--rubric", "helpfulness", "--limit", "1")) == 2
    # the only error left is the model, checked after the input
    assert one_error(capsys).startswith(f"error: --model {tmp_path / 'no-such-model'}: no such folder")


# -- --skip-bad-rows: set aside, counted, never judged, never lost --------------------------------------------------
def _partition(out: Path, inputs: int) -> tuple[list[dict], list[dict]]:
    rows = list(iter_jsonl(out))
    skipped = list(iter_jsonl(skipped_path(out)))
    assert len(rows) + len(skipped) == inputs  # nothing lost, nothing invented
    return rows, skipped


def test_grade_skip_bad_rows_writes_the_side_file_and_counts_it(tiny_model_dir, tmp_path, capsys):
    data = write_jsonl(tmp_path / "in.jsonl", [
        {"id": 0, "instruction": "q0", "response": "a0"},
        '{"id": 1, "instruction": "q1", "response": "a1"',
        {"id": 2, "instruction": "q2", "response": None},  # readable but unusable: a per-row error, kept
        {"id": 3, "instruction": "q3", "response": "a3"},
    ])
    out = tmp_path / "out.jsonl"
    assert main(["grade", str(data), "-o", str(out), *TINY, "--rubric", "helpfulness", "--mode", "direct",
                 "--skip-bad-rows"]) == 0
    rows, skipped = _partition(out, 4)
    assert [r["id"] for r in rows] == [0, 2, 3]
    # rows keep their number in the file: the row after the bad line is still row 2
    assert [r["error"] for r in rows] == [None, "row 2: field 'response' must be a string or assistant messages, got None", None]
    assert skipped == [{"input_row": 1, "line": 2, "skip_reason": "unreadable",
                        "reason": f"{data} line 2: invalid JSON (Expecting ',' delimiter at column 48)",
                        "text": '{"id": 1, "instruction": "q1", "response": "a1"'}]
    printed = capsys.readouterr().out
    assert "malformed lines set aside" in printed and "1 -> " in printed
    # a rerun on a fixed file replaces the output and removes the stale side file
    write_jsonl(data, [{"id": k, "instruction": f"q{k}", "response": f"a{k}"} for k in range(4)])
    assert main(["grade", str(data), "-o", str(out), *TINY, "--rubric", "helpfulness", "--mode", "direct",
                 "--skip-bad-rows"]) == 0
    assert len(list(iter_jsonl(out))) == 4 and not skipped_path(out).exists()


def test_compare_skip_bad_rows(tiny_model_dir, tmp_path, capsys):
    data = bad_middle_line(tmp_path, "compare")
    out = tmp_path / "out.jsonl"
    assert main(["compare", str(data), "-o", str(out), *TINY, "--rubric", "helpfulness", "--mode", "direct",
                 "--skip-bad-rows"]) == 0
    rows, skipped = _partition(out, 3)
    assert [r["id"] for r in rows] == [0, 2] and [s["line"] for s in skipped] == [2]
    assert "malformed lines set aside" in capsys.readouterr().out


def test_label_skip_bad_rows_resumes_without_duplicates_and_judges_a_fixed_line(tiny_model_dir, tmp_path, capsys):
    rows = [ROWS["label"](k) for k in range(5)]
    lines: list = list(rows)
    lines[1] = '{"id": 1, "prompt": "torn'
    lines[3] = "not json at all"
    data = write_jsonl(tmp_path / "in.jsonl", lines)
    out = tmp_path / "prefs.jsonl"
    argv = ["label", str(data), "-o", str(out), *TINY, "--rubric", "helpfulness", "--mode", "direct",
            "--cache", str(tmp_path / "c.sqlite"), "--skip-bad-rows", "--summary-json", str(tmp_path / "s.json")]
    assert main(argv) == 0
    kept, skipped = _partition(out, 5)
    assert sorted(r["input_row"] for r in kept) == [0, 2, 4]
    assert [(s["input_row"], s["line"], s["skip_reason"]) for s in skipped] == [(1, 2, "unreadable"), (3, 4, "unreadable")]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["rows"] == 5 and summary["skipped"]["unreadable"] == 2 and summary["judged_rows"] == 3
    assert "unreadable" in capsys.readouterr().err  # the summary table counts them

    # resume: nothing is judged again, and the bad lines are in the side file once
    assert main(argv) == 0
    kept2, skipped2 = _partition(out, 5)
    assert sorted(kept2, key=lambda r: r["input_row"]) == sorted(kept, key=lambda r: r["input_row"])
    assert [s["input_row"] for s in skipped2] == [1, 3]
    assert json.loads((tmp_path / "s.json").read_text())["judged_rows"] == 0

    # fix one line: the resumed run judges it (same row number) and keeps the other set aside
    lines[1] = rows[1]
    write_jsonl(data, lines)
    assert main(argv) == 0
    kept3, skipped3 = _partition(out, 5)
    assert sorted(r["input_row"] for r in kept3) == [0, 1, 2, 4] and [s["input_row"] for s in skipped3] == [3]
    assert json.loads((tmp_path / "s.json").read_text())["judged_rows"] == 1


def test_label_without_skip_stops_and_leaves_earlier_files_alone(tmp_path, capsys, no_loading):
    data = bad_middle_line(tmp_path, "label")
    out = tmp_path / "prefs.jsonl"
    out.write_text('{"input_row": 0, "prompt": "earlier run"}\n')
    assert main(argv_for("label", data, out, "--rubric", "helpfulness")) == 2
    assert one_error(capsys).startswith(f"error: {data} line 2: invalid JSON")
    assert out.read_text() == '{"input_row": 0, "prompt": "earlier run"}\n'


def test_best_of_n_skip_bad_rows(tiny_model_dir, tmp_path, capsys):
    data = bad_middle_line(tmp_path, "best-of-n")
    out = tmp_path / "bon.jsonl"
    argv = ["best-of-n", str(data), "-o", str(out), "--policy", "embedded:tiny-random", *TINY, "-n", "2",
            "--policy-max-new-tokens", "3", "--rubric", "helpfulness", "--mode", "direct",
            "--cache", str(tmp_path / "c.sqlite"), "--skip-bad-rows"]
    assert main(argv) == 0
    rows, skipped = _partition(out, 3)
    assert [r["id"] for r in rows] == [0, 2] and all(len(r["completions"]) == 2 for r in rows)
    assert [(s["input_row"], s["line"]) for s in skipped] == [(1, 2)]
    assert "malformed lines set aside" in capsys.readouterr().out
    assert main(argv) == 0  # a rerun replaces both files: the line is set aside once
    _partition(out, 3)


def test_meta_eval_skip_bad_rows_keeps_item_ids(tiny_model_dir, tmp_path, capsys):
    data = write_jsonl(tmp_path / "in.jsonl", [ROWS["meta-eval"](0), "{oops", ROWS["meta-eval"](2), ROWS["meta-eval"](3)])
    out = tmp_path / "eval"
    assert main(["meta-eval", "--benchmark", "custom", "--data", str(data), "--output-dir", str(out), *TINY,
                 "--rubric", "helpfulness", "--mode", "direct", "--samples", "1", "--no-plots", "--bootstrap", "0",
                 "--skip-bad-rows"]) == 0
    predictions = list(iter_jsonl(out / "predictions.jsonl"))
    skipped = list(iter_jsonl(out / "predictions.skipped.jsonl"))
    assert sorted(p["id"] for p in predictions) == [0, 2, 3] and [s["input_row"] for s in skipped] == [1]
    assert json.loads((out / "run.json").read_text())["malformed_lines_set_aside"] == 1
    assert "set aside 1 malformed line" in capsys.readouterr().out


# -- options checked before the model loads -------------------------------------------------------------------------
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("rubric, expected", [
    ("helpfulnes", "--rubric: unknown rubric preset 'helpfulnes'; did you mean 'helpfulness'?"),
    ("my_rubric.yaml", "--rubric: no such rubric file: my_rubric.yaml (relative to "),
    ("rubrics/kindness", "--rubric: no such rubric file: rubrics/kindness (relative to "),
])
def test_rubric_mistakes(command, rubric, expected, tmp_path, capsys, no_loading):
    data = write_jsonl(tmp_path / "in.jsonl", [ROWS[command](k) for k in range(2)])
    assert main(argv_for(command, data, tmp_path / "out.jsonl", "--rubric", rubric)) == 2
    assert one_error(capsys).startswith("error: " + expected)
    assert outputs(tmp_path) == []


@pytest.mark.parametrize("content, expected", [
    ("criteria: Is it short?\nscore1_description: Very long.\n",
     "rubric is missing score2_description, score3_description, score4_description, score5_description"),
    ("criteria: Is it short?\n" + "".join(f"score{i}_description: d{i}\n" for i in (1, 2, 4, 5)) + "score3_description:\n",
     "rubric field score3_description is empty"),
    ("criteria: [unclosed\n", "line 2: invalid YAML"),
])
def test_broken_rubric_file_names_file_and_field(content, expected, tmp_path, capsys, no_loading):
    rubric = tmp_path / "in-rubric.yaml"
    rubric.write_text(content)
    data = write_jsonl(tmp_path / "in.jsonl", [ROWS["grade"](0)])
    assert main(argv_for("grade", data, tmp_path / "out.jsonl", "--rubric", str(rubric))) == 2
    err = one_error(capsys)
    assert err.startswith(f"error: --rubric: {rubric}") and expected in err


def test_a_bad_per_row_rubric_stays_a_row_error(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", [
        {"instruction": "q0", "response": "a0", "rubric": "honesty"},
        {"instruction": "q1", "response": "a1", "rubric": "helpfulnes"},
        {"instruction": "q2", "response": "a2", "rubric": "rubrics/missing.yaml"},
        {"instruction": "q3", "response": "a3", "rubric": "Is the answer short and polite?"},
    ])
    out = tmp_path / "out.jsonl"
    assert main(["grade", str(data), "-o", str(out), *TINY, "--mode", "direct"]) == 0
    errors = [r["error"] for r in iter_jsonl(out)]
    assert errors[0] is None and errors[3] is None
    assert errors[1].startswith("row 1: field 'rubric' is invalid: unknown rubric preset 'helpfulnes'; did you mean 'helpfulness'?")
    assert errors[2].startswith("row 2: field 'rubric' is invalid: no such rubric file: rubrics/missing.yaml")


@pytest.mark.parametrize("command", ["grade", "compare", "label", "meta-eval"])
def test_samples_zero(command, tmp_path, capsys, no_loading):
    data = write_jsonl(tmp_path / "in.jsonl", [ROWS[command](0)])
    assert main(argv_for(command, data, tmp_path / "out.jsonl", "--rubric", "helpfulness", "--samples", "0")) == 2
    assert one_error(capsys) == "error: --samples must be positive, got 0"


@pytest.mark.parametrize("extra, expected", [
    (["--mode", "fast"], "error: argument --mode: invalid choice: 'fast' (choose from 'generate', 'expected', 'direct') "
                         "(see prometheus-reward grade --help)"),
    (["--batch-size", "0"], "error: argument --batch-size: must be at least 1, got 0 (see prometheus-reward grade --help)"),
    (["--limit", "-1"], "error: argument --limit: must be at least 1, got -1 (see prometheus-reward grade --help)"),
    (["--min-score-mass", "2"], "error: --min-score-mass must be in [0, 1], got 2.0"),
    (["--top-p", "0"], "error: --top-p must be in (0, 1], got 0.0"),
])
def test_bad_option_values(extra, expected, tmp_path, capsys, no_loading):
    data = write_jsonl(tmp_path / "in.jsonl", [ROWS["grade"](0)])
    assert main(argv_for("grade", data, tmp_path / "out.jsonl", "--rubric", "helpfulness", *extra)) == 2
    assert one_error(capsys) == expected


def test_best_of_n_n_zero(tmp_path, capsys, no_loading):
    data = write_jsonl(tmp_path / "in.jsonl", [ROWS["best-of-n"](0)])
    assert main(argv_for("best-of-n", data, tmp_path / "out.jsonl", "--rubric", "helpfulness", "-n", "0")) == 2
    assert one_error(capsys).startswith("error: argument -n/--n: must be at least 1, got 0")


@pytest.mark.parametrize("command", ["grade", "compare", "label", "best-of-n"])
def test_output_that_cannot_be_written(command, tmp_path, capsys, no_loading):
    data = write_jsonl(tmp_path / "in.jsonl", [ROWS[command](0)])
    blocker = tmp_path / "in-a-file.txt"
    blocker.write_text("not a folder")
    assert main(argv_for(command, data, blocker / "out.jsonl", "--rubric", "helpfulness")) == 2
    assert one_error(capsys) == f"error: -o/--output {blocker / 'out.jsonl'}: {blocker} is a file, not a folder"
    assert main(argv_for(command, data, data, "--rubric", "helpfulness")) == 2
    assert one_error(capsys) == f"error: -o/--output {data} is the input file; write the results to another file"
    assert main(argv_for(command, data, tmp_path, "--rubric", "helpfulness")) == 2
    assert one_error(capsys).startswith(f"error: -o/--output {tmp_path} is a folder")


def test_meta_eval_output_dir_that_is_a_file(tmp_path, capsys, no_loading):
    data = write_jsonl(tmp_path / "in.jsonl", [ROWS["meta-eval"](0)])
    blocker = tmp_path / "in-a-file.txt"
    blocker.write_text("x")
    assert main(["meta-eval", "--benchmark", "custom", "--data", str(data), "--output-dir", str(blocker),
                 "--model", str(tmp_path / "none")]) == 2
    assert one_error(capsys) == f"error: --output-dir {blocker} is a file; give a folder"


def test_label_columns_are_checked_before_loading(tmp_path, capsys, no_loading):
    data = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "q", "completion": "a"}])
    assert main(argv_for("label", data, tmp_path / "out.jsonl", "--rubric", "helpfulness")) == 2
    assert one_error(capsys).startswith("error: cannot tell the input format")
    assert main(argv_for("label", data, tmp_path / "out.jsonl", "--rubric", "helpfulness", "--a-column", "answer")) == 2
    assert one_error(capsys).startswith("error: --a-column: column 'answer' is not in the data (columns: prompt, completion)")
    good = write_jsonl(tmp_path / "in2.jsonl", [ROWS["label"](0)])
    assert main(argv_for("label", good, tmp_path / "out.jsonl")) == 2
    assert one_error(capsys) == "error: give --rubric or a 'rubric' column in the data"


def test_grade_column_option_is_named(tmp_path, capsys, no_loading):
    data = write_jsonl(tmp_path / "in.jsonl", [ROWS["grade"](0)])
    assert main(argv_for("grade", data, tmp_path / "out.jsonl", "--rubric", "helpfulness", "--response-column", "answer")) == 2
    assert one_error(capsys).startswith("error: --response-column: column 'answer' for the response is not in the data")


# -- the model ---------------------------------------------------------------------------------------------------------
def test_model_folder_that_does_not_exist(tmp_path, capsys, no_loading):
    data = write_jsonl(tmp_path / "in.jsonl", [ROWS["grade"](0)])
    missing = tmp_path / "models" / "prometheus"
    assert main(argv_for("grade", data, tmp_path / "out.jsonl", "--rubric", "helpfulness", model=str(missing))) == 2
    assert one_error(capsys) == (f"error: --model {missing}: no such folder; give a local model folder, a hub id "
                                 "(e.g. prometheus-eval/prometheus-7b-v2.0) or 'embedded'")
    empty = tmp_path / "empty-model"
    empty.mkdir()
    assert main(argv_for("grade", data, tmp_path / "out.jsonl", "--rubric", "helpfulness", model=str(empty))) == 2
    assert one_error(capsys) == f"error: --model {empty}: the folder has no config.json, so it is not a transformers model folder"
    assert main(argv_for("grade", data, tmp_path / "out.jsonl", "--rubric", "helpfulness", "--adapter",
                         str(tmp_path / "no-adapter"), model="embedded:tiny-random")) == 2
    assert one_error(capsys).startswith(f"error: --adapter {tmp_path / 'no-adapter'}: no such folder")


def test_best_of_n_policy_folder_that_does_not_exist(tmp_path, capsys, no_loading):
    data = write_jsonl(tmp_path / "in.jsonl", [ROWS["best-of-n"](0)])
    assert main(argv_for("best-of-n", data, tmp_path / "out.jsonl", "--rubric", "helpfulness")) == 2
    assert one_error(capsys).startswith(f"error: --policy {tmp_path / 'no-such-policy'}: no such folder")


def _subprocess(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "prometheus_reward.cli", *argv], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)


@pytest.mark.parametrize("model, expected", [
    ("{tmp}/no-such-model", "error: --model {tmp}/no-such-model: no such folder; "),
    ("prometheus-eval/no-such-evaluator", "error: --model prometheus-eval/no-such-evaluator: not a local folder, and "
                                          "could not be loaded from the hub: "),
])
def test_model_errors_are_the_last_and_only_line_on_stderr(model, expected, tmp_path):
    """The real process: no traceback, no progress bar, no warning around the one error line."""
    data = write_jsonl(tmp_path / "in.jsonl", [ROWS["grade"](0)])
    model = model.format(tmp=tmp_path)
    done = _subprocess(["grade", str(data), "-o", str(tmp_path / "out.jsonl"), "--rubric", "helpfulness",
                        "--model", model], tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(expected.format(tmp=tmp_path)) and done.stderr.count("\n") == 1, done.stderr
    assert done.stdout == "" and not (tmp_path / "out.jsonl").exists()


def test_malformed_line_in_a_real_process(tmp_path):
    data = bad_middle_line(tmp_path, "grade")
    done = _subprocess(["grade", str(data), "-o", str(tmp_path / "out.jsonl"), "--rubric", "helpfulness",
                        "--model", "embedded:tiny-random"], tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: {data} line 2: invalid JSON")
    debug = _subprocess(["--debug", "grade", str(data), "-o", str(tmp_path / "out.jsonl"), "--rubric", "helpfulness",
                         "--model", "embedded:tiny-random"], tmp_path)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "UserError" in debug.stderr


def test_other_load_failures_are_not_swallowed(tmp_path, monkeypatch):
    """Only the "not found / not a model" family becomes a user error; a bug still raises."""
    from prometheus_reward.judge import Judge

    def broken(config):
        raise RuntimeError("a bug in the backend")

    monkeypatch.setattr(Judge, "from_config", broken)
    data = write_jsonl(tmp_path / "in.jsonl", [ROWS["grade"](0)])
    with pytest.raises(RuntimeError, match="a bug in the backend"):
        main(argv_for("grade", data, tmp_path / "out.jsonl", "--rubric", "helpfulness", model="embedded:tiny-random"))

    def not_a_model(config):
        raise ValueError("Unrecognized model in /x. Should have a `model_type` key in its config.json.")

    monkeypatch.setattr(Judge, "from_config", not_a_model)
    assert main(argv_for("grade", data, tmp_path / "out.jsonl", "--rubric", "helpfulness", model="embedded:tiny-random")) == 2


# -- forced provenance in the summaries -----------------------------------------------------------------------------
def test_grade_and_compare_summaries_count_forced_rows(tiny_model_dir, tmp_path, capsys):
    """Four random tokens never write [RESULT]: every scored row is read at a forced marker."""
    data = write_jsonl(tmp_path / "in.jsonl", [{"instruction": f"q{k}", "response": f"a{k}"} for k in range(3)])
    out = tmp_path / "grades.jsonl"
    assert main(["grade", str(data), "-o", str(out), *TINY, "--rubric", "helpfulness", "--mode", "expected",
                 "--max-new-tokens", "4", "--max-retries", "0"]) == 0
    rows = list(iter_jsonl(out))
    assert all({"forced", "source", "score_mass"} <= set(r) for r in rows)
    forced = sum(r["forced"] for r in rows)
    assert forced == 3 and all(r["source"] == "forced" and r["score_mass"] is not None for r in rows)
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if "scored from a forced [RESULT] (the" in x)
    assert line.split("│")[-2].strip() == str(forced)
    assert "mean score mass" in printed and f"note: {forced} rows were scored from a forced [RESULT]" in printed

    pairs = write_jsonl(tmp_path / "in-pairs.jsonl", [ROWS["compare"](k) for k in range(2)])
    out = tmp_path / "prefs.jsonl"
    assert main(["compare", str(pairs), "-o", str(out), *TINY, "--rubric", "helpfulness", "--mode", "expected",
                 "--max-new-tokens", "4", "--max-retries", "0"]) == 0
    rows = list(iter_jsonl(out))
    line = next(x for x in capsys.readouterr().out.splitlines() if "forced (scored from a forced [RESULT]" in x)
    assert line.split("│")[-2].strip() == str(sum(r["forced"] and r["error"] is None for r in rows))
