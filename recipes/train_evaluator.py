"""Train your own evaluator: SFT of a causal LM (LoRA by default) on Prometheus-format data, with
TRL's ``SFTTrainer``.

Data: the Feedback Collection and Preference Collection (hub ids or local files in their column
layout), this library's graded / compared rows (``prometheus-reward grade`` / ``compare`` output,
or your own labels), or rendered benchmark-style prompts. Prompts are rendered through the
library's templates and the judge's chat format, so training and judging see the same bytes; the
loss is on the evaluator's output (``feedback [RESULT] N``) only. See ``docs/training.md``.

Every knob lives in a dataclass read by ``trl.TrlParser`` from the command line and a YAML file:
:class:`EvaluatorDataArguments` (data), ``JudgeFormatArguments`` (the judge's chat format:
``judge_family``, ``judge_relative_variant``, from :class:`prometheus_reward.config.JudgeConfig`),
``SFTConfig`` (training: ``max_length`` is also the prompt + output token budget) and
``ModelConfig`` (base model, ``use_peft`` / ``lora_*``, ``load_in_4bit`` for QLoRA where
bitsandbytes is installed).

Usage:
    python recipes/train_evaluator.py --config configs/train_evaluator_smoke.yaml        # CPU, seconds
    accelerate launch recipes/train_evaluator.py --config configs/train_evaluator_gpu.yaml \\
        --datasets prometheus-eval/Feedback-Collection --output_dir outputs/evaluator-absolute

The output folder holds the adapter (or the full model with ``use_peft: false``), the tokenizer,
and ``evaluator_training.json`` (data report, settings, loss log, wall time). Next:
``prometheus-reward meta-eval --benchmark vicuna --model BASE --adapter OUTPUT_DIR ...``.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import ModelConfig, SFTConfig, SFTTrainer, TrlParser, get_peft_config, get_quantization_config

from prometheus_reward.config import JudgeConfig, flat_dataclass
from prometheus_reward.training.data import BAD_ROW_POLICIES, DEFAULT_DATASETS, SCHEMAS

logger = logging.getLogger("train_evaluator")
LOG_FILE = "evaluator_training.json"

# the judge's chat format and response guards, declared once in config.py
JudgeFormatArguments = flat_dataclass(
    "JudgeFormatArguments", (JudgeConfig,),
    only=("judge_family", "judge_relative_variant", "judge_strip_reasoning", "judge_neutralize_markers"),
    doc="The prompt format the trained evaluator will be judged with.")


@dataclass
class EvaluatorDataArguments:
    """What to train on."""

    datasets: list[str] = field(default_factory=lambda: list(DEFAULT_DATASETS), metadata={
        "help": "hub dataset ids or local files (JSONL, JSON, CSV, Parquet), each in one of the schemas "
                f"({', '.join(SCHEMAS)}); mixed schemas are fine"})
    dataset_config: str | None = field(default=None, metadata={"help": "hub dataset configuration name"})
    dataset_split: str = field(default="train", metadata={"help": "hub dataset split"})
    schema: str = field(default="auto", metadata={"help": f"auto (from the columns) or one of {', '.join(SCHEMAS)}"})
    rubric: str | None = field(default=None, metadata={
        "help": "default rubric of graded / compared rows without a 'rubric' column (preset, YAML file or text)"})
    limit: int | None = field(default=None, metadata={"help": "only the first N rows of each dataset"})
    on_bad_row: str = field(default="skip", metadata={
        "help": f"a row that cannot be used: skip (counted, logged, in {LOG_FILE}) or raise "
                f"(choices: {', '.join(BAD_ROW_POLICIES)})"})
    swapped_feedback: bool = field(default=True, metadata={
        "help": "also train the B-first order of compared rows that carry 'feedback_swapped'"})


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers
    import trl

    import prometheus_reward

    return {"prometheus_reward": getattr(prometheus_reward, "__version__", "dev"), "torch": torch.__version__,
            "transformers": transformers.__version__, "trl": trl.__version__, "peft": peft.__version__,
            "python": platform.python_version()}


def _token_stats(dataset) -> dict[str, Any]:
    lengths = [len(ids) for ids in dataset["input_ids"]]
    targets = [sum(label != -100 for label in labels) for labels in dataset["labels"]]
    return {"examples": len(lengths), "tokens_total": sum(lengths), "tokens_mean": round(sum(lengths) / len(lengths), 1),
            "tokens_max": max(lengths), "target_tokens_mean": round(sum(targets) / len(targets), 1)}


def main(data_args: EvaluatorDataArguments, judge_args: Any, training_args: SFTConfig, model_args: ModelConfig) -> SFTTrainer:
    """Train; returns the trainer (``state.log_history`` holds the losses). Writes the model or
    adapter, the tokenizer and ``evaluator_training.json`` to ``output_dir``."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from prometheus_reward.embedded import resolve_model_path
    from prometheus_reward.training.sft import prepare_training_data

    started = time.time()
    name = model_args.model_name_or_path
    if not name:
        raise ValueError("set model_name_or_path: the base model to train (hub id, folder or 'embedded')")
    path = resolve_model_path(name)
    tokenizer = AutoTokenizer.from_pretrained(path, revision=model_args.model_revision)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # the tokenizer and architecture decide the chat family as they will for the judge (unless judge_family is set)
    dataset, report, renderer = prepare_training_data(
        data_args.datasets, tokenizer, name, family=judge_args.judge_family,
        relative_variant=judge_args.judge_relative_variant,
        model_config=AutoConfig.from_pretrained(path, revision=model_args.model_revision),
        strip_reasoning=judge_args.judge_strip_reasoning, neutralize_markers=judge_args.judge_neutralize_markers,
        max_length=training_args.max_length,
        schema=data_args.schema, rubric=data_args.rubric, config=data_args.dataset_config,
        split=data_args.dataset_split, limit=data_args.limit, on_bad_row=data_args.on_bad_row,
        swapped_feedback=data_args.swapped_feedback)
    data_seconds = time.time() - started
    logger.warning("training data: %d examples (%s); skipped %d rows; %d prompts cut to max_length",
                   len(dataset), dict(report.examples), report.skipped_rows, report.truncated)

    quantization = get_quantization_config(model_args)
    if quantization is not None:
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is None:
            raise ValueError("load_in_4bit / load_in_8bit (QLoRA) need the bitsandbytes package; install it or "
                             "train plain LoRA")
    model_kwargs: dict[str, Any] = {"dtype": model_args.dtype, "revision": model_args.model_revision}
    if model_args.attn_implementation:
        model_kwargs["attn_implementation"] = model_args.attn_implementation
    if quantization is not None:
        from trl import get_kbit_device_map

        model_kwargs.update(quantization_config=quantization, device_map=get_kbit_device_map())
    model = AutoModelForCausalLM.from_pretrained(path, **model_kwargs)
    trainer = SFTTrainer(model=model, args=training_args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=get_peft_config(model_args))
    train_started = time.time()
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    train_seconds = time.time() - train_started
    trainer.save_model(training_args.output_dir)

    judge = {"model": name, "adapter": training_args.output_dir if model_args.use_peft else None, **renderer.settings()}
    if not model_args.use_peft:
        judge["model"] = training_args.output_dir
    log = {
        "base_model": name,
        "judge": judge,
        "data": {"datasets": list(data_args.datasets), "schema": data_args.schema, "rubric": data_args.rubric,
                 "limit": data_args.limit, **report.to_dict(), "tokens": _token_stats(dataset)},
        "lora": {k: getattr(model_args, k) for k in ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules",
                                                       "use_rslora", "use_dora", "load_in_4bit")}
        if model_args.use_peft else None,
        "training": {k: getattr(training_args, k) for k in (
            "max_length", "learning_rate", "lr_scheduler_type", "warmup_steps", "num_train_epochs", "max_steps",
            "per_device_train_batch_size", "gradient_accumulation_steps", "gradient_checkpointing", "bf16",
            "seed")},
        "loss": {"first": _first_last(trainer, "loss")[0], "last": _first_last(trainer, "loss")[1],
                 "train_loss": result.training_loss},
        "log_history": trainer.state.log_history,
        "seconds": {"data": round(data_seconds, 1), "train": round(train_seconds, 1),
                    "total": round(time.time() - started, 1)},
        "versions": _versions(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
    }
    Path(training_args.output_dir).mkdir(parents=True, exist_ok=True)
    (Path(training_args.output_dir) / LOG_FILE).write_text(json.dumps(log, indent=2, default=str) + "\n", encoding="utf-8")
    adapter = f" --adapter {judge['adapter']}" if judge["adapter"] else ""
    print(f"wrote {training_args.output_dir}; judge it next, e.g.\n  prometheus-reward meta-eval --benchmark vicuna "
          f"--model {judge['model']}{adapter} --family {judge['family']} --output-dir {training_args.output_dir}/meta-eval")
    return trainer


def _first_last(trainer: SFTTrainer, key: str) -> tuple[float | None, float | None]:
    values = [entry[key] for entry in trainer.state.log_history if key in entry]
    return (values[0], values[-1]) if values else (None, None)


def make_parser() -> TrlParser:
    return TrlParser((EvaluatorDataArguments, JudgeFormatArguments, SFTConfig, ModelConfig))


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
