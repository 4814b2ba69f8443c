"""``prometheus-reward bench``: judging throughput and memory, mode by mode (see :mod:`prometheus_reward.bench`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..bench import MODES, RANDOM_INIT_CONFIGS, BenchConfig, results_table, run_bench


def make_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("bench", help="judging throughput and memory per mode")
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--data", required=True, help="prompts: a Prometheus benchmark file or rows with instruction/response")
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, from {', '.join(MODES)}")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--device-map", default=None)
    parser.add_argument("--max-batch-tokens", type=int, default=None)
    parser.add_argument("--random-init", default=None,
                        help=f"random weights of a named size ({', '.join(RANDOM_INIT_CONFIGS)}) or a config.json path")
    parser.add_argument("--rubric", default="helpfulness")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-isolate", action="store_true", help="run all modes in this process")
    parser.add_argument("--json", default=None, help="write {mode: figures} here")
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    cfg = BenchConfig(
        model=args.model, data=args.data, limit=args.limit, modes=[m.strip() for m in args.modes.split(",") if m.strip()],
        max_new_tokens=args.max_new_tokens, dtype=args.dtype, device_map=args.device_map,
        max_batch_tokens=args.max_batch_tokens, random_init=args.random_init, rubric=args.rubric, seed=args.seed,
        isolate=not args.no_isolate,
    )
    results = run_bench(cfg)
    Console().print(results_table(results, cfg))
    if "direct" in results and "raw-forward" in results:
        print(f"direct efficiency vs raw-forward: {results['direct']['efficiency_vs_raw_forward']:.2f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


