"""Where the time of one GRPO step goes: policy generation, judging, and the rest (old/ref
log-probs, loss, backward, optimizer step), for each judging mode.

It runs the GRPO smoke recipe (``configs/grpo_smoke.yaml`` unless ``--config``) with the trainer's
methods wrapped in timers, once per mode, loading the judge before training so that its load time
is not counted, and prints a table. The first step is a warm-up and is left out.

Usage:
    python recipes/measure_grpo_step.py                                  # tiny judge, 3 modes
    python recipes/measure_grpo_step.py --judge-model embedded --modes direct expected --steps 2
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _grpo_recipe() -> Any:
    spec = importlib.util.spec_from_file_location("recipe_grpo", REPO / "recipes" / "grpo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _timed(timings: dict[str, list[float]], key: str, fn: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            timings[key].append(time.perf_counter() - start)

    return wrapper


def measure(mode: str, config: Path, steps: int, overrides: list[str]) -> dict[str, float]:
    """Seconds per step (mean over steps after the first) of each phase, for one mode."""
    from trl import GRPOTrainer

    recipe = _grpo_recipe()
    with tempfile.TemporaryDirectory() as out:
        args = ["--config", str(config), "--output_dir", out, "--max_steps", str(steps + 1), "--judge_mode", mode,
                "--dataset_name", str(REPO / "examples" / "prompts_smoke.jsonl"), *overrides]
        script_args, training_args, model_args, reward_args = recipe.make_parser().parse_args_and_config(args=args)
        reward = recipe.build_reward(reward_args, layout="group")
        reward.judge  # load now: the load is not part of a step
        timings: dict[str, list[float]] = defaultdict(list)
        training_args.model_init_kwargs = {"dtype": model_args.dtype}
        trainer = GRPOTrainer(
            model=recipe.resolve_model_path(model_args.model_name_or_path),
            reward_funcs=[reward],
            args=training_args,
            train_dataset=recipe.load_prompts(script_args),
        )
        trainer._generate = _timed(timings, "generation", trainer._generate)
        trainer._calculate_rewards = _timed(timings, "judging", trainer._calculate_rewards)
        trainer._generate_and_score_completions = _timed(timings, "rollout", trainer._generate_and_score_completions)
        trainer.training_step = _timed(timings, "step", trainer.training_step)
        trainer.train()
    kept = {k: v[1:] or v for k, v in timings.items()}  # drop the warm-up step
    mean = {k: sum(v) / len(v) for k, v in kept.items()}
    step = mean["step"]
    other_rollout = mean["rollout"] - mean["generation"] - mean["judging"]
    return {
        "step_s": step,
        "generation_s": mean["generation"],
        "judging_s": mean["judging"],
        "update_s": step - mean["rollout"] + other_rollout,
        "judge_share": mean["judging"] / step,
        "completions_per_step": training_args.per_device_train_batch_size,
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "grpo_smoke.yaml")
    parser.add_argument("--modes", nargs="+", default=["direct", "expected", "generate"])
    parser.add_argument("--steps", type=int, default=2, help="measured steps per mode (after one warm-up step)")
    parser.add_argument("--judge-model", default=None, help="override judge_model (e.g. 'embedded' for Gemma-3-270M)")
    parser.add_argument("--judge-max-new-tokens", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    overrides: list[str] = []
    if args.judge_model:
        overrides += ["--judge_model", args.judge_model]
    if args.judge_max_new_tokens:
        overrides += ["--judge_max_new_tokens", str(args.judge_max_new_tokens)]
    rows = []
    for mode in args.modes:
        row = {"mode": mode, **measure(mode, args.config, args.steps, overrides)}
        rows.append(row)
        print(json.dumps(row), flush=True)

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"GRPO step time split ({args.judge_model or 'config judge'})")
    for column in ("mode", "step s", "generation s", "judging s", "update s", "judge share"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["mode"], f"{row['step_s']:.2f}", f"{row['generation_s']:.2f}", f"{row['judging_s']:.2f}",
                      f"{row['update_s']:.2f}", f"{row['judge_share']:.0%}")
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
