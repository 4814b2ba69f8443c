"""Measured run, step 1: the MT-Bench meta-evaluation file -> evaluator training rows.

Each of the 320 rendered prompts carries 3 GPT-4 judgments (gpt4_feedback, gpt4_score); every
judgment becomes one row in the library's ``rendered`` schema (instruction = the rendered prompt,
as meta-eval sends it; feedback; score). Rows whose prompt + target + EOS exceed --max-length
tokens (Gemma-3-270M tokenizer, the judge's chat format) are left out rather than cut, so that
no GPT-4 label describes text the model never sees; the counts go to the summary.

Usage: python prepare_mt_bench.py /path/to/mt_bench_eval.json train_rows.jsonl --max-length 1024
"""

import argparse
import json
import sys
from collections import Counter

from transformers import AutoConfig, AutoTokenizer

from prometheus_reward.embedded import resolve_model_path
from prometheus_reward.training.data import read_examples
from prometheus_reward.training.sft import PromptRenderer

parser = argparse.ArgumentParser()
parser.add_argument("source")
parser.add_argument("output")
parser.add_argument("--max-length", type=int, default=1024)
parser.add_argument("--model", default="embedded")
args = parser.parse_args()

bench = json.load(open(args.source, encoding="utf-8"))
rows = [{"instruction": r["instruction"], "feedback": f, "score": s, "bench_row": i, "gpt4_run": k}
        for i, r in enumerate(bench) for k, (f, s) in enumerate(zip(r["gpt4_feedback"], r["gpt4_score"]))]
examples, report = read_examples(rows, schema="rendered", source="mt_bench")
path = resolve_model_path(args.model)
renderer = PromptRenderer(AutoTokenizer.from_pretrained(path), args.model, model_config=AutoConfig.from_pretrained(path))
kept = [rows[e.row] for e in examples if len(renderer.encode(e)["input_ids"]) <= args.max_length]
with open(args.output, "w", encoding="utf-8") as handle:
    for row in kept:
        handle.write(json.dumps({k: row[k] for k in ("instruction", "feedback", "score")}, ensure_ascii=False) + "\n")
summary = {"judgments": len(rows), "usable": len(examples), "skipped": report.to_dict()["skipped"],
           "kept_within_max_length": len(kept), "max_length": args.max_length,
           "distinct_prompts": len({r["bench_row"] for r in kept}),
           "scores": dict(sorted(Counter(r["score"] for r in kept).items()))}
json.dump(summary, sys.stdout, indent=2)
print()
