"""Best-of-n sampling with a Prometheus judge: sample n completions per prompt from a policy,
rerank them, and write the chosen completion with every score (and, optionally, rejection-sampling
SFT rows for TRL's SFTTrainer). The work is the library's
:func:`prometheus_reward.best_of_n.write_best_of_n`, the same driver as the ``best-of-n`` command.

Usage:
    python recipes/best_of_n.py --config configs/best_of_n_smoke.yaml

Judge cost per prompt: ``n`` calls (absolute), ``n (n - 1)`` (pairwise round-robin) or
``2 (n - 1)`` (pairwise knockout); judgments are cached in sqlite, so a rerun is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trl import TrlParser

from prometheus_reward.config import JudgeConfig, JudgingConfig, RerankConfig, flat_dataclass

# judge_model, judge_mode...; strategy, tournament, ranking: generated from the library's configs
JudgeArguments = flat_dataclass("JudgeArguments", (JudgeConfig, JudgingConfig, RerankConfig))


@dataclass
class BestOfNArguments:
    """What to sample and where to write it (the judge and ranking are :data:`JudgeArguments`)."""

    input: str = field(metadata={"help": "prompts file (JSONL/JSON/CSV/Parquet) with a prompt column"})
    output: str = field(metadata={"help": "JSONL: completions, scores, chosen"})
    sft_output: str | None = field(default=None, metadata={"help": "rejection-sampling SFT rows {prompt, completion}"})
    min_score: float | None = field(default=None, metadata={"help": "SFT rows only when the best score reaches this"})
    prompt_column: str = field(default="prompt")
    rubric: str = field(default="helpfulness")
    policy: str = field(default="embedded:tiny-random", metadata={"help": "policy model: hub id, folder or embedded alias"})
    policy_dtype: str = field(default="auto")
    n: int = field(default=4)
    max_new_tokens: int = field(default=128, metadata={"help": "policy completion length"})
    temperature: float = field(default=1.0, metadata={"help": "policy sampling temperature"})
    top_p: float = field(default=1.0, metadata={"help": "policy nucleus sampling"})
    batch_size: int = field(default=8)
    seed: int = field(default=0)
    cache: str | None = field(default=None, metadata={"help": "sqlite cache (default $PROMETHEUS_REWARD_CACHE)"})
    limit: int | None = field(default=None)


def main(args: BestOfNArguments, judge_args: Any):
    import torch

    from prometheus_reward import CachedJudge, Judge
    from prometheus_reward.config import from_object
    from prometheus_reward.io import read_rows
    from prometheus_reward.best_of_n import load_policy, write_best_of_n

    torch.manual_seed(args.seed)
    rows = read_rows(args.input, args.limit)
    policy, tokenizer = load_policy(args.policy, dtype=args.policy_dtype)
    judge = CachedJudge(Judge.from_config(from_object(JudgeConfig, judge_args, flat=True)), args.cache)
    try:
        summary = write_best_of_n(
            rows, policy, tokenizer, judge, output=args.output, n=args.n, rubric=args.rubric,
            prompt_column=args.prompt_column, rerank_config=from_object(RerankConfig, judge_args, flat=True),
            judging=from_object(JudgingConfig, judge_args, flat=True),
            generation={"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_p": args.top_p},
            batch_size=args.batch_size, sft_output=args.sft_output, min_score=args.min_score,
        )
        print(f"wrote {summary.rows} rows to {args.output} ({summary.chosen} with a chosen completion, "
              f"{summary.sft_rows} SFT rows); cache {judge.stats()}")
    finally:
        judge.close()
    return summary


def make_parser() -> TrlParser:
    return TrlParser((BestOfNArguments, JudgeArguments))


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
