"""Command-line options shared by the subcommands: how to build a Judge, and the summary table."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any, Sequence

from . import DEFAULT_EVALUATOR


def add_judge_arguments(parser: argparse.ArgumentParser, default_model: str = DEFAULT_EVALUATOR) -> None:
    """--model, --dtype, --device-map, --adapter, --seed and the batching/context knobs."""
    group = parser.add_argument_group("evaluator")
    group.add_argument("--model", default=default_model,
                       help="hub id, local folder, 'embedded' (Gemma-3-270M smoke model) or 'embedded:tiny-random'")
    group.add_argument("--dtype", default="auto", help="auto, bfloat16, float16 or float32")
    group.add_argument("--device-map", default=None, help="e.g. auto, cuda:0, cpu")
    group.add_argument("--adapter", default=None, help="a peft LoRA adapter (folder or hub id) on top of --model")
    group.add_argument("--family", default=None, choices=["prometheus-2", "prometheus-1", "auto", "raw"],
                       help="chat format (default: detected from the model id)")
    group.add_argument("--max-batch-tokens", type=int, default=None,
                       help="token budget of one generation batch (default 16k CPU, 64k GPU)")
    group.add_argument("--max-forward-tokens", type=int, default=None,
                       help="token budget of one forward-only batch (direct mode; default 2k CPU, = --max-batch-tokens GPU)")
    group.add_argument("--max-input-tokens", type=int, default=None, help="prompt budget (default: context - new tokens)")
    group.add_argument("--seed", type=int, default=None)
    remote = parser.add_argument_group("remote evaluator (OpenAI-compatible servers: vLLM, SGLang, TGI, llama.cpp)")
    remote.add_argument("--openai-base-url", action="append", default=None,
                        help="judge through this server instead of loading --model locally (repeat for replicas)")
    remote.add_argument("--openai-api", default="completions", choices=["completions", "chat"])
    remote.add_argument("--openai-api-key-env", default="OPENAI_API_KEY",
                        help="environment variable holding the API key (never pass keys on the command line)")
    remote.add_argument("--openai-tokenizer", default="auto",
                        help="tokenizer for exact chat formatting and token counts ('auto': try --model; 'none')")
    remote.add_argument("--request-timeout", type=float, default=120.0, help="seconds per HTTP request")
    remote.add_argument("--max-concurrency", type=int, default=64, help="HTTP requests in flight")
    remote.add_argument("--max-attempts", type=int, default=4, help="tries per request (5xx, timeouts)")


def add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("judging")
    group.add_argument("--mode", default="generate", choices=["generate", "expected", "direct"])
    group.add_argument("--samples", type=int, default=1, help="judgments per row, averaged (papers: 3)")
    group.add_argument("--max-new-tokens", type=int, default=None, help="feedback length cap (default 1024)")
    group.add_argument("--temperature", type=float, default=None)
    group.add_argument("--top-p", type=float, default=None)


def generation_overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = {"max_new_tokens": "max_new_tokens", "temperature": "temperature", "top_p": "top_p"}
    return {key: getattr(args, attr) for key, attr in names.items() if getattr(args, attr, None) is not None}


def judge_from_args(args: argparse.Namespace):
    """Build the Judge the options describe (local transformers, or HTTP when base URLs are given)."""
    from .judge import Judge

    if getattr(args, "openai_base_url", None):
        import os

        tokenizer = None if args.openai_tokenizer == "none" else args.openai_tokenizer
        return Judge.from_openai(
            args.openai_base_url,
            model=args.model,
            api_key=os.environ.get(args.openai_api_key_env),
            seed=args.seed,
            max_input_tokens=args.max_input_tokens,
            api=args.openai_api,
            tokenizer=tokenizer,
            family=args.family,
            timeout=args.request_timeout,
            max_concurrency=args.max_concurrency,
            max_attempts=args.max_attempts,
        )
    kwargs: dict[str, Any] = {}
    if args.family:
        kwargs["family"] = args.family
    if args.max_batch_tokens:
        kwargs["max_batch_tokens"] = args.max_batch_tokens
    if getattr(args, "max_forward_tokens", None):
        kwargs["max_forward_tokens"] = args.max_forward_tokens
    return Judge.from_pretrained(
        args.model,
        dtype=args.dtype,
        device_map=args.device_map,
        adapter=args.adapter,
        max_input_tokens=args.max_input_tokens,
        seed=args.seed,
        **kwargs,
    )


def score_summary_table(title: str, scores: Sequence[int | None], values: Sequence[float | None], extra: dict[str, Any] | None = None):
    """A rich table: rows, failures, mean score, and a histogram of the integer scores."""
    from rich.table import Table

    table = Table(title=title, show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    valid = [v for v in values if v is not None]
    table.add_row("rows", str(len(scores)))
    table.add_row("failures (unscorable)", str(sum(v is None for v in values)))
    table.add_row("mean score", f"{sum(valid) / len(valid):.3f}" if valid else "n/a")
    for key, value in (extra or {}).items():
        table.add_row(key, str(value))
    counts = Counter(s for s in scores if s is not None)
    peak = max(counts.values(), default=0)
    for score in range(1, 6):
        bar = "#" * round(30 * counts[score] / peak) if peak else ""
        table.add_row(f"score {score}", f"{counts[score]:>5} {bar:<30}")
    return table
