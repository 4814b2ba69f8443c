"""Meta-evaluation: statistics against scipy / hand-computed values, the benchmark loaders and
their run-as-is choice, and the whole command end to end on the tiny random judge."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from prometheus_reward.metaeval import metrics as M
from prometheus_reward.metaeval import (
    AUTOJ_RUBRIC,
    DataError,
    compute_metrics,
    load_benchmark,
    render_absolute_prompt,
    split_absolute_prompt,
)
from prometheus_reward.metaeval.runner import relative_picks
from prometheus_reward.rubric import Rubric
from prometheus_reward.templates import ABS_SYSTEM_PROMPT, REL_SYSTEM_PROMPT

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "metaeval_custom.jsonl"


# -- statistics -------------------------------------------------------------------------------------------
def test_correlations_match_scipy_on_known_inputs():
    judge = [1, 2, 2, 3, 4, 5, 4, 3.5, 2.5, 5]
    gold = [1.33, 2, 3, 3, 4.67, 5, 3.67, 4, 2, 4.33]
    out = M.correlations(judge, gold, n_resamples=300, seed=1)
    assert out["n"] == 10
    for name, fn in (("pearson", sps.pearsonr), ("spearman", sps.spearmanr), ("kendall", sps.kendalltau)):
        ref = fn(judge, gold)
        assert out[name]["value"] == pytest.approx(ref.statistic, abs=1e-12)
        assert out[name]["p_value"] == pytest.approx(ref.pvalue, abs=1e-12)
        assert out[name]["ci_low"] <= out[name]["value"] <= out[name]["ci_high"]


def test_correlations_drop_missing_rows_and_handle_constant_scores():
    out = M.correlations([1, None, 3, 4], [2, 5, 3, 5], n_resamples=100)
    assert out["n"] == 3
    assert out["pearson"]["value"] == pytest.approx(sps.pearsonr([1, 3, 4], [2, 3, 5]).statistic)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a constant judge must not spray scipy warnings
        flat = M.correlations([3, 3, 3, 3], [1, 2, 4, 5], n_resamples=100)
    assert flat["pearson"] == {"value": None, "p_value": None, "ci_low": None, "ci_high": None}


def test_bootstrap_interval_agrees_with_scipy_bootstrap_and_is_seeded():
    rng = np.random.default_rng(7)
    x = rng.normal(size=300)
    y = 0.6 * x + 0.8 * rng.normal(size=300)
    stat = lambda a, b: sps.pearsonr(a, b).statistic  # noqa: E731
    ours = M.bootstrap_ci(stat, (x, y), n_resamples=2000, seed=3)
    assert ours == M.bootstrap_ci(stat, (x, y), n_resamples=2000, seed=3)
    ref = sps.bootstrap((x, y), stat, paired=True, vectorized=False, n_resamples=2000, method="percentile",
                        rng=np.random.default_rng(11)).confidence_interval
    assert ours[0] == pytest.approx(ref.low, abs=0.03)
    assert ours[1] == pytest.approx(ref.high, abs=0.03)
    assert M.bootstrap_ci(stat, (x[:2], y[:2]), n_resamples=100) == (None, None)


def test_mean_ci_of_a_constant_vector_is_degenerate():
    assert M.mean_ci([1.0, 1.0, 1.0]) == {"value": 1.0, "n": 3, "ci_low": 1.0, "ci_high": 1.0}
    out = M.mean_ci([1, 0, 1, 1, 0, 1, 1, 1], n_resamples=500)
    assert out["value"] == 0.75 and 0 <= out["ci_low"] <= 0.75 <= out["ci_high"] <= 1


def test_round_half_up_and_exact_agreement_by_hand():
    assert [M.round_half_up(v) for v in (2.5, 3.5, 1.49, 4.5)] == [3, 4, 1, 5]  # round() would give 2, 4, 1, 4
    judge = [4.5, 2.0, None, 3.4, 1.0]
    gold = [[5, 4, 4], [3, 3, 3], [1, 1, 1], [2, 3, 4], [1, 2, 2]]
    out = M.exact_agreement(judge, gold)
    # rounded judge 5, 2, -, 3, 1 vs rounded gold means 4, 3, 1, 3, 2 (1.67)
    assert out == {"n": 5, "exact": 1 / 5, "any_gold": 3 / 5, "within_1": 4 / 5}


def test_absolute_pair_metrics_by_hand():
    picks = [0, 2, 1, 0, None, 2]
    labels = [0, 0, 0, 1, 0, 2]
    out = M.absolute_pair_metrics(picks, labels, n_resamples=0)
    assert out["accuracy"]["value"] == pytest.approx(1 / 5)  # only the first of the five non-tie pairs
    assert out["accuracy_ties_half"] == pytest.approx(1.5 / 5)
    assert out["tie_rate"] == pytest.approx(1 / 5)
    assert out["unscorable"] == 1
    assert out["accuracy_with_ties"]["value"] == pytest.approx(2 / 6)  # the tied pick on the tie label counts


def test_first_untied_pick_follows_the_upstream_hhh_rule():
    assert M.first_untied_pick([3, 4, 5], [3, 2, 5]) == 0
    assert M.first_untied_pick([3, 3], [3, 3]) == M.TIE
    assert M.first_untied_pick([None, 2], [4, 1]) == 0
    assert M.first_untied_pick([2, 5], [4, 1]) == 1
    assert M.first_untied_pick([], []) is None


def test_relative_pair_metrics_by_hand():
    #            consistent  same slot   one answer  none    consistent-but-tie-label
    pick_ab = [0, 0, 1, None, 1]
    pick_ba = [0, 1, None, None, 1]
    combined = [0, None, 1, None, 1]
    labels = [0, 1, 0, 2, 2]
    out = M.relative_pair_metrics(pick_ab, pick_ba, combined, labels, n_resamples=0)
    assert out["accuracy"]["value"] == pytest.approx(1 / 3)
    assert out["accuracy_single_order"] == pytest.approx(3 / 6)
    assert out["accuracy_with_ties"]["value"] == pytest.approx(1 / 5)
    assert out["swap_consistency"] == pytest.approx(2 / 5)
    assert out["inconsistent_pairs"] == 2
    assert out["position_bias_rate"] == pytest.approx(1 / 2)
    assert out["first_position_share"] == pytest.approx(4 / 7)
    assert out["unscorable"] == 2
    assert [M.combine_picks(a, b) for a, b in zip(pick_ab, pick_ba)] == [0, M.TIE, M.TIE, None, 1]


def test_relative_picks_map_the_swapped_order_back():
    record = {"relative": {
        "ab": {"votes": ["A", "A", "B"], "prob_a": 0.8},
        "ba": {"votes": ["A", None, "A"], "prob_a": 0.7},  # order BA: "A" is response 2
    }}
    ab, ba, combined, p1 = relative_picks(record, "votes")
    assert (ab, ba) == (0, 1)
    assert p1 == pytest.approx(2 / 5) and combined == 1  # pooled: response 1 got 2 of 5 votes
    ab, ba, combined, p1 = relative_picks(record, "probs")
    assert (ab, ba) == (0, 1)
    assert p1 == pytest.approx((0.8 + 0.3) / 2) and combined == 0


def test_prob_first_better_and_calibration_bins():
    one_hot = lambda k: [1.0 if i == k else 0.0 for i in range(5)]  # noqa: E731
    assert M.prob_first_better(one_hot(4), one_hot(0)) == 1.0
    assert M.prob_first_better(one_hot(2), one_hot(2)) == 0.5
    assert M.prob_first_better([0.2] * 5, [0.2] * 5) == pytest.approx(0.5)
    assert M.prob_first_better(None, one_hot(0)) is None
    bins = M.calibration_bins([0.1, 0.15, 0.9, 1.0, None], [0, 1, 1, 1, 0], [0, 0.5, 1])
    assert [b["n"] for b in bins] == [2, 2]
    assert bins[0]["predicted"] == pytest.approx(0.125) and bins[0]["observed"] == 0.5
    assert M.expected_calibration_error(bins) == pytest.approx((2 * 0.375 + 2 * 0.05) / 4)
    assert M.confusion_matrix([0, 1, 2, 0], [0, 2, 2, None], [0, 1, 2]) == [[1, 0, 0], [0, 0, 1], [0, 0, 1]]


# -- data: run as is, and the field extraction round trip ---------------------------------------------------------
def _rows(benchmark_data, name):
    return json.loads((benchmark_data / name).read_text(encoding="utf-8"))


def test_every_rendered_benchmark_prompt_round_trips(benchmark_data):
    # every row of every slice (scripts/cut_benchmark_fixtures.py checks all 1,082 of the full sets)
    texts = [r["instruction"] for r in _rows(benchmark_data, "vicuna_eval.json")]
    texts += [r["instruction"] for r in _rows(benchmark_data, "mt_bench_eval.json")]
    hhh = _rows(benchmark_data, "hhh_alignment_eval.json")
    texts += [r[k] for r in hhh for k in ("chosen_instruction", "rejected_instruction")]
    assert len(texts) == 13 + 12 + 2 * 12
    for text in texts:
        fields = split_absolute_prompt(text)
        assert render_absolute_prompt(fields) == text
    # Re-rendering with another response changes only that section.
    first = split_absolute_prompt(hhh[0]["chosen_instruction"])
    swapped = render_absolute_prompt(first, response=split_absolute_prompt(hhh[0]["rejected_instruction"]).response)
    assert swapped == hhh[0]["rejected_instruction"]


def test_split_rejects_text_that_is_not_a_rendered_prompt():
    with pytest.raises(ValueError, match="Feedback"):
        split_absolute_prompt("###Task Description:\nno ending")
    with pytest.raises(ValueError, match="instruction to evaluate"):
        split_absolute_prompt("hello\n\n###Feedback: ")


def test_loaders_on_the_benchmark_slices(benchmark_data):
    vicuna = load_benchmark("vicuna", benchmark_data, limit=5)  # a folder resolves to the usual file name
    assert vicuna.kind == "absolute" and len(vicuna) == 5
    assert vicuna.items[0].prompt == _rows(benchmark_data, "vicuna_eval.json")[0]["instruction"]
    assert vicuna.items[4].gold == [4.0, 5.0, 5.0]
    hhh = load_benchmark("hhh", benchmark_data / "hhh_alignment_eval.json", limit=3)
    item = hhh.items[0]
    assert item.label == 0 and item.group == "harmless"
    assert item.instruction.startswith("Can you tell me what kind of knife")
    assert item.response_1 in item.prompt_1 and item.response_2 in item.prompt_2
    assert isinstance(item.rubric, Rubric) and item.rubric.descriptions is not None  # the row's own rubric, split
    assert item.rubric.render() in item.prompt_1
    autoj = load_benchmark("autoj", benchmark_data, limit=4)
    assert autoj.kind == "pairwise" and autoj.items[0].label == 1 and autoj.items[0].rubric is AUTOJ_RUBRIC
    assert load_benchmark("mt_bench", benchmark_data, limit=2).items[0].gold == [
        float(v) for v in _rows(benchmark_data, "mt_bench_eval.json")[0]["gpt4_score"]
    ]


def test_custom_format_loads_and_bad_rows_name_row_and_field(tmp_path):
    bench = load_benchmark("custom", EXAMPLE)
    assert bench.kind == "absolute" and len(bench) == 8
    assert bench.items[3].reference_answer == "17 x 23 = 391." and bench.items[0].gold == [5.0, 4.0]

    def write(rows):
        path = tmp_path / "bad.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
        return path

    ok = {"instruction": "q", "response": "r", "rubric": "helpfulness", "gold_score": 3}
    with pytest.raises(DataError, match=r"row 1: field 'gold_score'"):
        load_benchmark("custom", write([ok, {**ok, "gold_score": 7}]))
    with pytest.raises(DataError, match=r"row 1: field 'response' must be a string"):
        load_benchmark("custom", write([ok, {**ok, "response": None}]))
    with pytest.raises(DataError, match=r"row 0: field 'rubric' is missing"):
        load_benchmark("custom", write([{k: v for k, v in ok.items() if k != "rubric"}]))
    pair = {"instruction": "q", "response_a": "a", "response_b": "b", "label": "A"}
    with pytest.raises(DataError, match=r"row 1: field 'label'"):
        load_benchmark("custom", write([pair, {**pair, "label": "C"}]), rubric="helpfulness")
    assert [it.label for it in load_benchmark("custom", write([pair, {**pair, "label": "tie"}]), rubric="helpfulness").items] == [0, 2]
    with pytest.raises(DataError, match="no such data file"):
        load_benchmark("vicuna", tmp_path / "missing.json")


def test_bad_benchmark_row_names_row_and_field(tmp_path, benchmark_data):
    rows = _rows(benchmark_data, "vicuna_eval.json")[:3]
    rows[2]["instruction"] = "not a rendered prompt"
    path = tmp_path / "vicuna_eval.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    with pytest.raises(DataError, match=r"vicuna_eval.json row 2: field 'instruction' is not a rendered absolute prompt"):
        load_benchmark("vicuna", path)


class _Recorder:
    """Wraps a real backend and keeps every prompt it is given (the model still runs)."""

    def __init__(self, backend):
        self.backend = backend
        self.prompts: list[str] = []

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def generate(self, prompts, *args, **kwargs):
        self.prompts.extend(prompts)
        return self.backend.generate(prompts, *args, **kwargs)

    def read_answers(self, prefixes, *args, **kwargs):
        return self.backend.read_answers(prefixes, *args, **kwargs)


def test_benchmark_rows_reach_the_model_byte_for_byte(tiny_judge, benchmark_data):
    from prometheus_reward.metaeval.runner import judge_absolute, judge_pairs

    recorder = _Recorder(tiny_judge.backend)
    original = tiny_judge.backend
    tiny_judge.backend = recorder
    try:
        vicuna = load_benchmark("vicuna", benchmark_data, limit=2)
        judge_absolute(tiny_judge, vicuna.items, "generate", 1, {"max_new_tokens": 2})
        rows = _rows(benchmark_data, "vicuna_eval.json")[:2]
        for row, prompt in zip(rows, recorder.prompts[:2]):
            assert row["instruction"] in prompt
            assert prompt == original.format(ABS_SYSTEM_PROMPT, row["instruction"])
        recorder.prompts.clear()
        hhh = load_benchmark("hhh", benchmark_data, limit=1)
        judge_pairs(tiny_judge, hhh.items, ("relative",), "generate", 1, {"max_new_tokens": 2})
        item = hhh.items[0]
        first, second = recorder.prompts[:2]  # order AB, then BA
        criteria_line = "[" + item.rubric.criteria + "]"
        for prompt in (first, second):
            assert REL_SYSTEM_PROMPT in prompt and item.instruction in prompt and criteria_line in prompt
        assert first.index(item.response_1) < first.index(item.response_2)
        assert second.index(item.response_2) < second.index(item.response_1)
    finally:
        tiny_judge.backend = original


# -- the command end to end on the tiny random judge --------------------------------------------------------------
def _cli(argv):
    from prometheus_reward.cli import main

    return main(argv)


@pytest.fixture(scope="module")
def tiny_dir(tiny_model_dir):
    return str(tiny_model_dir)


def _run(tiny_dir, out, *extra):
    argv = ["meta-eval", "--model", tiny_dir, "--min-score-mass", "0", "--dtype", "float32", "--seed", "0", "--max-new-tokens", "6",
            "--bootstrap", "200", "--output-dir", str(out), *extra]
    assert _cli(argv) == 0
    result = json.loads((out / "results.json").read_text())
    for name in ("results.md", "scatter.png", "confusion.png", "calibration.png"):
        assert (out / name).is_file()
    for name in ("scatter.png", "confusion.png", "calibration.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == result["n"]
    return result, predictions


def test_cli_vicuna_expected_gives_integer_and_expected_side_by_side(tiny_dir, benchmark_data, tmp_path):
    result, predictions = _run(tiny_dir, tmp_path, "--benchmark", "vicuna", "--data", str(benchmark_data),
                               "--limit", "5", "--samples", "2", "--batch-size", "3")
    assert (result["benchmark"], result["n"], result["mode"], result["samples"]) == ("vicuna", 5, "expected", 2)
    assert result["model_arg"] == tiny_dir and result["model"] == Path(tiny_dir).name and result["runtime_s"] > 0
    m = result["metrics"]
    assert set(m) >= {"integer", "expected", "calibration"}
    # the reported numbers are the correlation of the recorded judge values with the mean GPT-4 score
    expected = [p["expected"] for p in predictions]
    gold = [sum(p["gold"]) / 3 for p in predictions]
    assert all(len(p["samples"]) == 2 and p["probs"] is not None for p in predictions)
    # (the fifth row's GPT-4 scores are 4, 5, 5: the gold is not constant, the correlation is defined)
    assert m["expected"]["pearson"]["value"] == pytest.approx(sps.pearsonr(expected, gold).statistic)
    assert m["expected"]["kendall"]["value"] == pytest.approx(sps.kendalltau(expected, gold).statistic)
    md = (tmp_path / "results.md").read_text()
    assert "0.666" in md and "Prometheus-2-7B" in md and "first 5 only" in md
    # the random judge never writes [RESULT]: every expected score is forced, and the integer
    # column counts no row (never an argmax passed off as a parsed score)
    assert m["forced"] == 5 and m["parsed"] == 0 and all(p["forced"] and p["score"] is None for p in predictions)
    assert m["integer"]["pearson"]["value"] is None
    assert "integer metrics over the 0 rows with a parsed [RESULT]; 5 rows' expected scores used a forced" in md

    # metrics recomputed from the written predictions alone are the same
    again = tmp_path / "again"
    again.mkdir()
    for name in ("run.json", "predictions.jsonl"):
        (again / name).write_bytes((tmp_path / name).read_bytes())
    assert _cli(["meta-eval", "--from-predictions", "--output-dir", str(again), "--bootstrap", "200", "--no-plots"]) == 0
    assert json.loads((again / "results.json").read_text())["metrics"] == m


def test_cli_hhh_both_protocols_and_resume(tiny_dir, benchmark_data, tmp_path, capsys):
    result, predictions = _run(tiny_dir, tmp_path, "--benchmark", "hhh", "--data", str(benchmark_data),
                               "--limit", "1", "--samples", "1")
    assert result["protocols"] == ["absolute", "relative"]
    m = result["metrics"]
    assert set(m["absolute"]) >= {"integer", "expected"} and set(m["relative"]) == {"votes", "probs"}
    for stats in m["relative"].values():
        assert {"accuracy", "accuracy_single_order", "swap_consistency", "position_bias_rate", "first_position_share"} <= set(stats)
    assert m["absolute"]["integer"]["by_group"]["harmless"]["n"] == 1
    rec = predictions[0]
    assert set(rec["absolute"]) == {"1", "2"} and set(rec["relative"]) == {"ab", "ba"}
    assert rec["relative"]["ab"]["prob_a"] is not None and rec["absolute"]["1"]["probs"] is not None
    # resume: the pair already judged is kept, only the second one is judged now
    _run(tiny_dir, tmp_path, "--benchmark", "hhh", "--data", str(benchmark_data), "--limit", "2", "--samples", "1", "--resume")
    after = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in after] == [0, 1] and after[:1] == predictions
    assert json.loads((tmp_path / "run.json").read_text())["resumed_rows"] == 1
    capsys.readouterr()
    assert _cli(["meta-eval", "--model", tiny_dir, "--min-score-mass", "0", "--dtype", "float32", "--benchmark", "hhh", "--data", str(benchmark_data),
                 "--limit", "2", "--samples", "2", "--resume", "--output-dir", str(tmp_path)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the model's loading bar
    assert last.startswith("error: cannot resume in") and "settings differ" in last


def test_cli_autoj_and_mt_bench_in_generate_mode(tiny_dir, benchmark_data, tmp_path):
    result, predictions = _run(tiny_dir, tmp_path / "autoj", "--benchmark", "autoj", "--data", str(benchmark_data),
                               "--limit", "2", "--samples", "1", "--mode", "generate")
    assert result["protocols"] == ["relative"] and set(result["metrics"]["relative"]) == {"votes"}
    assert "0.751" in (tmp_path / "autoj" / "results.md").read_text()
    argv = ["meta-eval", "--model", tiny_dir, "--min-score-mass", "0", "--dtype", "float32", "--seed", "0", "--max-new-tokens", "4",
            "--benchmark", "mt_bench", "--data", str(benchmark_data), "--limit", "1", "--samples", "1",
            "--mode", "generate", "--no-plots", "--output-dir", str(tmp_path / "mt")]
    assert _cli(argv) == 0
    mt = json.loads((tmp_path / "mt" / "results.json").read_text())
    assert mt["benchmark"] == "mt_bench" and set(mt["metrics"]) >= {"integer"} and "expected" not in mt["metrics"]


def test_cli_custom_absolute_and_pairwise_with_ties(tiny_dir, tmp_path):
    result, _ = _run(tiny_dir, tmp_path / "abs", "--benchmark", "custom", "--data", str(EXAMPLE),
                     "--limit", "3", "--samples", "1", "--mode", "direct")
    assert result["kind"] == "absolute" and set(result["metrics"]) >= {"expected", "calibration"}
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {"instruction": "Say hi.", "response_a": "Hello!", "response_b": "Go away.", "label": "A"},
        {"instruction": "Add 2 and 2.", "response_a": "5", "response_b": "4", "label": "B"},
        {"instruction": "Name a colour.", "response_a": "Red.", "response_b": "Blue.", "label": "tie"},
    ]
    pairs.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    result, predictions = _run(tiny_dir, tmp_path / "pair", "--benchmark", "custom", "--data", str(pairs),
                               "--rubric", "helpfulness", "--protocol", "both", "--samples", "1")
    m = result["metrics"]
    assert result["kind"] == "pairwise" and m["ties_in_gold"] == 1
    assert "accuracy_with_ties" in m["relative"]["probs"] and "accuracy_with_ties" in m["absolute"]["integer"]
    assert [p["label"] for p in predictions] == [0, 1, 2]


def test_cli_bad_data_fails_before_loading_the_model(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instruction": "q", "response": "r", "rubric": "helpfulness", "gold_score": "high"}) + "\n")
    assert _cli(["meta-eval", "--model", str(tmp_path / "no-such-model"), "--benchmark", "custom", "--data", str(bad),
                 "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "row 0: field 'gold_score'" in err and err.startswith("error: ") and err.count("\n") == 1


def test_compute_metrics_on_hand_made_pair_records():
    def grade(mean, expected):
        return {"score": None if mean is None else round(mean), "mean": mean, "expected": expected, "probs": None, "samples": []}

    records = [
        {"id": 0, "label": 0, "group": "x", "absolute": {"1": grade(4.0, 4.2), "2": grade(2.0, 2.5)}, "relative": None},
        {"id": 1, "label": 0, "group": "x", "absolute": {"1": grade(3.0, 3.1), "2": grade(3.0, 3.4)}, "relative": None},
        {"id": 2, "label": 1, "group": "y", "absolute": {"1": grade(5.0, 4.9), "2": grade(1.0, 1.2)}, "relative": None},
    ]
    m = compute_metrics("pairwise", records, mode="expected", n_resamples=0)
    assert m["absolute"]["integer"]["accuracy"]["value"] == pytest.approx(1 / 3)  # the tie counts wrong
    assert m["absolute"]["integer"]["tie_rate"] == pytest.approx(1 / 3)
    assert m["absolute"]["expected"]["accuracy"]["value"] == pytest.approx(1 / 3)
    assert m["absolute"]["integer"]["by_group"] == {"x": {"n": 2, "accuracy": 0.5}, "y": {"n": 1, "accuracy": 0.0}}


# -- a benchmark added at run time: one spec, one registration -----------------------------------------------------
@pytest.fixture
def registered(monkeypatch):
    """Register specs for one test only (the registry is shared by the whole session)."""
    from prometheus_reward.registry import BENCHMARKS

    names = []

    def register(spec):
        assert spec.name not in BENCHMARKS
        BENCHMARKS.register(spec.name, spec, help="a test set")
        names.append(spec.name)
        return spec

    yield register
    for name in names:
        BENCHMARKS.unregister(name)


def test_a_benchmark_registered_at_run_time_runs_through_meta_eval(registered, tiny_dir, benchmark_data, tmp_path, capsys):
    """One BenchmarkSpec (its file name, loader, kind, protocols and published figures) is all a new set
    needs: the command's choices, the folder lookup, the protocols and results.md all read it."""
    from prometheus_reward.metaeval import BENCHMARKS, BenchmarkSpec, Headline
    from prometheus_reward.metaeval.data import DEFAULT_FILES

    argv = ["--benchmark", "tiny_pairs", "--data", str(benchmark_data), "--limit", "2", "--samples", "1"]
    assert _cli(["meta-eval", "--model", tiny_dir, "--output-dir", str(tmp_path / "before"), *argv]) == 2
    assert "invalid choice: 'tiny_pairs'" in capsys.readouterr().err

    registered(BenchmarkSpec(
        name="tiny_pairs", load=BENCHMARKS.get("hhh").load, kind="pairwise", default_file="hhh_alignment_eval.json",
        protocols=("absolute",), default_protocols=("absolute",),
        published=(Headline("accuracy, absolute grading", ("absolute", "{src}", "accuracy", "value"), {"Our-Judge-1B": 0.625}),),
    ))
    assert DEFAULT_FILES["tiny_pairs"] == "hhh_alignment_eval.json"
    result, predictions = _run(tiny_dir, tmp_path / "out", *argv)
    assert (result["benchmark"], result["kind"], result["n"], result["protocols"]) == ("tiny_pairs", "pairwise", 2, ["absolute"])
    assert result["data"].endswith("hhh_alignment_eval.json")  # found in the folder by its spec's file name
    assert all(p["relative"] is None and set(p["absolute"]) == {"1", "2"} for p in predictions)
    md = (tmp_path / "out" / "results.md").read_text()
    assert "# Meta-evaluation: tiny_pairs" in md and "| Our-Judge-1B |" in md
    row = next(line for line in md.splitlines() if line.startswith("| accuracy, absolute grading |"))
    assert row.endswith("| n/a | n/a | n/a | n/a | 0.625 |")  # the papers' columns, then the spec's own model
    # a protocol the spec does not support is refused before the model loads
    capsys.readouterr()
    assert _cli(["meta-eval", "--model", str(tmp_path / "no-such-model"), "--output-dir", str(tmp_path / "rel"),
                 "--protocol", "relative", *argv]) == 2
    assert capsys.readouterr().err == "error: --benchmark tiny_pairs does not support the relative protocol\n"
