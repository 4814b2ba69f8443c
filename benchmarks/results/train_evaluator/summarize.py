"""Measured run, last step: the before / after meta-evaluations and the training log -> results.json
and results.md in this folder (small files; no weights).

Usage: python summarize.py WORK_DIR [CODE_COMMIT]   (the commit the run's code was at, recorded as given)
"""

import json
import shutil
import sys
from pathlib import Path

from prometheus_reward.metaeval import metrics as M

work = Path(sys.argv[1])
here = Path(__file__).resolve().parent


def load(name):
    folder = work / name
    results = json.loads((folder / "results.json").read_text())
    rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines() if line.strip()]
    return results, rows


def side(results, rows):
    n = len(rows)
    parsed = [r["samples"][0] if r.get("samples") else None for r in rows]
    gold_mean = [r["gold_mean"] for r in rows]
    gold = [r["gold"] for r in rows]
    m = results["metrics"]
    written = [(p, g) for p, g in zip(parsed, gold_mean) if p is not None]
    parsed_corr = M.correlations([p for p, _ in written], [g for _, g in written], 0) if len(written) > 2 else {}
    return {
        "n": n,
        "result_written": sum(p is not None for p in parsed),
        "result_rate": sum(p is not None for p in parsed) / n,
        "pearson_expected": m["expected"]["pearson"],
        "pearson_integer": m["integer"]["pearson"],
        "exact_integer": m["integer"]["agreement"]["exact"],
        "within_1_integer": m["integer"]["agreement"]["within_1"],
        "exact_expected": m["expected"]["agreement"]["exact"],
        "exact_parsed_only": M.exact_agreement(parsed, gold)["exact"],
        "pearson_parsed_only": (parsed_corr.get("pearson") or {}).get("value"),
        "mean_expected": m["expected"]["mean_score"],
        "mean_integer": m["integer"]["mean_score"],
        "gold_mean": m["gold_mean_score"],
        "unscorable": m["unscorable"],
        "forced": m.get("forced"),
        "below_min_score_mass": sum("min_score_mass" in (r.get("error") or "") for r in rows),
        "score_mass_mean": (sum(r["score_mass"] for r in rows if r.get("score_mass") is not None)
                            / max(1, sum(r.get("score_mass") is not None for r in rows))),
        "runtime_s": results.get("runtime_s"),
        "scores_written": {str(k): parsed.count(k) for k in range(1, 6)},
    }


before, after = side(*load("before")), side(*load("after"))
train_log = json.loads((work / "adapter" / "evaluator_training.json").read_text())
prepare = json.loads((work / "prepare.json").read_text())
losses = [float(e["loss"]) for e in train_log["log_history"] if "loss" in e]
wall = {f"{p.name[len('seconds_'):]}_s": int(p.read_text()) for p in work.glob("seconds_*")}
wall["total_s"] = sum(wall.values())
run_before = json.loads((work / "before" / "run.json").read_text())
shutil.copy(work / "adapter" / "evaluator_training.json", here / "evaluator_training.json")
out = {
    "what": "embedded Gemma-3-270M + LoRA, trained on MT-Bench GPT-4 judgments, meta-evaluated on Vicuna (first 40 rows)",
    "before": before, "after": after, "training": {
        "examples": train_log["data"]["tokens"]["examples"], "tokens": train_log["data"]["tokens"],
        "loss_first": train_log["loss"]["first"], "loss_last": train_log["loss"]["last"],
        "train_loss": train_log["loss"]["train_loss"], "seconds": train_log["seconds"],
        # one optimizer step is 4 examples: single steps are noisy, so compare the first and last four
        "loss_first4_mean": sum(losses[:4]) / len(losses[:4]), "loss_last4_mean": sum(losses[-4:]) / len(losses[-4:]),
        "lora": train_log["lora"], "settings": train_log["training"], "judge": train_log["judge"]},
    "data": prepare, "wall_times_s": wall,
    "meta_eval_settings": {k: run_before.get(k) for k in ("benchmark", "limit", "mode", "samples", "generation")},
    "versions": {**train_log["versions"], "code_commit": sys.argv[2] if len(sys.argv) > 2 else None},
    "machine": {**train_log["machine"], "cpus": 2},
}
(here / "results.json").write_text(json.dumps(out, indent=2) + "\n")


def f(x, d=3):
    if isinstance(x, dict):  # a correlation: its value and bootstrap 95% interval
        if x.get("value") is None:
            return "n/a"
        return f"{x['value']:.{d}f} [{x['ci_low']:.2f}, {x['ci_high']:.2f}]" if x.get("ci_low") is not None else f"{x['value']:.{d}f}"
    return "n/a" if x is None else f"{x:.{d}f}"


rows = [
    ("`[RESULT]` written (of 40)", f"{before['result_written']} ({before['result_rate']:.0%})", f"{after['result_written']} ({after['result_rate']:.0%})"),
    ("Pearson vs GPT-4, expected score (rows scored: before %d, after %d)" % (before["n"] - before["unscorable"], after["n"] - after["unscorable"]),
     f(before["pearson_expected"]), f(after["pearson_expected"])),
    ("Pearson vs GPT-4, parsed `[RESULT]` (only the rows that wrote one)", f(before["pearson_integer"]), f(after["pearson_integer"])),
    ("exact agreement, parsed `[RESULT]` (no result = miss)", f(before["exact_parsed_only"]), f(after["exact_parsed_only"])),
    ("forced readings (no `[RESULT]` written; read after an appended marker)", str(before["forced"]), str(after["forced"])),
    ("unscorable (under 0.1 of the probability on the score tokens)", str(before["below_min_score_mass"]), str(after["below_min_score_mass"])),
    ("mean probability on the score tokens", f(before["score_mass_mean"]), f(after["score_mass_mean"])),
    ("exact agreement, expected score rounded", f(before["exact_expected"]), f(after["exact_expected"])),
    ("mean expected score (GPT-4 mean: %.2f)" % before["gold_mean"], f(before["mean_expected"], 2), f(after["mean_expected"], 2)),
    ("meta-eval wall time", f"{wall['meta_eval_before_s']} s", f"{wall['meta_eval_after_s']} s"),
]
table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
t = out["training"]
(here / "results.md").write_text(f"""# Measured run: training an evaluator on CPU

The embedded Gemma-3-270M (a small *base* model) fine-tuned with a LoRA adapter on MT-Bench's
GPT-4 judgments by `recipes/train_evaluator.py`, then `prometheus-reward meta-eval` on the Vicuna
set (other questions, same GPT-4 judging protocol) before and after, first 40 rows. Brackets:
bootstrap 95% intervals; with 40 rows none of the correlations is distinguishable from zero,
what changed for sure is the format: the trained adapter writes a verdict and puts its
probability on the score tokens.

| Vicuna, 40 rows | before (base) | after (LoRA) |
|---|---|---|
{table}

Training: {t['examples']} examples ({prepare['distinct_prompts']} MT-Bench prompts x up to 3 GPT-4 judgments that fit
{prepare['max_length']} tokens untruncated; {t['tokens']['tokens_total']} tokens, target {t['tokens']['target_tokens_mean']} tokens
on average), loss {t['loss_first4_mean']:.3f} (mean of the first 4 steps) -> {t['loss_last4_mean']:.3f} (last 4); train loss {t['train_loss']:.3f};
training {wall['train_s']} s wall ({t['seconds']['train']} s in the trainer). Whole run {wall['total_s']} s (the steps' wall times added up).

**MT-Bench is no longer a held-out benchmark for this adapter**: it was trained on MT-Bench's
GPT-4 feedback. Only the Vicuna numbers above are held out (different questions; the same
response models and the same GPT-4 judging prompt family, so the format is shared).

Settings
- base: `embedded` (Gemma-3-270M, fp32), LoRA r={t['lora']['lora_r']}, alpha={t['lora']['lora_alpha']}, dropout {t['lora']['lora_dropout']}, target {t['lora']['lora_target_modules']}
- training: lr {t['settings']['learning_rate']}, {t['settings']['lr_scheduler_type']}, warmup {t['settings']['warmup_steps']}, {t['settings']['max_steps']} optimizer steps ({t['settings']['max_steps'] * t['settings']['per_device_train_batch_size'] * t['settings']['gradient_accumulation_steps']} examples seen of {t['examples']}), batch {t['settings']['per_device_train_batch_size']} x {t['settings']['gradient_accumulation_steps']} accumulation, max_length {t['settings']['max_length']}, seed {t['settings']['seed']}
- data: `rendered` schema: the rendered MT-Bench prompts as they are (what meta-eval sends through `Judge.grade_rendered`), target `feedback [RESULT] score`; rows that did not fit {prepare['max_length']} tokens were left out rather than cut; one GPT-4 feedback that itself contains `[RESULT]` was reported and skipped by the reader
- meta-eval: `--benchmark vicuna --limit 40 --samples 1 --mode expected --max-new-tokens 192 --seed 0` (sampling: temperature 1.0, top_p 0.9, repetition penalty 1.03)
- machine: {out['machine']['platform']}, 2 CPU cores; the 'before' meta-eval and training ran side by side with one thread each, the 'after' meta-eval alone with two, so their wall times are not comparable (other jobs shared the machine too)
- versions: {', '.join(f'{k} {v}' for k, v in out['versions'].items())}

Reproduce (about {round(wall['total_s'] / 60)} minutes here):

```bash
bash benchmarks/results/train_evaluator/run.sh /path/to/benchmark/data /tmp/train_evaluator_run
python benchmarks/results/train_evaluator/summarize.py /tmp/train_evaluator_run
```

Files: `results.json` (all numbers), `evaluator_training.json` (the recipe's training log: data
report, settings, per-step loss), `run.sh`, `prepare_mt_bench.py`, `train_mt_bench.yaml`,
`summarize.py`.
""")
print((here / "results.md").read_text())
