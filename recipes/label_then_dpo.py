"""Label a preference dataset with a Prometheus judge, then train TRL's DPOTrainer on it.

Labeling is resumable and cached (see :mod:`prometheus_reward.labeling`): rerunning the recipe
after a crash only judges what is missing, then trains on the finished file.

Usage:
    python recipes/label_then_dpo.py --config configs/label_then_dpo_smoke.yaml   # tiny CPU smoke run
    accelerate launch recipes/label_then_dpo.py --config configs/label_then_dpo_gpu.yaml

Every option of the dataclasses below (and of trl.DPOConfig) can be set in the YAML file or on
the command line (``--judge_mode expected``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from trl import DPOConfig, DPOTrainer, TrlParser

from prometheus_reward.config import JudgeConfig, JudgingConfig, flat_dataclass

# judge_model, judge_dtype, judge_mode, judge_max_new_tokens...: generated from the library's configs
JudgeArguments = flat_dataclass("JudgeArguments", (JudgeConfig, JudgingConfig))


@dataclass
class LabelArguments:
    """What to label (the judge is :data:`JudgeArguments`)."""

    input: str = field(metadata={"help": "pairs / lists / chosen-rejected file (JSONL, JSON, CSV, Parquet)"})
    labeled_output: str = field(metadata={"help": "preference JSONL (skipped rows go beside it)"})
    rubric: str = field(default="helpfulness", metadata={"help": "preset, YAML file or rubric text"})
    method: str = field(default="pairwise", metadata={"help": "pairwise or absolute"})
    list_pairs: str = field(default="best-vs-worst")
    inconsistent: str = field(default="keep", metadata={"help": "keep or skip order-inconsistent pairs"})
    min_margin: float = field(default=0.0)
    label_batch_size: int = field(default=16)
    cache: str | None = field(default=None, metadata={"help": "sqlite cache (default $PROMETHEUS_REWARD_CACHE)"})
    limit: int | None = field(default=None)


@dataclass
class PolicyArguments:
    """The model DPO trains."""

    model_name_or_path: str = field(default="embedded:tiny-random",
                                    metadata={"help": "hub id, folder, 'embedded' or 'embedded:tiny-random'"})
    dtype: str = field(default="auto")


def label(args: LabelArguments, judge_args: Any):
    from prometheus_reward import CachedJudge, Judge
    from prometheus_reward.config import from_object
    from prometheus_reward.labeling import label_preferences

    judging = from_object(JudgingConfig, judge_args, flat=True)
    judge = CachedJudge(Judge.from_config(from_object(JudgeConfig, judge_args, flat=True)), args.cache)
    try:
        return label_preferences(
            args.input, judge, args.rubric, output=args.labeled_output, mode=judging.mode, method=args.method,
            list_pairs=args.list_pairs, inconsistent=args.inconsistent, min_margin=args.min_margin,
            samples=judging.samples, batch_size=args.label_batch_size, limit=args.limit,
            **judging.sampling_overrides(),
        )
    finally:
        judge.close()
        judge.backend.close()


def main(label_args: LabelArguments, judge_args: Any, policy_args: PolicyArguments, training_args: DPOConfig) -> DPOTrainer:
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prometheus_reward.embedded import resolve_model_path

    summary = label(label_args, judge_args)
    print(json.dumps(summary.to_dict(), indent=2))
    if summary.pairs == 0:
        raise SystemExit(f"no usable preference pairs in {label_args.labeled_output}; see {summary.skipped_output}")
    # the labeled file is ready for DPO as written; the judge's extra columns ride along unused
    dataset = load_dataset("json", data_files=label_args.labeled_output, split="train")
    path = resolve_model_path(policy_args.model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=policy_args.dtype)
    trainer = DPOTrainer(model=model, args=training_args, train_dataset=dataset, processing_class=tokenizer)
    trainer.train()
    trainer.save_model(training_args.output_dir)
    return trainer


def make_parser() -> TrlParser:
    return TrlParser((LabelArguments, JudgeArguments, PolicyArguments, DPOConfig))


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
