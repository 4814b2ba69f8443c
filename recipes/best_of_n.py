"""Best-of-n sampling with a Prometheus judge: sample n completions per prompt from a policy,
rerank them, and write the chosen completion with every score (and, optionally, rejection-sampling
SFT rows for TRL's SFTTrainer).

Usage:
    python recipes/best_of_n.py --config configs/best_of_n_smoke.yaml

Judge cost per prompt: ``n`` calls (absolute), ``2 (n - 1)`` (pairwise knockout) or ``n (n - 1)``
(pairwise round-robin); judgments are cached in sqlite, so a rerun is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import TrlParser


@dataclass
class BestOfNArguments:
    """Every knob of the recipe."""

    input: str = field(metadata={"help": "prompts file (JSONL/JSON/CSV/Parquet) with a prompt column"})
    output: str = field(metadata={"help": "JSONL: completions, scores, chosen"})
    sft_output: str | None = field(default=None, metadata={"help": "rejection-sampling SFT rows {prompt, completion}"})
    min_score: float | None = field(default=None, metadata={"help": "SFT rows only when the best score reaches this"})
    prompt_column: str = field(default="prompt")
    policy: str = field(default="embedded:tiny-random", metadata={"help": "policy model: hub id, folder or embedded alias"})
    policy_dtype: str = field(default="auto")
    n: int = field(default=4)
    max_new_tokens: int = field(default=128, metadata={"help": "policy completion length"})
    temperature: float = field(default=1.0)
    top_p: float = field(default=1.0)
    batch_size: int = field(default=8)
    seed: int = field(default=0)
    judge_model: str = field(default="prometheus-eval/prometheus-7b-v2.0")
    judge_dtype: str = field(default="auto")
    judge_device_map: str | None = field(default=None)
    rubric: str = field(default="helpfulness")
    strategy: str = field(default="absolute", metadata={"help": "absolute or pairwise"})
    tournament: str = field(default="knockout", metadata={"help": "pairwise: knockout or round-robin"})
    ranking: str = field(default="win-rate", metadata={"help": "round-robin: win-rate or bradley-terry"})
    judge_mode: str = field(default="expected")
    judge_samples: int = field(default=1)
    judge_max_new_tokens: int | None = field(default=None)
    cache: str | None = field(default=None, metadata={"help": "sqlite cache (default $PROMETHEUS_REWARD_CACHE)"})
    limit: int | None = field(default=None)


def main(args: BestOfNArguments) -> list:
    import torch
    from tqdm.auto import tqdm

    from prometheus_reward import Judge
    from prometheus_reward.best_of_n import best_of_n, load_policy, sft_row
    from prometheus_reward.cache import open_cache
    from prometheus_reward.io import JsonlWriter, chunks, read_rows

    torch.manual_seed(args.seed)
    rows = read_rows(args.input, args.limit)
    policy, tokenizer = load_policy(args.policy, dtype=args.policy_dtype)
    judge = Judge.from_pretrained(args.judge_model, dtype=args.judge_dtype, device_map=args.judge_device_map,
                                  seed=args.seed)
    cache = open_cache(args.cache)
    judge_kwargs = {"max_new_tokens": args.judge_max_new_tokens} if args.judge_max_new_tokens else {}
    results = []
    sft = JsonlWriter(args.sft_output) if args.sft_output else None
    try:
        with JsonlWriter(args.output) as out:
            for batch in tqdm(list(chunks(rows, args.batch_size)), desc="best-of-n", unit="batch"):
                batch_results = best_of_n(
                    policy, tokenizer, [r[args.prompt_column] for r in batch], args.n, judge,
                    [r.get("rubric") or args.rubric for r in batch], strategy=args.strategy,
                    tournament=args.tournament, ranking=args.ranking, mode=args.judge_mode,
                    samples=args.judge_samples, cache=cache, batch_size=args.batch_size, judge_kwargs=judge_kwargs,
                    max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                )
                out.write_many(
                    {**row, "completions": r.completions, "scores": r.scores, "best_index": r.best, "chosen": r.chosen,
                     "comparisons": [c.__dict__ for c in r.rerank.comparisons]}
                    for row, r in zip(batch, batch_results)
                )
                if sft:
                    sft.write_many(
                        sft_row(row[args.prompt_column], r.chosen) for row, r in zip(batch, batch_results)
                        if r.best is not None and (args.min_score is None or (r.scores[r.best] or float("-inf")) >= args.min_score)
                    )
                results.extend(batch_results)
    finally:
        if sft:
            sft.close()
        cache.close()
    print(f"wrote {len(results)} rows to {args.output}; cache {cache.stats()}")
    return results


if __name__ == "__main__":
    (arguments,) = TrlParser(BestOfNArguments).parse_args_and_config()
    main(arguments)
