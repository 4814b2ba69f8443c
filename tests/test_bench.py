"""The bench command and the speed paths it measures, on real (tiny) models: continuous batching
against the padded path, prefix sharing against none, the nucleus sampler against transformers',
and the bench's own honesty rules (stopping, drawn lengths, real tokenizers). No timed assertions."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from prometheus_reward.backends.base import SamplingParams
from prometheus_reward.backends.batching_choice import choose_batching
from prometheus_reward.backends.continuous import RowSpec, run_continuous
from prometheus_reward.backends.nucleus import nucleus_mask, sample_nucleus
from prometheus_reward.backends.prefixes import shared_prefix_groups
from prometheus_reward.backends.transformers import TransformersBackend
from prometheus_reward.bench import (
    MODES,
    BenchConfig,
    bench_tokenizer,
    build_judge,
    draw_lengths,
    feedback_lengths,
    grpo_prompts,
    run_bench,
)
from prometheus_reward.cli import main
from prometheus_reward.templates import ABS_SYSTEM_PROMPT


@pytest.fixture(scope="module")
def tiny_backend(tiny_model_dir):
    return TransformersBackend.from_pretrained(str(tiny_model_dir), dtype="float32")


@pytest.fixture(scope="module")
def vicuna_prompts(tiny_backend, benchmark_data):
    rows = json.loads((benchmark_data / "vicuna_eval.json").read_text())[:3]
    return [tiny_backend.format(ABS_SYSTEM_PROMPT, r["instruction"]) for r in rows]


# -- continuous batching against the padded path --------------------------------------------------------
def test_continuous_matches_padded_greedy(tiny_backend, vicuna_prompts):
    """Greedy outputs are the same token for token, with the repetition penalty on (so the
    continuous path's penalty sees each row's own prompt and output, as generate's does)."""
    prompts = vicuna_prompts + [tiny_backend.format(ABS_SYSTEM_PROMPT, "Rate this: hello")]  # mixed lengths
    greedy = SamplingParams(max_new_tokens=12, temperature=0.0, repetition_penalty=1.03)
    outputs = {}
    for batching in ("padded", "continuous"):
        tiny_backend.batching = batching
        outputs[batching] = tiny_backend.generate(prompts, greedy)
        assert tiny_backend.last_batching == batching
    tiny_backend.batching = "auto"
    padded = [g[0].text for g in outputs["padded"]]
    assert [g[0].text for g in outputs["continuous"]] == padded
    assert all(g[0].completion_tokens == 12 for g in outputs["continuous"])
    assert len(set(padded)) == len(padded)  # distinct rows: a mix-up between rows would show


def test_continuous_records_the_answer_distribution_like_the_padded_recorder(tiny_backend, vicuna_prompts):
    """Treat the tokens the model writes as "answer tokens": the continuous path records the raw
    logits and logsumexp at exactly the steps that wrote one, equal to the padded recorder's."""
    from transformers import LogitsProcessorList

    from prometheus_reward.backends.transformers import _ChoiceLogitRecorder

    model = tiny_backend.model
    ids = tiny_backend.encode(vicuna_prompts[0])
    greedy = SamplingParams(max_new_tokens=6, temperature=0.0, repetition_penalty=1.0)
    first = run_continuous(model, [RowSpec(ids, 6)], greedy)[0]
    answer_ids = torch.tensor(sorted(set(first.tokens[:3])))
    out = run_continuous(model, [RowSpec(ids, 6)], greedy, answer_ids=answer_ids)[0]
    assert out.tokens == first.tokens
    steps = [t for t, tok in enumerate(out.tokens) if tok in set(answer_ids.tolist())]
    assert sorted(out.recorded) == steps and steps

    recorder = _ChoiceLogitRecorder(answer_ids)
    with torch.inference_mode():
        model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                       max_new_tokens=6, do_sample=False, logits_processor=LogitsProcessorList([recorder]),
                       pad_token_id=tiny_backend.tokenizer.pad_token_id)
    for step in steps:
        assert torch.allclose(out.recorded[step], recorder.steps[step][0], atol=1e-4, rtol=1e-4)


def test_concurrent_generate_calls_leave_the_model_as_it_was(tiny_backend, vicuna_prompts):
    """Async rewards judge in threads: two generate calls at once on one backend must not leave
    the model changed (two continuous-batching sessions at once did, and every later forward pass
    read other distributions)."""
    before = tiny_backend.read_answers(vicuna_prompts, ["1", "2", "3", "4", "5"])
    greedy = SamplingParams(max_new_tokens=6, temperature=0.0)
    tiny_backend.batching = "continuous"
    try:
        with ThreadPoolExecutor(2) as pool:
            outputs = list(pool.map(lambda p: tiny_backend.generate([p], greedy), [vicuna_prompts[0], vicuna_prompts[1]]))
    finally:
        tiny_backend.batching = "auto"
    assert tiny_backend.last_batching == "continuous" and all(len(o[0][0].text) > 0 for o in outputs)
    after = tiny_backend.read_answers(vicuna_prompts, ["1", "2", "3", "4", "5"])
    for a, b in zip(before, after):
        assert a.probs == pytest.approx(b.probs, abs=1e-6) and a.mass == pytest.approx(b.mass, rel=1e-5)


def test_continuous_sampling_is_seeded_and_lengths_are_exact(tiny_backend, vicuna_prompts):
    sampling = SamplingParams(max_new_tokens=32, seed=7)
    tiny_backend.batching = "continuous"
    try:
        first = tiny_backend.generate(vicuna_prompts, sampling)
        again = tiny_backend.generate(vicuna_prompts, sampling)
        assert [g[0].text for g in first] == [g[0].text for g in again]
        tiny_backend.exact_lengths = {p: 3 + k for k, p in enumerate(vicuna_prompts)}
        for batching in ("continuous", "padded"):
            tiny_backend.batching = batching
            out = tiny_backend.generate(vicuna_prompts, sampling, num_samples=2)
            assert [[g.completion_tokens for g in gens] for gens in out] == [[3, 3], [4, 4], [5, 5]]
        with pytest.raises(ValueError, match="every prompt"):
            tiny_backend.generate(vicuna_prompts + ["not planned"], sampling)
    finally:
        tiny_backend.exact_lengths = None
        tiny_backend.batching = "auto"


def test_exact_lengths_ignore_an_eos_the_model_writes(tiny_backend, vicuna_prompts):
    """Benchmarks give every mode the same output lengths: a row with an exact length goes on
    past an EOS it writes, in both paths (the padded path stopped there: generate filled the
    unset EOS from the model's own generation config)."""
    greedy = SamplingParams(max_new_tokens=5, temperature=0.0, repetition_penalty=1.0)
    with torch.inference_mode():
        ids = torch.tensor([tiny_backend.encode(vicuna_prompts[0])])
        first_id = int(tiny_backend.model(input_ids=ids).logits[0, -1].argmax())
    config = tiny_backend.model.generation_config
    saved = config.eos_token_id
    config.eos_token_id = [first_id]  # the model's first greedy token now counts as its EOS
    tiny_backend.exact_lengths = {vicuna_prompts[0]: 5}
    try:
        texts = {}
        for batching in ("padded", "continuous"):
            tiny_backend.batching = batching
            gen = tiny_backend.generate(vicuna_prompts[:1], greedy)[0][0]
            assert gen.completion_tokens == 5, batching
            texts[batching] = gen.text
        assert texts["padded"] == texts["continuous"]
    finally:
        config.eos_token_id = saved
        tiny_backend.exact_lengths = None
        tiny_backend.batching = "auto"


def test_padded_and_continuous_paths_draw_with_the_same_sampler(tiny_backend, vicuna_prompts):
    """One row, one seed: the padded path's NucleusChoice and the continuous path's step consume
    the same random numbers for the same distributions, so they write the same tokens; the
    ``transformers`` sampler (TopPLogitsWarper + a full-vocabulary multinomial) is another draw."""
    sampling = SamplingParams(max_new_tokens=24, seed=3, temperature=1.5)  # hot: many tokens in the nucleus
    texts = {}
    try:
        for batching, sampler in (("padded", "nucleus"), ("continuous", "nucleus"), ("padded", "transformers")):
            tiny_backend.batching, tiny_backend.sampler = batching, sampler
            texts[batching, sampler] = tiny_backend.generate(vicuna_prompts[:1], sampling)[0][0].text
            assert tiny_backend.last_batching == batching
            assert tiny_backend.generate(vicuna_prompts[:1], sampling)[0][0].text == texts[batching, sampler]
    finally:
        tiny_backend.batching, tiny_backend.sampler = "auto", "nucleus"
    assert texts["padded", "nucleus"] == texts["continuous", "nucleus"]
    assert texts["padded", "transformers"] != texts["padded", "nucleus"]
    with pytest.raises(ValueError, match="sampler must be one of"):
        TransformersBackend(tiny_backend.model, tiny_backend.tokenizer, sampler="top-k")


def test_batching_option_reaches_the_backend_and_auto_falls_back(tiny_model_dir, monkeypatch):
    from prometheus_reward import Judge
    from prometheus_reward.backends import transformers as module

    judge = Judge.from_config({"model": str(tiny_model_dir), "dtype": "float32", "batching": "padded",
                               "prefix_sharing": False})
    assert judge.backend.batching == "padded" and judge.backend.prefix_sharing is False
    monkeypatch.setattr(module, "continuous_batching_unavailable", lambda model: "no continuous batching here")
    backend = TransformersBackend(judge.backend.model, judge.backend.tokenizer, batching="auto")
    backend.generate(["Hello"], SamplingParams(max_new_tokens=2, temperature=0.0))
    assert backend.last_batching == "padded"
    backend.batching = "continuous"
    with pytest.raises(RuntimeError, match="no continuous batching here"):
        backend.generate(["Hello"], SamplingParams(max_new_tokens=2, temperature=0.0))


# -- nucleus sampling ---------------------------------------------------------------------------------------------
def test_nucleus_keeps_what_top_p_warper_keeps():
    from transformers import TopPLogitsWarper

    generator = torch.Generator().manual_seed(0)
    vocab = 50_000
    peaked = torch.randn(4, vocab, generator=generator) * 2
    peaked[:, :40] += 12
    flat = torch.randn(2, vocab, generator=generator) * 0.3  # nucleus wider than the candidates
    logits = torch.cat([peaked, flat])
    reference = TopPLogitsWarper(0.9)(None, logits.clone()) > -float("inf")
    mine = nucleus_mask(logits, 0.9, candidates=1024)
    assert torch.equal(mine[:4], reference[:4])
    assert (mine[4:] != reference[4:]).sum() <= 5  # float rounding at the edge of a 45k-token nucleus
    assert int(mine[4].sum()) > 1024  # the wide rows really took the full-sort path


def test_nucleus_samples_the_renormalised_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    generator = torch.Generator().manual_seed(0)
    draws = torch.cat([sample_nucleus(logits, 0.9, generator, candidates=2) for _ in range(4000)])
    counts = torch.bincount(draws, minlength=4).float() / len(draws)
    # nucleus: 0.5 + 0.3 < 0.9, so the third token is in and the fourth out
    assert counts[3] == 0
    assert torch.allclose(counts[:3], torch.tensor([0.5, 0.3, 0.15]) / 0.95, atol=0.03)


# -- prefix sharing -------------------------------------------------------------------------------------------------
def test_shared_prefix_groups():
    rows = [[1, 2, 3, 4, 5], [7, 7], [1, 2, 3, 4, 6], [1, 2, 3, 9]]
    assert shared_prefix_groups(rows, min_shared=3) == [(3, [0, 2, 3]), (0, [1])]
    assert shared_prefix_groups([[1, 2], [1, 2]], min_shared=1) == [(1, [0, 1])]  # a row keeps its last token


def test_prefix_sharing_gives_the_same_distributions(tiny_backend, benchmark_data):
    prompts = grpo_prompts(str(benchmark_data / "vicuna_eval.json"), prompts=2, completions=3)
    formatted = [tiny_backend.format(ABS_SYSTEM_PROMPT, p) for p in prompts]
    groups = shared_prefix_groups([tiny_backend.encode(f) for f in formatted])
    assert groups[0][0] > 128  # past the tiny model's sliding window: the window must still hold
    readings = {}
    for sharing in (False, True):
        tiny_backend.prefix_sharing = sharing
        before = tiny_backend.stats.prompt_tokens
        readings[sharing] = tiny_backend.read_answers(formatted, "12345")
        readings[f"tokens{sharing}"] = tiny_backend.stats.prompt_tokens - before
    tiny_backend.prefix_sharing = True
    assert readings["tokensTrue"] < readings["tokensFalse"]  # the prefix ran once
    for plain, shared in zip(readings[False], readings[True]):
        assert plain.error is None and shared.error is None
        assert shared.probs == pytest.approx(plain.probs, abs=1e-6)
        assert shared.mass == pytest.approx(plain.mass, rel=1e-4)


# -- the bench ----------------------------------------------------------------------------------------------------
def test_bench_random_init_tokenizer_is_the_real_one(embedded_dir):
    from transformers import AutoTokenizer

    real = AutoTokenizer.from_pretrained(embedded_dir)
    tokenizer = bench_tokenizer()
    text = "###Task Description:\nAn instruction (might include an Input inside it)"
    assert tokenizer(text)["input_ids"] == real(text)["input_ids"]
    assert len(tokenizer) == len(real) > 200_000  # Gemma's vocabulary, not one trained on the prompts
    judge = build_judge(BenchConfig(random_init="tiny-mistral"))
    assert judge.backend.tokenizer.get_vocab() == real.get_vocab()
    assert judge.backend.model.config.vocab_size == len(real)


def test_drawn_lengths_come_from_the_gpt4_feedbacks(benchmark_data, embedded_dir):
    from transformers import AutoTokenizer

    pool = feedback_lengths(str(benchmark_data / "vicuna_eval.json"), AutoTokenizer.from_pretrained(embedded_dir))
    assert len(pool) == 13 * 3 and 40 < sum(pool) / len(pool) < 400  # every feedback of the slice, real lengths
    drawn = draw_lengths(pool, 5, seed=0, cap=100)
    assert drawn == draw_lengths(pool, 5, seed=0, cap=100) and max(drawn) <= 100
    assert set(drawn) <= {min(p, 100) for p in pool}


def test_bench_runs_every_mode_honouring_eos(tiny_model_dir, benchmark_data, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", str(tiny_model_dir), "--dtype", "float32", "--data",
                 str(benchmark_data / "vicuna_eval.json"), "--limit", "2", "--max-new-tokens", "4", "--stop", "eos",
                 "--raw-batch-sizes", "1,2", "--no-isolate", "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    results = saved["results"]
    assert list(results) == list(MODES)
    assert saved["meta"]["versions"]["transformers"] and saved["meta"]["load_average_start"]
    assert saved["config"]["judge"]["model"] == str(tiny_model_dir) and saved["config"]["stop"] == "eos"
    for mode, figures in results.items():
        assert figures["judgments"] == 2 and figures["judgments_per_s"] > 0 and figures["peak_rss_mb"] > 0
        assert figures["mean_prompt_tokens"] > 500  # the rendered benchmark prompts, not empty strings
    for mode in ("sequential", "generate:padded", "generate", "expected:padded", "expected"):
        # random weights never write EOS: every row reaches the cap, in every mode
        assert results[mode]["completion_tokens"] == 2 * 4 and results[mode]["stop"] == "eos"
    # auto takes the path the measured crossover names for 2 rows x 4 tokens on this CPU
    assert results["generate"]["batching"] == choose_batching("cpu", "sdpa", 2, 4)[0]
    assert results["generate:padded"]["batching"] == "padded"
    assert results["generate"]["ratio_to_padded"] > 0 and results["sequential"]["ratio_to_sequential"] == 1.0
    assert results["raw-forward"]["best_batch_size"] in (1, 2)
    assert 0 < results["direct"]["efficiency_vs_raw_forward"]
    assert "direct efficiency vs raw-forward" in capsys.readouterr().out


def test_bench_drawn_and_fixed_lengths_are_the_same_in_every_mode(tiny_model_dir, benchmark_data):
    data = str(benchmark_data / "vicuna_eval.json")
    judge = {"model": str(tiny_model_dir), "dtype": "float32"}
    drawn = run_bench(BenchConfig(judge=judge, data=data, limit=2, max_new_tokens=24, stop="drawn", isolate=False,
                                  modes=["sequential", "generate:padded", "generate", "expected"]), progress=False)
    lengths = drawn["sequential"]["drawn_lengths"]
    assert len(lengths) == 2 and all(0 < n <= 24 for n in lengths)
    for figures in drawn.values():
        assert figures["drawn_lengths"] == lengths and figures["completion_tokens"] == sum(lengths)
    fixed = run_bench(BenchConfig(judge=judge, data=data, limit=2, max_new_tokens=3, stop="fixed", isolate=False,
                                  modes=["sequential", "generate"]), progress=False)
    assert [f["completion_tokens"] for f in fixed.values()] == [6, 6]


def test_bench_isolated_random_init_grpo_shape(benchmark_data, tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "--random-init", "tiny-mistral", "--data", str(benchmark_data / "vicuna_eval.json"),
                 "--shape", "grpo", "--modes", "direct,direct:unshared", "--json", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert results["direct"]["model"] == "random-init:tiny-mistral" and results["direct"]["judgments"] == 64
    assert results["direct"]["prefix_sharing"] is True and results["direct:unshared"]["prefix_sharing"] is False
    assert results["direct"]["ratio_to_sequential"] is None  # no baseline asked for


def test_bench_table_into_a_log_is_printed_at_full_width():
    """Into a file or pipe (not a terminal) the table keeps every cell on one line; rich would
    squeeze it to 80 columns and wrap or cut the cells, unreadable in a log."""
    import io

    from prometheus_reward.bench import print_table, results_table

    def figures(mode: str, **extra):
        return {"model": "a-rather-long-model-name-for-the-title", "device": "cpu", "judgments": 16,
                "mean_prompt_tokens": 1234.0, "judgments_per_s": 12.345, "completion_tokens": 4096,
                "prompt_tokens_per_s": 20480.0, "seconds": 98.7, "peak_rss_mb": 3210.0, "peak_gpu_mb": 45678.0,
                "ratio_to_sequential": 3.21, "ratio_to_padded": 1.55, **extra}

    results = {
        "sequential": figures("sequential", parsed=16, batching="sequential"),
        "generate": figures("generate", parsed=15, batching="continuous"),
        "direct": figures("direct", efficiency_vs_raw_forward=0.87),
        "raw-forward": figures("raw-forward", best_batch_size=64, single_prompt_tokens_per_s=543.0),
    }
    out = io.StringIO()
    assert not out.isatty()
    print_table(results_table(results, BenchConfig(limit=16)), out)
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) > 80  # wider than rich's default for a non-terminal
    cells = ["judgments/s", "tokens generated", "prompt tok/s", "peak RSS MB", "peak GPU MB", "x sequential", "x padded",
             "raw-forward", "12.345", "4096", "20480", "45678", "3.21", "1.55", "16/16 parsed, sequential",
             "15/16 parsed, continuous", "0.87 of raw-forward tok/s", "best batch 64; one at a time 543 tok/s"]
    for cell in cells:  # each whole, on one line, between the column rules
        assert any(f" {cell} " in line for line in lines), cell


def test_bench_config_records_the_rules_every_mode_runs_under(tmp_path):
    from dataclasses import asdict

    from prometheus_reward.config import JudgeConfig

    cfg = BenchConfig(judge=JudgeConfig(model="embedded"), seed=3)
    # the JSON's config is what ran: no retries, any answer mass, the bench's seed (issue 19 §5)
    recorded = json.loads(json.dumps(asdict(cfg), default=str))["judge"]
    assert recorded["max_retries"] == 0 and recorded["min_score_mass"] == 0.0 and recorded["seed"] == 3
    again = BenchConfig(**json.loads(json.dumps(asdict(cfg), default=list)))  # the isolated worker's copy
    assert again.judge == cfg.judge


def test_bench_vllm_engine_runs_only_the_modes_it_can():
    from prometheus_reward.config import JudgeConfig

    with pytest.raises(ValueError, match="transformers only"):
        BenchConfig(judge=JudgeConfig(model="embedded", engine="vllm"), modes=["sequential", "direct"])
    assert BenchConfig(judge=JudgeConfig(model="embedded", engine="vllm"), modes=["generate", "direct"]).modes
    with pytest.raises(ValueError, match="random-init"):
        BenchConfig(judge=JudgeConfig(model="embedded", engine="vllm"), modes=["direct"], random_init="tiny-mistral")
