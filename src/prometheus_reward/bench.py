"""``prometheus-reward bench``: judging throughput and memory, mode by mode.

Modes, all over the same rendered Prometheus prompts:

- ``sequential``: one prompt at a time through plain ``model.generate`` (how a transformers
  snippet runs the evaluator): the baseline.
- ``generate`` / ``expected`` / ``direct``: the Judge's modes (token-budget batches, left padding,
  last-position logits).
- ``raw-forward``: the model's bare forward pass over each prompt alone (no padding, last-position
  logits only): the compute floor on this machine; ``direct`` is compared against it.

Each mode runs in its own subprocess (``--no-isolate`` to run in-process), so the peak RSS and
GPU memory figures belong to that mode alone. Generation modes write exactly ``--max-new-tokens``
tokens (EOS is ignored) so that they compare equal work.

Example:
    prometheus-reward bench --model embedded --data tests/fixtures/benchmarks/vicuna_eval.json --limit 8 \\
        --max-new-tokens 64 --json bench.json
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

MODES = ("sequential", "generate", "expected", "direct", "raw-forward")

# Named random-init sizes: real architectures, random weights, for throughput on a GPU without
# downloading weights. Prometheus 2 7B is a Mistral-7B-Instruct-v0.2 fine-tune.
RANDOM_INIT_CONFIGS: dict[str, dict[str, Any]] = {
    "mistral-7b": dict(model_type="mistral", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, vocab_size=32000,
                       max_position_embeddings=32768, rope_theta=1e6, sliding_window=None),
    "llama2-13b": dict(model_type="llama", hidden_size=5120, intermediate_size=13824, num_hidden_layers=40,
                       num_attention_heads=40, num_key_value_heads=40, vocab_size=32000,
                       max_position_embeddings=4096),
    "tiny-mistral": dict(model_type="mistral", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=32000,
                         max_position_embeddings=4096, sliding_window=None),
}


@dataclass
class BenchConfig:
    """Every knob of a benchmark run."""

    model: str = "embedded"
    data: str = ""
    limit: int = 8
    modes: list[str] = field(default_factory=lambda: list(MODES))
    max_new_tokens: int = 64
    dtype: str = "auto"
    device_map: str | None = None
    max_batch_tokens: int | None = None
    random_init: str | None = None
    rubric: str = "helpfulness"
    seed: int = 0
    isolate: bool = True


def load_user_prompts(path: str, limit: int, rubric: str = "helpfulness") -> list[str]:
    """Absolute-grading user prompts from a data file: rows with a fully rendered prompt (the
    Prometheus benchmark files) are used as they are; rows with instruction/response fields
    are rendered with ``rubric``."""
    from .io import pick_column, read_rows
    from .templates import absolute_prompt

    rows = read_rows(path, limit)
    if not rows:
        raise SystemExit(f"error: {path} has no rows")
    prompts = []
    for index, row in enumerate(rows):
        text = row.get("instruction")
        if isinstance(text, str) and text.startswith("###Task Description:"):
            prompts.append(text)
            continue
        instruction = row[pick_column(row, None, ("instruction", "prompt", "question"), "instruction")]
        response = row[pick_column(row, None, ("response", "completion", "answer", "response 1"), "response")]
        if not isinstance(instruction, str) or not isinstance(response, str):
            raise SystemExit(f"error: row {index}: instruction and response must be strings")
        prompts.append(absolute_prompt(instruction, response, rubric, row.get("reference_answer")))
    return prompts


def _random_init_tokenizer(vocab_size: int, texts: list[str]):
    """A byte-level BPE tokenizer trained on the bench prompts (cached), so that a random-weight
    model with a real vocabulary size can be driven by text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from .embedded import cache_home

    folder = cache_home() / f"bench-bpe-{vocab_size}"
    if not (folder / "tokenizer.json").is_file():
        bpe = Tokenizer(models.BPE())
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        bpe.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        bpe.train_from_iterator(texts * 4, trainer)
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
        tokenizer.save_pretrained(folder)
    return PreTrainedTokenizerFast.from_pretrained(folder)


def build_judge(cfg: BenchConfig, user_prompts: list[str]):
    import torch

    from .backends.transformers import TransformersBackend
    from .judge import Judge

    if cfg.random_init is None:
        kwargs = {"max_batch_tokens": cfg.max_batch_tokens} if cfg.max_batch_tokens else {}
        backend = TransformersBackend.from_pretrained(cfg.model, dtype=cfg.dtype, device_map=cfg.device_map, **kwargs)
    else:
        from transformers import AutoConfig, AutoModelForCausalLM

        if cfg.random_init in RANDOM_INIT_CONFIGS:
            spec = dict(RANDOM_INIT_CONFIGS[cfg.random_init])
            config = AutoConfig.for_model(spec.pop("model_type"), **spec)
        else:
            config = AutoConfig.from_pretrained(cfg.random_init)
        tokenizer = _random_init_tokenizer(config.vocab_size, user_prompts)
        config.bos_token_id, config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
        dtype = torch.bfloat16 if cfg.dtype in ("auto", "bfloat16") and torch.cuda.is_available() else (
            getattr(torch, cfg.dtype) if cfg.dtype != "auto" else torch.float32)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        torch.manual_seed(cfg.seed)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        backend = TransformersBackend(model, tokenizer, model_id=f"random-init:{cfg.random_init}", family="raw",
                                      max_batch_tokens=cfg.max_batch_tokens)
    # throughput only: the random or smoke weights put little mass on the score tokens
    return Judge(backend, max_retries=0, seed=cfg.seed, min_score_mass=0.0)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _model_inputs(backend, text: str) -> dict[str, Any]:
    """One unpadded prompt, tokenised exactly as the backend tokenises it."""
    import torch

    ids = torch.tensor([backend.encode(text)], device=backend.device)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def run_mode(cfg: BenchConfig, mode: str) -> dict[str, Any]:
    """Time one mode in this process; returns its figures."""
    import torch

    from .parsing import parse_absolute
    from .templates import ABS_SYSTEM_PROMPT

    user_prompts = load_user_prompts(cfg.data, cfg.limit, cfg.rubric)
    judge = build_judge(cfg, user_prompts)
    backend = judge.backend
    model, tokenizer = backend.model, backend.tokenizer
    formatted = [backend.format(ABS_SYSTEM_PROMPT, p) for p in user_prompts]
    token_counts = backend.count_tokens(formatted)
    overrides = dict(max_new_tokens=cfg.max_new_tokens, min_new_tokens=cfg.max_new_tokens)
    cuda = torch.cuda.is_available() and backend.device.type == "cuda"

    # warm-up: kernels, allocator, tokenizer caches
    backend.read_answers(formatted[:1], ["1", "2", "3", "4", "5"])
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()

    parsed = None
    completion_tokens = 0
    start = time.perf_counter()
    if mode == "sequential":
        parsed = 0
        with torch.inference_mode():
            for text in formatted:
                inputs = _model_inputs(backend, text)
                out = model.generate(**inputs, do_sample=True, temperature=1.0, top_p=0.9, top_k=0,
                                     repetition_penalty=1.03, max_new_tokens=cfg.max_new_tokens,
                                     min_new_tokens=cfg.max_new_tokens, pad_token_id=tokenizer.pad_token_id)
                new = out[0, inputs["input_ids"].shape[1]:]
                completion_tokens += int(new.shape[0])
                parsed += parse_absolute(tokenizer.decode(new, skip_special_tokens=True)) is not None
    elif mode == "raw-forward":
        with torch.inference_mode():
            for text in formatted:
                model(**_model_inputs(backend, text), logits_to_keep=1, use_cache=False)
    elif mode in ("generate", "expected", "direct"):
        stats_before = backend.stats.completion_tokens
        grades = judge.grade_rendered(user_prompts, mode=mode, **overrides)
        completion_tokens = backend.stats.completion_tokens - stats_before
        # a smoke model rarely writes "[RESULT] N": the parse rate is reported, not required
        parsed = sum(bool(g.samples) and g.samples[0] is not None for g in grades) if mode != "direct" else None
        truncated = [g.error for g in grades if g.truncated]
        if truncated:
            raise RuntimeError(f"{len(truncated)} prompts do not fit the context: {truncated[0]}")
    else:
        raise ValueError(f"unknown bench mode {mode!r}")
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    n = len(formatted)
    return {
        "judgments": n,
        "seconds": elapsed,
        "judgments_per_s": n / elapsed,
        "prompt_tokens": sum(token_counts),
        "prompt_tokens_per_s": sum(token_counts) / elapsed,
        "completion_tokens": completion_tokens,
        "parsed": parsed,
        "peak_rss_mb": _peak_rss_mb(),
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "device": str(backend.device) + (f" ({torch.cuda.get_device_name()})" if cuda else f" ({torch.get_num_threads()} threads)"),
        "model": backend.model_id,
    }


def _run_isolated(cfg: BenchConfig, mode: str) -> dict[str, Any]:
    payload = json.dumps({**asdict(cfg), "modes": [mode], "isolate": False})
    proc = subprocess.run(
        [sys.executable, "-m", "prometheus_reward.bench", "--worker", payload],
        capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench mode {mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])[mode]


def run_bench(cfg: BenchConfig, progress: bool = True) -> dict[str, dict[str, Any]]:
    """Run every requested mode; adds ``ratio_to_sequential`` and direct's efficiency."""
    from tqdm.auto import tqdm

    unknown = set(cfg.modes) - set(MODES)
    if unknown:
        raise ValueError(f"unknown bench modes: {sorted(unknown)}; choose from {MODES}")
    results: dict[str, dict[str, Any]] = {}
    for mode in tqdm(cfg.modes, desc="bench", unit="mode", disable=not progress):
        results[mode] = _run_isolated(cfg, mode) if cfg.isolate else run_mode(cfg, mode)
    base = results.get("sequential", {}).get("judgments_per_s")
    for figures in results.values():
        figures["ratio_to_sequential"] = figures["judgments_per_s"] / base if base else None
    if "direct" in results and "raw-forward" in results:
        results["direct"]["efficiency_vs_raw_forward"] = (
            results["direct"]["prompt_tokens_per_s"] / results["raw-forward"]["prompt_tokens_per_s"]
        )
    return results


def results_table(results: dict[str, dict[str, Any]], cfg: BenchConfig):
    from rich.table import Table

    any_result = next(iter(results.values()))
    table = Table(title=f"bench: {any_result['model']} on {any_result['device']}, {any_result['judgments']} prompts, "
                        f"{cfg.max_new_tokens} new tokens (generate modes)")
    for column in ("mode", "judgments/s", "prompt tok/s", "s total", "peak RSS MB", "peak GPU MB", "x sequential", "note"):
        table.add_column(column, justify="left" if column in ("mode", "note") else "right")
    for mode, r in results.items():
        note = ""
        if mode == "direct" and "efficiency_vs_raw_forward" in r:
            note = f"{r['efficiency_vs_raw_forward']:.2f} of raw-forward tok/s"
        elif r.get("parsed") is not None:
            note = f"{r['parsed']}/{r['judgments']} parsed"
        table.add_row(
            mode, f"{r['judgments_per_s']:.3f}", f"{r['prompt_tokens_per_s']:.0f}", f"{r['seconds']:.1f}",
            f"{r['peak_rss_mb']:.0f}", "-" if r["peak_gpu_mb"] is None else f"{r['peak_gpu_mb']:.0f}",
            "-" if r["ratio_to_sequential"] is None else f"{r['ratio_to_sequential']:.2f}", note,
        )
    return table


def _worker(payload: str) -> None:
    cfg = BenchConfig(**json.loads(payload))
    print(json.dumps({cfg.modes[0]: run_mode(cfg, cfg.modes[0])}))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        _worker(sys.argv[2])
    else:  # pragma: no cover
        print("use `prometheus-reward bench`", file=sys.stderr)
        sys.exit(2)
