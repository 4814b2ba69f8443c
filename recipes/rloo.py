"""RLOO with a Prometheus judge as the reward (TRL ``RLOOTrainer``).

Every knob lives in a dataclass read by ``trl.TrlParser`` from the command line and a YAML file:
TRL's ``ScriptArguments`` (dataset), ``RLOOConfig`` (training), ``ModelConfig`` (policy) and
:class:`prometheus_reward.rewards.RewardArguments` (judge and reward).

Usage:
    python recipes/rloo.py --config configs/rloo_smoke.yaml                 # 2 CPU steps, tiny models
    accelerate launch recipes/rloo.py --config configs/rloo_gpu.yaml        # Qwen2.5-1.5B + Prometheus 2 7B
    python recipes/rloo.py --config configs/rloo_smoke.yaml --mode direct   # any field can be overridden

The dataset needs a ``prompt`` column (text or chat messages); optional ``rubric`` and
``reference_answer`` columns override the default rubric and reference per row.
"""

from __future__ import annotations

from typing import Any

from trl import RLOOConfig, RLOOTrainer, ModelConfig, ScriptArguments, TrlParser

from prometheus_reward.embedded import resolve_model_path
from prometheus_reward.io import load_train_dataset
from prometheus_reward.rewards import RewardArguments, build_reward



def load_prompts(script_args: ScriptArguments) -> Any:
    """The train split: a local file (JSONL/JSON/CSV/Parquet) or a hub dataset, with a 'prompt' column."""
    return load_train_dataset(script_args.dataset_name, script_args.dataset_config, script_args.dataset_train_split)


def main(script_args: ScriptArguments, training_args: RLOOConfig, model_args: ModelConfig, reward_args: RewardArguments) -> RLOOTrainer:
    """Train; returns the trainer (its ``state.log_history`` holds the logged metrics)."""
    model_init_kwargs = dict(training_args.model_init_kwargs or {})
    model_init_kwargs.setdefault("dtype", model_args.dtype)
    if model_args.attn_implementation:
        model_init_kwargs.setdefault("attn_implementation", model_args.attn_implementation)
    if model_args.model_revision and model_args.model_revision != "main":
        model_init_kwargs.setdefault("revision", model_args.model_revision)
    training_args.model_init_kwargs = model_init_kwargs

    reward = build_reward(reward_args, layout="group")
    trainer = RLOOTrainer(
        model=resolve_model_path(model_args.model_name_or_path),
        reward_funcs=[reward],
        args=training_args,
        train_dataset=load_prompts(script_args),
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    return trainer


def make_parser() -> TrlParser:
    return TrlParser((ScriptArguments, RLOOConfig, ModelConfig, RewardArguments))


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
