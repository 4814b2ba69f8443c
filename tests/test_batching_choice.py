"""batching="auto" chooses by the measured crossover, and the crossover the code ships is the one
its bench JSON measured (issue 19: auto must never pick the slower path)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prometheus_reward.backends.base import SamplingParams
from prometheus_reward.backends.batching_choice import CROSSOVERS, Crossover, choose_batching
from prometheus_reward.backends.transformers import TransformersBackend
from prometheus_reward.bench_crossover import derive_crossover
from prometheus_reward.cli import main

REPO = Path(__file__).resolve().parents[1]


def _points(grid):
    return [dict(rows=r, mean_new_tokens=n, ratio=q) for r, n, q in grid]


def test_derive_crossover_takes_the_largest_region_where_continuous_always_won():
    # the 8 x 64 cell lost (the reproduced 0.73x): no region may hold it
    grid = [(2, 64, 0.6), (2, 256, 0.9), (8, 64, 0.73), (8, 256, 1.2), (16, 64, 1.05), (16, 256, 1.4)]
    found = derive_crossover(_points(grid))
    assert (found["min_rows"], found["min_new_tokens"], found["covers"]) == (8, 256, 2)
    assert derive_crossover(_points([(2, 64, 0.9), (16, 256, 0.99)]))["min_rows"] is None
    # a point that only ties does not count as faster
    assert derive_crossover(_points([(4, 64, 1.0)]))["min_rows"] is None
    assert derive_crossover(_points([(4, 64, 1.1), (8, 64, 0.9)]))["min_rows"] is None  # not monotone: refuse


def test_shipped_crossovers_are_what_their_bench_json_measured():
    """The table auto reads is derived from the saved measurement, not typed in by hand."""
    for (device, attention), crossover in CROSSOVERS.items():
        saved = json.loads((REPO / crossover.measured).read_text())
        found = derive_crossover(saved["points"])
        assert (crossover.min_rows, crossover.min_new_tokens or None) == (found["min_rows"], found["min_new_tokens"] or None)
        assert saved["meta"]["versions"]["git_commit"] and saved["meta"]["command"].startswith("prometheus-reward bench")
        assert {p["device"].split(" ")[0] for p in saved["points"]} == {device}
        assert saved["config"]["judge"]["model_kwargs"].get("attn_implementation", "sdpa") == attention
        for point in saved["points"]:  # the same work in both paths: the same output lengths
            assert point["completion_tokens"]["padded"] == point["completion_tokens"]["continuous"]


def test_choose_batching_follows_the_region_and_refuses_the_unmeasured(monkeypatch):
    monkeypatch.setitem(CROSSOVERS, ("cpu", "sdpa"), Crossover(min_rows=8, min_new_tokens=128, measured="x.json"))
    assert choose_batching("cpu", "sdpa", 16, 200)[0] == "continuous"
    assert choose_batching("cpu", "paged|sdpa", 16, 200)[0] == "continuous"  # the same implementation
    path, why = choose_batching("cpu", "sdpa", 4, 200)
    assert path == "padded" and "below the crossover" in why and "x.json" in why
    assert choose_batching("cpu", "sdpa", 16, 64)[0] == "padded"
    path, why = choose_batching("cpu", "eager", 64, 1024)
    assert path == "padded" and "not measured" in why
    assert choose_batching("cuda", "flash_attention_2", 64, 1024)[0] == "padded"
    monkeypatch.setitem(CROSSOVERS, ("cpu", "sdpa"), Crossover(min_rows=None, min_new_tokens=0, measured="y.json"))
    path, why = choose_batching("cpu", "sdpa", 10_000, 10_000)
    assert path == "padded" and "slower at every size" in why


@pytest.fixture
def backend(tiny_model_dir):
    return TransformersBackend.from_pretrained(str(tiny_model_dir), dtype="float32")


def test_auto_backend_takes_the_path_the_crossover_names_per_call(backend, monkeypatch):
    monkeypatch.setitem(CROSSOVERS, ("cpu", "sdpa"), Crossover(min_rows=3, min_new_tokens=6, measured="x.json"))
    greedy = SamplingParams(max_new_tokens=8, temperature=0.0)
    backend.generate(["a", "b"], greedy)  # 2 rows
    assert backend.last_batching == "padded" and "below the crossover" in backend.last_batching_reason
    backend.generate(["a", "b"], greedy, num_samples=2)  # samples count as rows: 4 x 8
    assert backend.last_batching == "continuous" and "past the crossover" in backend.last_batching_reason
    # random weights never write EOS: rows wrote all 8, so the expected length stays 8
    assert backend._typical_new_tokens == 8
    backend._typical_new_tokens = 3.0  # rows that stopped at EOS after ~3 tokens: a short call
    backend.generate(["a", "b", "c", "d"], greedy)
    assert backend.last_batching == "padded"
    backend.batching = "continuous"  # an explicit choice is obeyed whatever the crossover says
    backend.generate(["a"], greedy)
    assert backend.last_batching == "continuous" and backend.last_batching_reason == "batching='continuous'"


def test_auto_never_runs_continuous_where_the_shipped_table_says_padded(backend):
    """With the table as shipped, the reproduced slow case (8 rows x 64 tokens on CPU) is padded."""
    expected, _ = choose_batching("cpu", backend.model.config._attn_implementation, 8, 64)
    assert expected == "padded"
    backend.exact_lengths = None
    backend.generate([f"row {k}" for k in range(8)], SamplingParams(max_new_tokens=64, temperature=0.0))
    assert backend.last_batching == "padded"


def test_bench_crossover_command_writes_the_grid_and_its_region(tiny_model_dir, benchmark_data, tmp_path, capsys):
    out = tmp_path / "crossover.json"
    assert main(["bench", "--model", str(tiny_model_dir), "--dtype", "float32", "--data",
                 str(benchmark_data / "vicuna_eval.json"), "--stop", "drawn", "--no-isolate",
                 "--crossover-rows", "1,3", "--crossover-lengths", "6", "--attn-implementation", "sdpa",
                 "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert [(p["rows"], p["max_new_tokens"]) for p in saved["points"]] == [(1, 6), (3, 6)]
    for point in saved["points"]:
        assert point["ratio"] > 0 and point["padded_s"] > 0 and point["continuous_s"] > 0
        assert point["completion_tokens"]["padded"] == point["completion_tokens"]["continuous"]  # drawn: same lengths
        assert 0 < point["mean_new_tokens"] <= point["max_new_tokens"]
    assert saved["crossover"] == derive_crossover(saved["points"])
    assert saved["config"]["judge"]["model_kwargs"] == {"attn_implementation": "sdpa"}
    printed = capsys.readouterr().out
    assert "continuous / padded" in printed and "max 6 new" in printed


def test_sampler_ablation_modes_record_their_sampler(tiny_model_dir, benchmark_data):
    from prometheus_reward.bench import BenchConfig, run_bench

    results = run_bench(BenchConfig(judge={"model": str(tiny_model_dir), "dtype": "float32"},
                                    data=str(benchmark_data / "vicuna_eval.json"), limit=2, max_new_tokens=6,
                                    stop="drawn", isolate=False,
                                    modes=["generate:padded:full-top-p", "generate:padded", "generate:continuous"]),
                        progress=False)
    assert results["generate:padded:full-top-p"]["sampler"] == "transformers"
    assert results["generate:padded"]["sampler"] == "nucleus" and results["generate:continuous"]["sampler"] == "nucleus"
    assert [r["batching"] for r in results.values()] == ["padded", "padded", "continuous"]
    assert len({r["completion_tokens"] for r in results.values()}) == 1  # drawn lengths: the same work
    assert results["generate:continuous"]["ratio_to_padded"] > 0
    assert results["generate:padded:full-top-p"]["ratio_to_padded"] > 0
    assert "ratio_to_padded" not in results["generate:padded"]  # not against itself
