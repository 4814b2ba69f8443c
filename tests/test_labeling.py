"""Preference labeling: each input format, bad rows, the side file, resume after ``kill -9`` of the
real CLI, cache hits on rerun, and the label-then-DPO recipe (2 real DPOTrainer steps on CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prometheus_reward.io import iter_jsonl
from prometheus_reward.cached import CachedJudge
from prometheus_reward.labeling import detect_format, label_preferences, skipped_path

REPO = Path(__file__).resolve().parents[1]


def both_files(output: Path) -> tuple[list[dict], list[dict]]:
    kept = list(iter_jsonl(output))
    skipped = list(iter_jsonl(skipped_path(output))) if skipped_path(output).exists() else []
    return kept, skipped


def assert_partition(output: Path, n_rows: int, pairs_per_row: int = 1) -> tuple[list[dict], list[dict]]:
    """Every input row is in exactly one file, once (or once per pair for all-pairs lists)."""
    kept, skipped = both_files(output)
    kept_rows = {r["input_row"] for r in kept}
    skip_rows = [r["input_row"] for r in skipped]
    assert len(skip_rows) == len(set(skip_rows)), "a row is skipped twice"
    assert not kept_rows & set(skip_rows), "a row is in both files"
    assert kept_rows | set(skip_rows) == set(range(n_rows)), "a row is lost"
    if pairs_per_row == 1:
        assert len(kept) == len(kept_rows), "a row is kept twice"
    return kept, skipped


PAIRS = [
    {"id": "a", "prompt": "Why is the sky blue?", "response_a": "Air scatters blue light the most.", "response_b": "Paint."},
    {"id": "b", "prompt": "How do plants eat?", "response_a": "They eat dirt.", "response_b": "They make sugar from light."},
    {"id": "c", "prompt": "What is 7 x 8?", "response_a": None, "response_b": "56"},
    {"id": "d", "prompt": "Name a colour.", "response_b": "Red."},
    {"id": "e", "prompt": "Name a fruit.", "response_a": "Apple.", "response_b": "Chair."},
]


def test_detect_format():
    assert detect_format(["prompt", "response 1", "response 2", "label"])[0] == "pair"
    assert detect_format(["prompt", "responses"])[0] == "list"
    assert detect_format(["instruction", "chosen", "rejected"])[1]["prompt"] == "instruction"
    with pytest.raises(ValueError, match="cannot tell the input format"):
        detect_format(["prompt", "completion"])


def test_pairs_bad_rows_go_to_the_side_file(tiny_judge, tmp_path):
    out = tmp_path / "prefs.jsonl"
    summary = label_preferences(PAIRS, CachedJudge(tiny_judge, tmp_path / "c.sqlite"), "helpfulness", output=out, mode="direct", progress=False)
    kept, skipped = assert_partition(out, len(PAIRS))
    assert {r["id"] for r in kept} == {"a", "b", "e"}
    assert {r["input_row"]: r["reason"] for r in skipped} == {
        2: "row 2: field 'response_a' must be a string or assistant messages, got None",
        3: "row 3: field 'response_a' is missing",
    }
    assert all(r["skip_reason"] == "bad_input" for r in skipped)
    for row in kept:
        original = PAIRS[row["input_row"]]
        assert {row["chosen"], row["rejected"]} == {original["response_a"], original["response_b"]}
        assert row["prompt"] == original["prompt"] and "response_a" not in row
        assert 0.5 < row["score_chosen"] <= 1 and row["score_rejected"] == pytest.approx(1 - row["score_chosen"])
        assert row["margin"] == pytest.approx(row["score_chosen"] - row["score_rejected"])
        assert isinstance(row["consistent"], bool)
    assert summary.kept_rows == 3 and summary.skipped == {"tie": 0, "inconsistent": 0, "judge_error": 0, "bad_input": 2,
                                                   "unreadable": 0}
    assert summary.cache["misses"] == 3 and len(summary.margins) == 3


def test_inconsistent_policy_and_absolute_method(tiny_judge, tmp_path):
    good = [r for r in PAIRS if r.get("response_a")]
    out = tmp_path / "strict.jsonl"
    label_preferences(good, CachedJudge(tiny_judge, tmp_path / "c.sqlite"), "helpfulness", output=out, mode="direct", inconsistent="skip", progress=False)
    kept, skipped = assert_partition(out, len(good))
    assert all(r["consistent"] is True for r in kept)
    assert all(r["skip_reason"] == "inconsistent" and "two orders disagree" in r["reason"] for r in skipped)
    # absolute: each response graded; the scores are expected 1-5 scores
    out = tmp_path / "abs.jsonl"
    label_preferences(good, CachedJudge(tiny_judge, tmp_path / "c.sqlite"), "helpfulness", output=out, mode="direct", method="absolute", progress=False)
    kept, skipped = assert_partition(out, len(good))
    for row in kept:
        assert 1 <= row["score_rejected"] < row["score_chosen"] <= 5 and row["consistent"] is None


def test_generate_mode_judge_failures_are_skipped(tiny_judge, tmp_path):
    out = tmp_path / "gen.jsonl"
    summary = label_preferences(PAIRS[:2], tiny_judge, "helpfulness", output=out, mode="generate",
                                max_new_tokens=4, progress=False)
    kept, skipped = assert_partition(out, 2)
    # four random tokens never end in "[RESULT] A|B"
    assert not kept and {r["skip_reason"] for r in skipped} == {"judge_error"}
    assert all(r["reason"].startswith(f"row {r['input_row']}: ") for r in skipped)
    assert summary.skipped["judge_error"] == 2


def test_lists_best_vs_worst_and_all_pairs(tiny_judge, tmp_path):
    rows = [
        {"id": 0, "prompt": "Say hello.", "responses": ["Hello there!", "Go away.", "Hi."]},
        {"id": 1, "prompt": "Capital of France?", "responses": ["Paris.", "Lyon."]},
        {"id": 2, "prompt": "One response only.", "responses": ["Alone."]},
    ]
    cache = tmp_path / "c.sqlite"
    out = tmp_path / "bvw.jsonl"
    label_preferences(rows, CachedJudge(tiny_judge, cache), "helpfulness", output=out, mode="direct", progress=False)
    kept, skipped = assert_partition(out, 3)
    assert [r["input_row"] for r in skipped] == [2] and "at least 2 responses" in skipped[0]["reason"]
    for row in kept:
        win, lose = row["pair"]
        assert row["chosen"] == rows[row["input_row"]]["responses"][win] and win != lose
        assert row["score_chosen"] > row["score_rejected"]  # round-robin win rates
    out = tmp_path / "all.jsonl"
    summary = label_preferences(rows, CachedJudge(tiny_judge, cache), "helpfulness", output=out, mode="direct", list_pairs="all", progress=False)
    kept, _ = assert_partition(out, 3, pairs_per_row=3)
    assert sorted(tuple(sorted(r["pair"])) for r in kept if r["input_row"] == 0) == [(0, 1), (0, 2), (1, 2)]
    assert all(r["pairs_in_row"] == 3 for r in kept if r["input_row"] == 0)
    # best-vs-worst played the same round-robin comparisons: all-pairs is served from the cache
    assert summary.cache["misses"] == 0 and summary.cache["hits"] == 4


def test_rejudge_conversational_keeps_structure(tiny_judge, tmp_path):
    rows = [
        {"id": "c0", "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why is the sky blue?"}],
         "chosen": [{"role": "assistant", "content": "Blue light scatters most."}],
         "rejected": [{"role": "assistant", "content": "Paint."}]},
        {"id": "c1", "prompt": [{"role": "user", "content": "Legs on a spider?"}], "chosen": "Eight.", "rejected": "Six."},
        {"id": "c2", "prompt": [{"role": "assistant", "content": "no user turn"}], "chosen": "x", "rejected": "y"},
    ]
    out = tmp_path / "conv.jsonl"
    label_preferences(rows, tiny_judge, "helpfulness", output=out, mode="direct", progress=False)
    kept, skipped = assert_partition(out, 3)
    assert [(r["input_row"], r["reason"]) for r in skipped] == [(2, "row 2: field 'prompt' has no user message with text")]
    by_id = {r["id"]: r for r in kept}
    assert by_id["c0"]["prompt"] == rows[0]["prompt"]
    assert {m["content"] for m in by_id["c0"]["chosen"] + by_id["c0"]["rejected"]} == {"Blue light scatters most.", "Paint."}
    assert by_id["c1"]["chosen"][0]["role"] == "assistant"  # text under a conversation becomes a message
    for row in kept:
        original = rows[row["input_row"]]
        assert row["flipped"] == (row["chosen"] != original["chosen"] and row["chosen"] != [
            {"role": "assistant", "content": original["chosen"]}])


def _label_cmd(inp: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "prometheus_reward.cli", "label", str(inp), "-o", str(out),
            "--model", "embedded:tiny-random", "--min-score-mass", "0", "--dtype", "float32", "--rubric", "helpfulness", "--mode", "direct",
            "--cache", str(cache), "--batch-size", "1", "--seed", "0", *extra]


@pytest.mark.slow
def test_kill_9_then_rerun_completes_without_duplicates(tiny_model_dir, tmp_path):
    rows = []
    for k in range(48):
        row = {"id": f"r{k}", "prompt": f"Question {k}: what is {k} plus {k}?",
               "response_a": f"It is {2 * k}.", "response_b": f"I think {k} plus {k} is {2 * k + 1}."}
        if k % 12 == 5:
            row["response_b"] = None  # bad rows, reported and skipped, never stopping the run
        rows.append(row)
    inp = tmp_path / "pairs.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out, cache = tmp_path / "out" / "prefs.jsonl", tmp_path / "judgments.sqlite"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(_label_cmd(inp, out, cache), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and len(out.read_bytes().splitlines()) >= 3:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    first_kept, first_skipped = both_files(out)
    assert 3 <= len(first_kept) + len(first_skipped) < len(rows)
    with out.open("a") as handle:
        handle.write('{"id": "torn", "input_row": 47, "chos')  # as if the kill had cut a write in half

    summary_path = tmp_path / "summary.json"
    rerun = subprocess.run(_label_cmd(inp, out, cache, "--summary-json", str(summary_path)), env=env,
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    kept, skipped = assert_partition(out, len(rows))
    summary = json.loads(summary_path.read_text())
    assert summary["resumed"] == len(first_kept) + len(first_skipped)
    assert summary["judged_rows"] == len(rows) - summary["resumed"]
    assert {r["input_row"] for r in skipped if r["skip_reason"] == "bad_input"} == {5, 17, 29, 41}
    assert "row 17: field 'response_b' must be a string or assistant messages, got None" in rerun.stderr
    assert [r["id"] for r in kept] == [rows[r["input_row"]]["id"] for r in kept]  # columns carried over
    assert "margin +" in rerun.stderr and "kept rows (pairs)" in rerun.stderr  # the summary table

    # a fresh output with the same cache (in this process, the same judge as the CLI builds):
    # every judgment is a hit, and the labels are identical
    from prometheus_reward import Judge

    judge = Judge.from_pretrained("embedded:tiny-random", dtype="float32", seed=0, min_score_mass=0.0)
    again = tmp_path / "again.jsonl"
    summary2 = label_preferences(inp, CachedJudge(judge, cache), "helpfulness", output=again, mode="direct", progress=False)
    assert summary2.cache["misses"] == 0 and summary2.cache["hits"] == len(rows) - 4
    key = lambda r: r["input_row"]  # noqa: E731
    assert sorted(iter_jsonl(again), key=key) == sorted(kept, key=key)


@pytest.mark.slow
def test_label_then_dpo_recipe_smoke(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    sys.path.insert(0, str(REPO / "recipes"))
    try:
        import label_then_dpo
    finally:
        sys.path.pop(0)
    args = label_then_dpo.make_parser().parse_args_and_config([
        "--config", "configs/label_then_dpo_smoke.yaml",
        "--labeled_output", str(tmp_path / "prefs.jsonl"),
        "--cache", str(tmp_path / "c.sqlite"),
        "--output_dir", str(tmp_path / "model"),
    ])
    trainer = label_then_dpo.main(*args)
    assert trainer.state.global_step == 2
    assert any("loss" in entry for entry in trainer.state.log_history)
    kept, skipped = both_files(tmp_path / "prefs.jsonl")
    assert len(kept) + len(skipped) == sum(1 for _ in iter_jsonl(REPO / "examples" / "pairs_smoke.jsonl"))
    assert (tmp_path / "model" / "config.json").is_file()
