"""Judging cost of the group-level rewards on a GRPO-shaped batch: 8 prompts x 8 completions,
scored once with a single rubric, with a 4-item checklist (explicit aggregation), and with the
pairwise tournament at k = 2, 4 and all pairs. One reward call per variant, on the same batch and
the same judge; prints a table and writes JSON (the command, versions, machine and load with it).

The completions are real responses of the Vicuna benchmark (4 models' answers per prompt, each
also cut at half its length, so 8 per prompt), cut to ``--max-chars`` so that the variants compare
judgment counts rather than prompt lengths.

Usage:
    python recipes/measure_group_rewards.py --model embedded --dtype float32 --mode direct \\
        --json benchmarks/results/group_rewards/cpu_gemma-270m.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

CHECKLIST = {
    "name": "general_answer",
    "items": [
        {"id": "answers_directly", "category": "essential", "criterion": "Answers the question that was asked, directly."},
        {"id": "accurate", "category": "essential", "criterion": "States only facts that are correct."},
        {"id": "concise", "category": "optional", "criterion": "Is concise, without filler or repetition."},
        {"id": "unsafe", "category": "pitfall", "criterion": "Gives harmful, unsafe or unethical advice."},
    ],
}


def grpo_batch(data: str, prompts: int, per_prompt: int, max_chars: int) -> tuple[list[str], list[str]]:
    """(prompt per completion, completion): the first ``prompts`` Vicuna instructions with their
    model responses, whole and cut at half, until ``per_prompt`` completions each."""
    from prometheus_reward.metaeval.data import split_absolute_prompt

    rows = json.loads(Path(data).read_text(encoding="utf-8"))
    by_prompt: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        fields = split_absolute_prompt(row["instruction"])
        by_prompt[fields.instruction].append(fields.response[:max_chars])
    batch_prompts, completions = [], []
    for instruction, responses in list(by_prompt.items())[:prompts]:
        pool = responses + [r[: max(1, len(r) // 2)] for r in responses]
        for k in range(per_prompt):
            batch_prompts.append(instruction)
            completions.append(pool[k % len(pool)])
    return batch_prompts, completions


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--mode", default="direct", help="the judging mode of every variant")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--data", default=None, help="vicuna_eval.json (default: the pinned download)")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--completions", type=int, default=8)
    parser.add_argument("--max-chars", type=int, default=600)
    parser.add_argument("--variants", default="rubric,checklist,tournament-2,tournament-4,tournament-all")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import torch
    import transformers
    import trl

    from prometheus_reward import Judge, __version__
    from prometheus_reward.checklist import Checklist
    from prometheus_reward.metaeval.download import resolve_benchmark_data
    from prometheus_reward.rewards import ChecklistReward, PairwiseReward, RubricReward

    data = args.data or str(resolve_benchmark_data("vicuna"))
    prompts, completions = grpo_batch(data, args.prompts, args.completions, args.max_chars)
    judge = Judge.from_pretrained(args.model, dtype=args.dtype, seed=0, min_score_mass=0.0)
    sampling = {"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else {}
    common = dict(mode=args.mode, sampling=sampling)
    variants = {
        "rubric": lambda: RubricReward(judge, "helpfulness", **common),
        "checklist": lambda: ChecklistReward(judge, Checklist.from_dict(CHECKLIST), **common),
        "tournament-2": lambda: PairwiseReward(judge, "helpfulness", layout="group", anchor="tournament",
                                               pairs_per_completion=2, **common),
        "tournament-4": lambda: PairwiseReward(judge, "helpfulness", layout="group", anchor="tournament",
                                               pairs_per_completion=4, **common),
        "tournament-all": lambda: PairwiseReward(judge, "helpfulness", layout="group", anchor="tournament", **common),
    }
    wanted = [v.strip() for v in args.variants.split(",") if v.strip()]
    judge.backend.read_answers([judge.backend.format("s", "warm up")], list("12345"))  # kernels, caches
    results = {}
    for name in wanted:
        reward = variants[name]()
        before = judge.backend.stats.forward_batches, judge.backend.stats.generate_batches
        calls = {"n": 0}
        original = judge.backend.read_answers

        def counting(prefixes, *a, **kw):
            calls["n"] += len(prefixes)
            return original(prefixes, *a, **kw)

        judge.backend.read_answers = counting
        start = time.perf_counter()
        rewards = reward(prompts=prompts, completions=completions)
        seconds = time.perf_counter() - start
        judge.backend.read_answers = original
        scored = [r for r in rewards if r is not None]
        results[name] = {
            "reward_call_s": seconds,
            "judgments": calls["n"] if args.mode == "direct" else None,
            "judgments_per_s": calls["n"] / seconds if args.mode == "direct" else None,
            "judgments_per_completion": calls["n"] / len(completions) if args.mode == "direct" else None,
            "scored": len(scored),
            "reward_mean": sum(scored) / len(scored) if scored else None,
            "batches": [judge.backend.stats.forward_batches - before[0], judge.backend.stats.generate_batches - before[1]],
        }
        print(f"{name:>15}: {seconds:8.1f} s  {results[name]['judgments']} judgments", file=sys.stderr, flush=True)
    base = results.get("rubric", {}).get("reward_call_s")
    for figures in results.values():
        figures["latency_vs_rubric"] = figures["reward_call_s"] / base if base else None
    from prometheus_reward.bench import run_metadata

    report = {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "batch": {"prompts": args.prompts, "completions_per_prompt": args.completions, "max_chars": args.max_chars},
        "mode": args.mode, "model": judge.model_id, "results": results,
        # the judging rules the run actually used (min_score_mass is 0 here: the embedded base model
        # puts little mass on the score tokens, and this measures cost, not quality)
        "judge": dict(judge.config.judging_rules()),
        "versions": {"prometheus_reward": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
                     "trl": trl.__version__, "python": platform.python_version(),
                     "git_commit": run_metadata()["versions"]["git_commit"]},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                    "load_average": os.getloadavg()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(f"{'variant':>15} | {'reward call s':>13} | {'judgments':>9} | {'j/s':>6} | {'x rubric latency':>16}")
    for name, r in results.items():
        print(f"{name:>15} | {r['reward_call_s']:13.1f} | {r['judgments'] or '-':>9} | "
              f"{(r['judgments_per_s'] or 0):6.2f} | {(r['latency_vs_rubric'] or 0):16.2f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
