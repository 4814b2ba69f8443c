"""``prometheus-reward bench``: judging throughput and memory, mode by mode, measured so that it
cannot flatter us.

Modes, all over the same rendered Prometheus prompts:

- ``sequential``: one prompt at a time through plain ``model.generate`` with the Prometheus
  sampling (how a transformers snippet runs the evaluator): the baseline.
- ``generate`` / ``expected``: the Judge's modes with its default batching (``auto``: see
  :mod:`prometheus_reward.backends.batching_choice`); ``:padded`` / ``:continuous`` force one
  path. ``bench --crossover`` (:mod:`prometheus_reward.bench_crossover`) maps where each wins.
  Both paths draw tokens with the same exact nucleus sampler; ``generate:padded:full-top-p``
  draws with transformers' ``TopPLogitsWarper`` and a full-vocabulary multinomial instead (the
  padded path's sampler before), so the sampler's share of a speed-up is measured apart from
  the batching's.
- ``direct``: one forward pass per prompt after ``[RESULT] ``; no feedback is written, so it is a
  cheaper product, not the same product faster. ``direct:unshared`` turns prefix sharing off.
- ``raw-forward``: the floor for ``direct``: the model's bare forward pass over the same prompts
  (last-position logits, no judge around it), at each batch size of ``raw_batch_sizes`` (length-
  sorted, left-padded); the best is the floor, and batch size 1 is reported beside it.

Stopping rules, the same for every generating mode (``sequential`` included):

- ``eos``: each row stops at the evaluator's EOS or at ``max_new_tokens`` (real models).
- ``drawn``: each row writes exactly a length drawn (seeded, the same draw in every mode) from
  the token lengths of the data's GPT-4 feedbacks (``"<feedback> [RESULT] <score>"``), capped at
  ``max_new_tokens``: random-weight models never write EOS, so this stands in for it.
- ``fixed``: every row writes exactly ``max_new_tokens`` (the old method; labelled as such).
- ``auto``: ``drawn`` for ``random_init`` models, else ``eos``.

Tokens generated are reported per mode: under ``eos`` sampled outputs differ between modes, and
a mode that wrote fewer tokens did less work.

``random_init`` models (real architectures, random weights: throughput of a 7B judge on a GPU
without downloading it) use a real tokenizer: the embedded Gemma-3-270M's, which ships with the
package (never one trained on the benchmark prompts). Its vocabulary (262k) is not the named
configs' (Mistral's 32k), so the model's vocabulary is set to the tokenizer's: the output head
then costs what Gemma's does (about 1.07 G multiply-adds per token for a 4096-wide model, some
15% over Mistral-7B's 7.2 G), which the JSON records. Mean prompt tokens are reported so a
reader can compare with the Mistral tokenizer's counts.

Each mode runs in its own subprocess (``isolate=False`` runs them in-process), so the peak RSS
and GPU memory figures belong to that mode alone.

Example:
    prometheus-reward bench --model embedded --data vicuna_eval.json --limit 16 --max-new-tokens 256 \\
        --json benchmarks/results/cpu.json
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .config import JudgeConfig
from .metaeval.data import DataError

MODES = ("sequential", "generate:padded", "generate", "expected:padded", "expected", "direct", "raw-forward")
# what the vLLM engine runs (the others time transformers internals: plain generate, padding, raw forward)
VLLM_MODES = ("generate", "expected", "direct")
EXTRA_MODES = ("direct:unshared", "generate:continuous", "expected:continuous", "generate:padded:full-top-p")
# what a mode's ":" flags change in the judge it times
MODE_FLAGS: dict[str, dict[str, Any]] = {
    "padded": {"batching": "padded"}, "continuous": {"batching": "continuous"}, "unshared": {"prefix_sharing": False},
    "full-top-p": {"model_kwargs": {"sampler": "transformers"}},
}
STOPS = ("auto", "eos", "drawn", "fixed")
SHAPES = ("rows", "grpo")
GRPO_PROMPTS, GRPO_COMPLETIONS = 8, 8

# Named random-init sizes: real architectures, random weights, for throughput on a GPU without
# downloading weights. Prometheus 2 7B is a Mistral-7B-Instruct-v0.2 fine-tune. The vocabulary
# is replaced by the real tokenizer's (see the module).
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


def _bench_judge_defaults() -> JudgeConfig:
    return JudgeConfig(model="embedded")


@dataclass
class BenchConfig:
    """Every knob of a benchmark run; ``judge`` holds the evaluator options (declared once, in
    :class:`~prometheus_reward.config.JudgeConfig`: model, dtype, device_map, max_batch_tokens,
    batching, ...).

    Example:
        >>> BenchConfig(limit=2, stop="fixed").resolved_stop()
        'fixed'
    """

    judge: JudgeConfig = field(default_factory=_bench_judge_defaults)
    data: str | None = None  # None: the pinned Vicuna set (downloaded once, SHA-256 checked)
    limit: int = 16
    modes: list[str] = field(default_factory=lambda: list(MODES))
    max_new_tokens: int = 256
    stop: str = "auto"
    random_init: str | None = None
    rubric: str = "helpfulness"
    seed: int = 0
    isolate: bool = True
    raw_batch_sizes: list[int] = field(default_factory=lambda: [1, 4, 16, 64])
    shape: str = "rows"
    max_model_len: int = 4096  # the vLLM engine's context (the KV cache it plans for)

    def __post_init__(self) -> None:
        if isinstance(self.judge, dict):
            self.judge = JudgeConfig(**self.judge)
        # the rules every mode runs under, recorded as run: no retries (every mode does the same
        # work), any answer mass (random or smoke weights put little there), the bench's seed
        self.judge = dataclasses.replace(self.judge, max_retries=0, min_score_mass=0.0, seed=self.seed)
        if self.judge.engine_name == "vllm" and set(self.modes) - set(VLLM_MODES):
            raise ValueError(f"the vllm engine runs the bench modes {', '.join(VLLM_MODES)}; not "
                             f"{', '.join(sorted(set(self.modes) - set(VLLM_MODES)))} (transformers only)")
        if self.judge.engine_name not in ("transformers", "vllm"):
            raise ValueError(f"the bench times a local engine (transformers or vllm), not {self.judge.engine_name!r}")
        if self.random_init is not None and self.judge.engine_name != "transformers":
            raise ValueError("--random-init builds a transformers model: use --engine transformers")
        if self.stop not in STOPS:
            raise ValueError(f"stop must be one of {STOPS}, got {self.stop!r}")
        if self.shape not in SHAPES:
            raise ValueError(f"shape must be one of {SHAPES}, got {self.shape!r}")
        unknown = set(self.modes) - set(MODES) - set(EXTRA_MODES)
        if unknown:
            raise ValueError(f"unknown bench modes: {sorted(unknown)}; choose from {MODES + EXTRA_MODES}")

    def resolved_stop(self) -> str:
        if self.stop != "auto":
            return self.stop
        return "drawn" if self.random_init else "eos"


# -- data --------------------------------------------------------------------------------------------
def resolve_data(data: str | None) -> str:
    """The data file: ``data`` as given, or the pinned Vicuna set (downloaded once into the cache,
    SHA-256 checked; see :func:`prometheus_reward.metaeval.download.resolve_benchmark_data`)."""
    from .metaeval.download import resolve_benchmark_data

    return str(resolve_benchmark_data("vicuna", data))


def load_user_prompts(path: str, limit: int, rubric: str = "helpfulness") -> list[str]:
    """Absolute-grading user prompts from a data file: rows with a fully rendered prompt (the
    Prometheus benchmark files) are used as they are; rows with instruction/response fields
    are rendered with ``rubric``.

    Example:
        >>> load_user_prompts("tests/fixtures/benchmarks/vicuna_eval.json", 1)[0][:20]  # doctest: +SKIP
        '###Task Description:'
    """
    from .io import pick_column, read_rows
    from .templates import absolute_prompt

    rows = read_rows(path, limit)
    if not rows:
        raise DataError(f"{path} has no rows")
    prompts = []
    for index, row in enumerate(rows):
        text = row.get("instruction")
        if isinstance(text, str) and text.startswith("###Task Description:"):
            prompts.append(text)
            continue
        instruction = row[pick_column(row, None, ("instruction", "prompt", "question"), "instruction")]
        response = row[pick_column(row, None, ("response", "completion", "answer", "response 1"), "response")]
        if not isinstance(instruction, str) or not isinstance(response, str):
            raise DataError(f"{path}: row {index}: instruction and response must be strings")
        prompts.append(absolute_prompt(instruction, response, rubric, row.get("reference_answer")))
    return prompts


def grpo_prompts(path: str, prompts: int = GRPO_PROMPTS, completions: int = GRPO_COMPLETIONS) -> list[str]:
    """GRPO-shaped prompts: ``prompts`` instructions x ``completions`` responses each, so rows of a
    group share the template header and the instruction. Built from rendered benchmark rows: group
    g keeps row g's instruction, reference answer and rubric, and takes the responses of the
    ``completions`` rows after it (real response lengths; whether they answer that instruction
    does not matter for throughput)."""
    from .metaeval.data import render_absolute_prompt, split_absolute_prompt

    rows = load_user_prompts(path, None)
    fields = [split_absolute_prompt(p) for p in rows]
    seen: dict[str, int] = {}
    firsts = []
    for k, f in enumerate(fields):  # one group per distinct instruction
        if f.instruction not in seen:
            seen[f.instruction] = k
            firsts.append(k)
    if len(firsts) < prompts or len(fields) < completions:
        raise DataError(f"{path} has too few rows for {prompts} x {completions} GRPO-shaped prompts")
    out = []
    for g in firsts[:prompts]:
        for c in range(completions):
            out.append(render_absolute_prompt(fields[g], response=fields[(g + c) % len(fields)].response))
    return out


def feedback_lengths(path: str, tokenizer: Any) -> list[int]:
    """Token lengths of every GPT-4 feedback in the data file, written as the evaluator would
    (``"<feedback> [RESULT] <score>"``), with this tokenizer (no special tokens)."""
    from .io import read_rows

    lengths = []
    for row in read_rows(path, None):
        feedbacks, scores = row.get("gpt4_feedback"), row.get("gpt4_score")
        if isinstance(feedbacks, str):
            feedbacks, scores = [feedbacks], [scores]
        for k, feedback in enumerate(feedbacks or []):
            if not isinstance(feedback, str):
                continue
            score = scores[k] if isinstance(scores, list) and k < len(scores) else ""
            text = f"{feedback.strip()} [RESULT] {score}".strip()
            lengths.append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))
    if not lengths:
        raise DataError(f"stop='drawn' needs GPT-4 feedbacks (gpt4_feedback) in {path}")
    return lengths


def draw_lengths(pool: list[int], n: int, seed: int, cap: int) -> list[int]:
    """``n`` lengths drawn (seeded) from ``pool``, each capped at ``cap``.

    >>> draw_lengths([10, 20, 300], 6, 0, 256)
    [20, 20, 10, 20, 256, 20]
    """
    rng = random.Random(seed)
    return [min(rng.choice(pool), cap) for _ in range(n)]


# -- the evaluator -------------------------------------------------------------------------------------
def bench_tokenizer():
    """The real tokenizer random-init models use: the embedded Gemma-3-270M's (ships with the package)."""
    from transformers import AutoTokenizer

    from .embedded import embedded_model_path

    return AutoTokenizer.from_pretrained(embedded_model_path())


def build_judge(cfg: BenchConfig, **judge_changes: Any):
    """The judge a bench mode times: ``cfg.judge`` with ``judge_changes``, never retrying (every mode
    does the same work) and accepting any answer mass (random or smoke weights put little there)."""
    import torch

    from .backends.transformers import TransformersBackend
    from .judge import Judge

    jc = dataclasses.replace(cfg.judge, **judge_changes)  # cfg.judge holds the bench's rules (see BenchConfig)
    if jc.engine_name == "vllm":  # one process, one device; the context bounds the KV cache it plans;
        # eager on CPU (graph compilation there costs minutes and the CPU backend gains little)
        jc = dataclasses.replace(jc, model_kwargs={"max_model_len": cfg.max_model_len, "in_process": True,
                                                   "enforce_eager": not torch.cuda.is_available(), **dict(jc.model_kwargs)})
    if cfg.random_init is None:
        return Judge.from_config(jc)
    from transformers import AutoConfig, AutoModelForCausalLM

    if cfg.random_init in RANDOM_INIT_CONFIGS:
        spec = dict(RANDOM_INIT_CONFIGS[cfg.random_init])
        config = AutoConfig.for_model(spec.pop("model_type"), **spec)
    else:
        config = AutoConfig.from_pretrained(cfg.random_init)
    tokenizer = bench_tokenizer()
    config.vocab_size = len(tokenizer)  # the real tokenizer's vocabulary (see the module)
    config.bos_token_id, config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    on_gpu = torch.cuda.is_available() and jc.device_map != "cpu"
    dtype = torch.float32 if jc.dtype == "auto" and not on_gpu else (
        torch.bfloat16 if jc.dtype == "auto" else getattr(torch, jc.dtype))
    torch.manual_seed(cfg.seed)
    with torch.device("cuda" if on_gpu else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    backend = TransformersBackend(model, tokenizer, model_id=f"random-init:{cfg.random_init}", family="raw",
                                  max_batch_tokens=jc.max_batch_tokens, max_forward_tokens=jc.max_forward_tokens,
                                  batching=jc.batching, prefix_sharing=jc.prefix_sharing,
                                  sampler=jc.model_kwargs.get("sampler", "nucleus"))
    return Judge.from_backend(backend, jc)


# -- timing ----------------------------------------------------------------------------------------------
def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _raw_forward(backend, formatted: list[str], batch_size: int) -> float:
    """Seconds for the bare forward passes of every prompt, ``batch_size`` prompts a pass
    (length-sorted, left-padded, last-position logits only, no cache)."""
    import torch

    rows = sorted((backend.encode(t) for t in formatted), key=len, reverse=True)
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(rows), batch_size):
            input_ids, mask = backend._pad(rows[i : i + batch_size])
            position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
            backend.model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, logits_to_keep=1,
                          use_cache=False)
    if torch.cuda.is_available() and backend.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _sequential(judge, formatted: list[str], cfg: BenchConfig, lengths: list[int] | None) -> tuple[int, int]:
    """Plain ``model.generate`` one prompt at a time with the judge's sampling settings (top-k off,
    as the judge runs it); (tokens generated, parsed verdicts)."""
    import torch

    from .parsing import parse_absolute

    backend, sampling = judge.backend, judge.sampling
    model, tokenizer = backend.model, backend.tokenizer
    stop = cfg.resolved_stop()
    eos = set(backend._eos_ids())
    generated = parsed = 0
    if cfg.seed is not None:
        torch.manual_seed(cfg.seed)
    with torch.inference_mode():
        for k, text in enumerate(formatted):
            ids = torch.tensor([backend.encode(text)], device=backend.device)
            top = lengths[k] if stop == "drawn" else cfg.max_new_tokens
            least = 0 if stop == "eos" else top  # drawn / fixed: EOS suppressed up to the length
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                                 temperature=sampling.temperature, top_p=sampling.top_p, top_k=0,
                                 repetition_penalty=sampling.repetition_penalty, max_new_tokens=top,
                                 min_new_tokens=least or None, eos_token_id=sorted(eos) or None,
                                 pad_token_id=tokenizer.pad_token_id)
            new = out[0, ids.shape[1]:].tolist()
            end = next((i for i, t in enumerate(new) if t in eos), len(new)) if stop == "eos" else len(new)
            generated += end
            parsed += parse_absolute(tokenizer.decode(new[:end], skip_special_tokens=True)) is not None
    return generated, parsed


def run_mode(cfg: BenchConfig, mode: str) -> dict[str, Any]:
    """Time one mode in this process; returns its figures."""
    import torch

    from .templates import ABS_SYSTEM_PROMPT

    path = resolve_data(cfg.data)
    user_prompts = grpo_prompts(path) if cfg.shape == "grpo" else load_user_prompts(path, cfg.limit, cfg.rubric)
    changes: dict[str, Any] = {}
    for flag in mode.split(":")[1:]:
        for name, value in MODE_FLAGS[flag].items():
            changes[name] = {**cfg.judge.model_kwargs, **value} if name == "model_kwargs" else value
    judge = build_judge(cfg, **changes)
    backend = judge.backend
    formatted = [backend.format(ABS_SYSTEM_PROMPT, p) for p in user_prompts]
    token_counts = backend.count_tokens(formatted)
    stop = cfg.resolved_stop()
    lengths = None
    if stop == "drawn":
        lengths = draw_lengths(feedback_lengths(path, backend.tokenizer), len(formatted), cfg.seed, cfg.max_new_tokens)
        backend.exact_lengths = dict(zip(formatted, lengths))
    overrides: dict[str, Any] = {"max_new_tokens": cfg.max_new_tokens}
    if stop == "fixed":
        overrides["min_new_tokens"] = cfg.max_new_tokens
    facts = _engine_facts(backend)
    cuda = facts["cuda"]

    # warm-up: kernels, allocator, tokenizer caches
    backend.read_answers(formatted[:1], ["1", "2", "3", "4", "5"])
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()

    base = mode.split(":")[0]
    extra: dict[str, Any] = {}
    parsed = None
    completion_tokens = 0
    start = time.perf_counter()
    if mode == "sequential":
        completion_tokens, parsed = _sequential(judge, formatted, cfg, lengths)
    elif mode == "raw-forward":
        sizes = sorted({1, *(b for b in cfg.raw_batch_sizes if b <= len(formatted))})
        per_size = {b: _raw_forward(backend, formatted, b) for b in sizes}
        best = min(per_size, key=per_size.get)
        extra = {"best_batch_size": best, "seconds_per_batch_size": per_size,
                 "single_prompt_tokens_per_s": sum(token_counts) / per_size[1]}
        start = time.perf_counter() - per_size[best]  # the floor: the best batching found
    elif base in ("generate", "expected", "direct"):
        stats_before = backend.stats.completion_tokens
        grades = judge.grade_rendered(user_prompts, mode=base, **overrides)
        completion_tokens = backend.stats.completion_tokens - stats_before
        # a smoke model rarely writes "[RESULT] N": the parse rate is reported, not required
        parsed = sum(bool(g.samples) and g.samples[0] is not None for g in grades) if base != "direct" else None
        truncated = [g.error for g in grades if g.truncated]
        if truncated:
            raise RuntimeError(f"{len(truncated)} prompts do not fit the context: {truncated[0]}")
        if base != "direct":
            extra["batching"] = backend.last_batching
            if facts["engine"] == "transformers":
                extra["sampler"] = backend.sampler if backend.last_batching == "padded" else "nucleus"
        else:
            extra["prefix_sharing"] = getattr(backend, "prefix_sharing", "prefix caching (vLLM)")
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
        "mean_prompt_tokens": sum(token_counts) / n,
        "prompt_tokens_per_s": sum(token_counts) / elapsed,
        "completion_tokens": completion_tokens,
        "completion_tokens_per_s": completion_tokens / elapsed,
        "stop": stop if base in ("sequential", "generate", "expected") else None,
        "drawn_lengths": lengths if base in ("sequential", "generate", "expected") else None,
        "parsed": parsed,
        "peak_rss_mb": _peak_rss_mb(),
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "device": facts["device"] + (f" ({torch.cuda.get_device_name()})" if cuda else f" ({torch.get_num_threads()} threads)"),
        "engine": facts["engine"],
        "engine_kwargs": dict(judge.config.model_kwargs) if facts["engine"] == "vllm" else None,
        "model": backend.model_id,
        "vocab_size": facts["vocab_size"],
        **extra,
    }


def _engine_facts(backend: Any) -> dict[str, Any]:
    """Engine name, device, whether it is a CUDA device, vocabulary size: from a transformers model
    or a vLLM engine."""
    import torch

    if hasattr(backend, "llm"):  # the vLLM engine
        model_config = backend.llm.llm_engine.model_config
        cuda = torch.cuda.is_available()
        return {"engine": "vllm", "device": "cuda" if cuda else "cpu", "cuda": cuda,
                "vocab_size": int(model_config.get_vocab_size())}
    return {"engine": "transformers", "device": str(backend.device), "cuda": torch.cuda.is_available() and backend.device.type == "cuda",
            "vocab_size": int(backend.model.config.vocab_size)}


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
    """Run every requested mode; adds the ratios (see :func:`add_ratios`)."""
    from tqdm.auto import tqdm

    results: dict[str, dict[str, Any]] = {}
    for mode in tqdm(cfg.modes, desc="bench", unit="mode", disable=not progress):
        results[mode] = _run_isolated(cfg, mode) if cfg.isolate else run_mode(cfg, mode)
    return add_ratios(results)


def add_ratios(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``ratio_to_sequential`` for every mode; ``ratio_to_padded`` for ``generate`` / ``expected``
    (against their ``:padded`` runs); direct's ``efficiency_vs_raw_forward`` (prompt tokens/s
    over the floor's)."""
    base = results.get("sequential", {}).get("judgments_per_s")
    for mode, figures in results.items():
        figures["ratio_to_sequential"] = figures["judgments_per_s"] / base if base else None
        padded = results.get(f"{mode.split(':')[0]}:padded")
        if padded is not None and padded is not figures and mode.split(":")[0] in ("generate", "expected"):
            figures["ratio_to_padded"] = figures["judgments_per_s"] / padded["judgments_per_s"]
    floor = results.get("raw-forward")
    for mode in ("direct", "direct:unshared"):
        if mode in results and floor is not None:
            results[mode]["efficiency_vs_raw_forward"] = (
                results[mode]["prompt_tokens_per_s"] / floor["prompt_tokens_per_s"])
    return results


def run_metadata(argv: list[str] | None = None) -> dict[str, Any]:
    """Where and how a run was made: command, machine, versions, date, load average."""
    import torch
    import transformers

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(__file__)).stdout.strip() or None
    except OSError:
        commit = None
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    if argv is None:  # run from the command line: its own words; in-process callers pass theirs
        argv = sys.argv[1:] if sys.argv[1:2] == ["bench"] else ["(in-process)"]
    return {
        "command": " ".join(["prometheus-reward", *argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "gpu": gpu},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "git_commit": commit},
        "load_average_start": list(os.getloadavg()),
    }


def results_table(results: dict[str, dict[str, Any]], cfg: BenchConfig):
    from rich.table import Table

    any_result = next(iter(results.values()))
    stop = cfg.resolved_stop()
    table = Table(title=f"bench: {any_result['model']} on {any_result['device']}, {any_result['judgments']} prompts "
                        f"(mean {any_result['mean_prompt_tokens']:.0f} tokens), stop={stop}, "
                        f"max {cfg.max_new_tokens} new tokens")
    for column in ("mode", "judgments/s", "tokens generated", "prompt tok/s", "s total", "peak RSS MB",
                   "peak GPU MB", "x sequential", "x padded", "note"):
        table.add_column(column, justify="left" if column in ("mode", "note") else "right")
    for mode, r in results.items():
        note = ""
        if "efficiency_vs_raw_forward" in r:
            note = f"{r['efficiency_vs_raw_forward']:.2f} of raw-forward tok/s"
        elif mode == "raw-forward":
            note = f"best batch {r['best_batch_size']}; one at a time {r['single_prompt_tokens_per_s']:.0f} tok/s"
        elif r.get("parsed") is not None:
            note = f"{r['parsed']}/{r['judgments']} parsed" + (f", {r['batching']}" if r.get("batching") else "")
        table.add_row(
            mode, f"{r['judgments_per_s']:.3f}", str(r["completion_tokens"]), f"{r['prompt_tokens_per_s']:.0f}",
            f"{r['seconds']:.1f}", f"{r['peak_rss_mb']:.0f}", "-" if r["peak_gpu_mb"] is None else f"{r['peak_gpu_mb']:.0f}",
            "-" if r["ratio_to_sequential"] is None else f"{r['ratio_to_sequential']:.2f}",
            f"{r['ratio_to_padded']:.2f}" if r.get("ratio_to_padded") else "-", note,
        )
    return table


def print_table(table: Any, file: Any = None) -> None:
    """Print a rich table to ``file`` (default: standard output). Into a terminal it fits the
    terminal; into a file or a pipe (a log) it is printed at its full natural width, every cell on
    one line, instead of squeezed to rich's 80 columns.

    Example:
        >>> import io
        >>> from rich.table import Table
        >>> table = Table("mode", "note")
        >>> table.add_row("direct", "x" * 90)
        >>> out = io.StringIO()
        >>> print_table(table, out)
        >>> "x" * 90 in out.getvalue()
        True
    """
    from rich.console import Console
    from rich.measure import Measurement

    console = Console(file=file)
    if not console.is_terminal:
        unbounded = Console(file=file, width=1_000_000)
        width = Measurement.get(unbounded, unbounded.options, table).maximum
        console = Console(file=file, width=max(width, 1))
    console.print(table)


def _worker(payload: str) -> None:
    cfg = BenchConfig(**json.loads(payload))
    print(json.dumps({cfg.modes[0]: run_mode(cfg, cfg.modes[0])}))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        _worker(sys.argv[2])
    else:  # pragma: no cover
        print("use `prometheus-reward bench`", file=sys.stderr)
        sys.exit(2)
