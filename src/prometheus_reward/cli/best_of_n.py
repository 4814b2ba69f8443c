"""``prometheus-reward best-of-n IN -o OUT --policy P``: sample n completions per prompt, keep the
judge's best (and optionally write rejection-sampling SFT rows)."""

from __future__ import annotations

import argparse
from typing import Any

from .common import (
    UserError,
    add_cache_options,
    add_judge_options,
    add_judging_options,
    add_rerank_options,
    add_skip_option,
    check_judge_paths,
    check_model_path,
    check_output,
    config_from,
    judge_configs,
    judge_from_args,
    load_or_explain,
    pick,
    positive_int,
    read_input,
    rubric_option,
    score_summary_table,
)


def make_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("best-of-n", help="sample n completions with a policy and keep the judge's best")
    p.add_argument("input", help="JSONL/JSON/CSV/Parquet with a prompt column (text or messages)")
    p.add_argument("-o", "--output", required=True, help="JSONL: completions, scores, chosen, per prompt")
    p.add_argument("--policy", required=True, help="the policy model (hub id, folder, 'embedded', 'embedded:tiny-random')")
    p.add_argument("-n", "--n", type=positive_int, default=4, help="completions per prompt")
    p.add_argument("--rubric", default=None, help="preset, YAML/JSON file or text (a 'rubric' column wins)")
    p.add_argument("--prompt-column", default=None)
    p.add_argument("--reference-column", default=None)
    p.add_argument("--policy-dtype", default="auto")
    p.add_argument("--policy-max-new-tokens", type=int, default=128)
    p.add_argument("--policy-temperature", type=float, default=1.0)
    p.add_argument("--policy-top-p", type=float, default=1.0)
    p.add_argument("--batch-size", type=positive_int, default=8, help="prompts per generate/judge round")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N rows")
    p.add_argument("--sft-output", default=None, help="also write rejection-sampling SFT rows {prompt, completion}")
    p.add_argument("--min-score", type=float, default=None, help="SFT rows only when the best score reaches this")
    add_skip_option(p)
    add_rerank_options(p)
    add_cache_options(p)
    add_judge_options(p)
    add_judging_options(p)
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..config import RerankConfig
    from ..best_of_n import load_policy, write_best_of_n

    # everything the user typed is checked before a model loads
    judge_config, judging = judge_configs(args)
    rerank = config_from(RerankConfig, args)
    check_output(args.output, inputs=[args.input])
    if args.sft_output:
        check_output(args.sft_output, "--sft-output", inputs=[args.input, args.output])
    rubric = rubric_option(args.rubric)
    rows = read_input(args.input, args.limit, args.skip_bad_rows, args.output)
    prompt_col = pick(rows[0], args.prompt_column, ("prompt", "instruction", "question", "messages"), "prompt",
                      "--prompt-column")
    if rubric is None and not any(row.get("rubric") is not None for row in rows):
        raise UserError("give --rubric or a 'rubric' column in the data")
    check_model_path("--policy", args.policy)
    check_judge_paths(judge_config)
    policy, tokenizer = load_or_explain("--policy", args.policy, lambda: load_policy(
        args.policy, dtype=args.policy_dtype, device_map=args.device_map))
    judge = judge_from_args(args, cached=True, config=judge_config)
    summary = write_best_of_n(
        rows, policy, tokenizer, judge, output=args.output, n=args.n, rubric=rubric, prompt_column=prompt_col,
        reference_column=args.reference_column or "reference_answer", rerank_config=rerank, judging=judging,
        generation={"max_new_tokens": args.policy_max_new_tokens, "temperature": args.policy_temperature,
                    "top_p": args.policy_top_p},
        batch_size=args.batch_size, sft_output=args.sft_output, min_score=args.min_score,
    )
    extra: dict[str, Any] = {"n": args.n, "strategy": rerank.strategy, "bad rows": summary.bad_rows}
    if summary.unreadable:
        extra["malformed lines set aside"] = f"{summary.unreadable} -> {summary.skipped_output}"
    if hasattr(judge, "stats"):
        extra.update({f"cache {k}": v for k, v in judge.stats().items()})
    if args.sft_output:
        extra["sft rows"] = summary.sft_rows
    best = summary.best_scores
    Console().print(score_summary_table(
        f"{args.output} (best of {args.n}, judge {judge.model_id}, mode={judging.mode})",
        [None if s is None else max(1, min(5, round(s))) if rerank.strategy == "absolute" else None for s in best],
        best, extra,
    ))
    return 0
