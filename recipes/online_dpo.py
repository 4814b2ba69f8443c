"""Online DPO with a Prometheus judge as the pairwise preference (TRL ``OnlineDPOTrainer``,
``trl.experimental.online_dpo``).

The trainer samples two completions per prompt and calls the reward with 2B rows (first half A,
second half B). :class:`~prometheus_reward.rewards.PairwiseReward` (``layout="online_dpo"``)
judges each pair in both orders and returns p(A beats B) and 1 - p, so the trainer's "higher
reward wins" rule picks the judge's preferred sample. ``reward_type: absolute`` grades each
sample on its own instead.

Every knob lives in a dataclass read by ``trl.TrlParser``: TRL's ``ScriptArguments``,
``OnlineDPOConfig``, ``ModelConfig`` and :class:`prometheus_reward.rewards.RewardArguments`.

Usage:
    python recipes/online_dpo.py --config configs/online_dpo_smoke.yaml
    accelerate launch recipes/online_dpo.py --config configs/online_dpo_gpu.yaml
"""

from __future__ import annotations

from typing import Any

from trl import ModelConfig, ScriptArguments, TrlParser
from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

from prometheus_reward.embedded import resolve_model_path
from prometheus_reward.io import load_train_dataset
from prometheus_reward.rewards import RewardArguments, build_reward



def load_prompts(script_args: ScriptArguments) -> Any:
    """The train split: a local file (JSONL/JSON/CSV/Parquet) or a hub dataset, with a 'prompt' column."""
    return load_train_dataset(script_args.dataset_name, script_args.dataset_config, script_args.dataset_train_split)


def main(script_args: ScriptArguments, training_args: OnlineDPOConfig, model_args: ModelConfig, reward_args: RewardArguments) -> OnlineDPOTrainer:
    """Train; returns the trainer (its ``state.log_history`` holds the logged metrics)."""
    model_init_kwargs = dict(training_args.model_init_kwargs or {})
    model_init_kwargs.setdefault("dtype", model_args.dtype)
    if model_args.attn_implementation:
        model_init_kwargs.setdefault("attn_implementation", model_args.attn_implementation)
    training_args.model_init_kwargs = model_init_kwargs

    from transformers import AutoTokenizer

    policy = resolve_model_path(model_args.model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(policy, revision=model_args.model_revision, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    reward = build_reward(reward_args, layout="online_dpo")
    trainer = OnlineDPOTrainer(
        model=policy,
        processing_class=tokenizer,
        reward_funcs=[reward],
        args=training_args,
        train_dataset=load_prompts(script_args),
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    return trainer


def make_parser() -> TrlParser:
    return TrlParser((ScriptArguments, OnlineDPOConfig, ModelConfig, RewardArguments))


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
