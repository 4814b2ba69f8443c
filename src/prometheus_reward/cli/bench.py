"""``prometheus-reward bench``: judging throughput and memory, mode by mode (see :mod:`prometheus_reward.bench`).

The evaluator options are :class:`~prometheus_reward.config.JudgeConfig`'s (generated here with
:func:`~prometheus_reward.cli.common.add_options`), less those that only concern HTTP servers or
the scoring rules (the bench times a local model and never retries).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from ..bench import (EXTRA_MODES, MODES, RANDOM_INIT_CONFIGS, SHAPES, STOPS, VLLM_MODES, BenchConfig, print_table,
                     results_table, run_bench, run_metadata)
from ..config import JudgeConfig
from .common import add_options, config_from

# HTTP-only options, and scoring rules the bench fixes (no retries, any answer mass)
_NOT_BENCH = ("base_urls", "api", "api_key_env", "tokenizer", "request_timeout", "max_concurrency", "max_attempts",
              "max_retries", "min_score_mass", "allow_forced", "relative_variant", "max_input_tokens", "seed", "adapter")


def make_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("bench", help="judging throughput and memory per mode")
    add_options(parser, JudgeConfig, "evaluator (local model)", skip=_NOT_BENCH, defaults={"model": "embedded"})
    parser.add_argument("--data", default=None, help="prompts: a Prometheus benchmark file or rows with "
                        "instruction/response (default: the pinned Vicuna set, downloaded once)")
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--modes", default=None,
                        help=f"comma-separated, from {', '.join(MODES + EXTRA_MODES)} (default: all of them; with "
                             f"--engine vllm: {', '.join(VLLM_MODES)})")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--stop", default="auto", choices=STOPS,
                        help="eos: rows stop at EOS (or max-new-tokens); drawn: each row writes a length drawn from "
                             "the data's GPT-4 feedbacks (the same in every mode); fixed: every row writes "
                             "max-new-tokens; auto: drawn for --random-init, else eos")
    parser.add_argument("--random-init", default=None,
                        help=f"random weights of a named size ({', '.join(RANDOM_INIT_CONFIGS)}) or a config.json path; "
                             "the embedded Gemma-3 tokenizer (the model's vocabulary is set to its size)")
    parser.add_argument("--raw-batch-sizes", default="1,4,16,64", help="batch sizes raw-forward tries (the best is the floor)")
    parser.add_argument("--shape", default="rows", choices=SHAPES,
                        help="rows: the data's prompts; grpo: 8 instructions x 8 responses (shared prefixes)")
    parser.add_argument("--rubric", default="helpfulness")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-isolate", action="store_true", help="run all modes in this process")
    parser.add_argument("--max-model-len", type=int, default=4096, help="--engine vllm: the engine's context length")
    parser.add_argument("--crossover-rows", default=None,
                        help="time padded against continuous batching at these row counts (e.g. 2,4,8,16) and each "
                             "--crossover-lengths, instead of --modes: where batching=auto should go continuous")
    parser.add_argument("--crossover-lengths", default="64,128,256", help="max new tokens of the crossover grid")
    parser.add_argument("--attn-implementation", default=None,
                        help="the local model's attention implementation (e.g. sdpa, eager); default: the model's")
    parser.add_argument("--json", default=None, help="write {meta, config, results} here (benchmarks/results/...)")
    parser.set_defaults(func=main)
    return parser


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(args: argparse.Namespace) -> int:
    judge = config_from(JudgeConfig, args)
    if args.attn_implementation:
        judge = dataclasses.replace(judge, model_kwargs={**judge.model_kwargs, "attn_implementation": args.attn_implementation})
    modes = args.modes or ",".join(VLLM_MODES if judge.engine_name == "vllm" else MODES)
    cfg = BenchConfig(
        judge=judge, data=args.data, limit=args.limit, modes=[m.strip() for m in modes.split(",") if m.strip()],
        max_new_tokens=args.max_new_tokens, stop=args.stop, random_init=args.random_init, rubric=args.rubric,
        seed=args.seed, isolate=not args.no_isolate, shape=args.shape,
        raw_batch_sizes=[int(b) for b in args.raw_batch_sizes.split(",") if b.strip()], max_model_len=args.max_model_len,
    )
    meta = run_metadata(getattr(args, "argv", None))
    if args.crossover_rows:
        return _crossover(args, cfg, meta)
    results = run_bench(cfg)
    meta["load_average_end"] = list(os.getloadavg())
    print_table(results_table(results, cfg))  # a log gets the full width, not 80 columns
    for mode in ("direct", "direct:unshared"):
        if "efficiency_vs_raw_forward" in results.get(mode, {}):
            print(f"{mode} efficiency vs raw-forward: {results[mode]['efficiency_vs_raw_forward']:.2f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"meta": meta, "config": dataclasses.asdict(cfg), "results": results},
                                              indent=2))
    return 0


def _crossover(args: argparse.Namespace, cfg: BenchConfig, meta: dict[str, Any]) -> int:
    from ..bench_crossover import crossover_table, run_crossover

    report = run_crossover(cfg, _ints(args.crossover_rows), _ints(args.crossover_lengths))
    meta["load_average_end"] = list(os.getloadavg())
    print_table(crossover_table(report, cfg))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"meta": meta, "config": dataclasses.asdict(cfg), **report}, indent=2))
    return 0
