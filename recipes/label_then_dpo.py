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

from trl import DPOConfig, DPOTrainer, TrlParser


@dataclass
class LabelArguments:
    """What to label and with which judge."""

    input: str = field(metadata={"help": "pairs / lists / chosen-rejected file (JSONL, JSON, CSV, Parquet)"})
    labeled_output: str = field(metadata={"help": "preference JSONL (skipped rows go beside it)"})
    judge_model: str = field(default="prometheus-eval/prometheus-7b-v2.0", metadata={"help": "evaluator"})
    judge_dtype: str = field(default="auto")
    judge_device_map: str | None = field(default=None)
    rubric: str = field(default="helpfulness", metadata={"help": "preset, YAML file or rubric text"})
    judge_mode: str = field(default="generate", metadata={"help": "generate, expected or direct"})
    method: str = field(default="pairwise", metadata={"help": "pairwise or absolute"})
    list_pairs: str = field(default="best-vs-worst")
    inconsistent: str = field(default="keep", metadata={"help": "keep or skip order-inconsistent pairs"})
    min_margin: float = field(default=0.0)
    judge_samples: int = field(default=1)
    judge_max_new_tokens: int | None = field(default=None)
    judge_seed: int | None = field(default=0)
    label_batch_size: int = field(default=16)
    cache: str | None = field(default=None, metadata={"help": "sqlite cache (default $PROMETHEUS_REWARD_CACHE)"})
    limit: int | None = field(default=None)


@dataclass
class PolicyArguments:
    """The model DPO trains."""

    model_name_or_path: str = field(default="embedded:tiny-random",
                                    metadata={"help": "hub id, folder, 'embedded' or 'embedded:tiny-random'"})
    dtype: str = field(default="auto")


def label(args: LabelArguments):
    from prometheus_reward import Judge
    from prometheus_reward.labeling import label_preferences

    judge = Judge.from_pretrained(args.judge_model, dtype=args.judge_dtype, device_map=args.judge_device_map,
                                  seed=args.judge_seed)
    overrides = {"max_new_tokens": args.judge_max_new_tokens} if args.judge_max_new_tokens else {}
    summary = label_preferences(
        args.input, judge, args.rubric, output=args.labeled_output, mode=args.judge_mode, method=args.method,
        list_pairs=args.list_pairs, inconsistent=args.inconsistent, min_margin=args.min_margin,
        samples=args.judge_samples, batch_size=args.label_batch_size, cache=args.cache, limit=args.limit,
        **overrides,
    )
    judge.backend.close()
    return summary


def main(label_args: LabelArguments, policy_args: PolicyArguments, training_args: DPOConfig) -> DPOTrainer:
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prometheus_reward.embedded import resolve_model_path

    summary = label(label_args)
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


if __name__ == "__main__":
    parser = TrlParser((LabelArguments, PolicyArguments, DPOConfig))
    main(*parser.parse_args_and_config())
