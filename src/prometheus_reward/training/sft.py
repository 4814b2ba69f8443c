"""Evaluator examples -> tokenised SFT examples whose prompts are the bytes the judge sends.

:class:`PromptRenderer` renders a prompt the way :class:`~prometheus_reward.judge.Judge` does for
the same row: the user turn from :mod:`prometheus_reward.templates` (``absolute_prompt``,
``relative_prompt`` with the judge's ``relative_variant``; a ``rendered`` row as it is), the
system prompt (``ABS_SYSTEM_PROMPT`` / ``REL_SYSTEM_PROMPT``), then the chat format and BOS rule of
:class:`~prometheus_reward.backends.transformers.TransformersBackend` (the family detected from the
tokenizer and architecture unless given), the judge's response guards (hidden reasoning
stripped, protocol markers neutralised), and the judge's cut plan when a token budget is set
(:data:`~prometheus_reward.truncation.ABSOLUTE_CUTS` / :data:`~prometheus_reward.truncation.RELATIVE_CUTS`:
the reference answer first, then the start of the instruction, then the responses down to their
floor; never the template or the rubric). It reuses the backend's own methods on a tokenizer, so there is no
second copy of those rules.

:meth:`PromptRenderer.encode` tokenises ``prompt`` as the backend does (``backend.encode``) and the
target ``feedback [RESULT] N`` plus EOS without special tokens, and masks the prompt out of the
labels (-100): the loss is on the evaluator's output only. TRL's ``SFTTrainer`` takes such a
pre-tokenised dataset (``input_ids``, ``labels``) as it is, and projects its LM head only where a
label is set. Tokenising the prompt alone (not prompt + completion together) keeps the training
context token-for-token what the judge feeds the model, whatever the tokenizer merges at the
boundary.

Example:
    >>> from transformers import AutoTokenizer                                        # doctest: +SKIP
    >>> renderer = PromptRenderer(AutoTokenizer.from_pretrained(path), "prometheus-eval/prometheus-7b-v2.0")  # doctest: +SKIP
    >>> features = renderer.encode(example, max_length=4096)                          # doctest: +SKIP
    >>> sorted(features)                                                              # doctest: +SKIP
    ['input_ids', 'labels', 'prompt_tokens', 'truncated']
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Sequence

from ..backends.base import Backend
from ..backends.transformers import TransformersBackend
from ..config import JudgeConfig
from ..guards import guard_response
from ..rows import RowError
from ..templates import (
    ABS_SYSTEM_PROMPT,
    DEFAULT_RELATIVE_VARIANT,
    REL_SYSTEM_PROMPT,
    RELATIVE_VARIANTS,
    absolute_prompt,
    detect_family,
    relative_prompt,
)
from ..truncation import ABSOLUTE_CUTS, RELATIVE_CUTS, PromptTooLong, fit_prompt
from .data import DataReport, EvaluatorExample

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
# the judge's cut plan (Judge.grade / Judge.compare use the same constants): one plan, so a
# training prompt stays byte for byte the prompt the judge sends
_ABSOLUTE_GROUPS = ABSOLUTE_CUTS
_RELATIVE_GROUPS = RELATIVE_CUTS


class _TokenizerBackend(TransformersBackend):
    """The text side of :class:`TransformersBackend` (``format``, ``encode``, ``count_tokens``,
    ``truncate``) over a tokenizer alone: training needs the judge's bytes, not its model."""

    def __init__(self, tokenizer: Any, family: str, model_id: str):
        Backend.__init__(self)
        self.tokenizer = tokenizer
        self.family = family
        self.model_id = model_id

    def generate(self, *args: Any, **kwargs: Any):  # pragma: no cover - never called
        raise NotImplementedError("a tokenizer-only backend renders prompts; it cannot generate")

    def read_answers(self, *args: Any, **kwargs: Any):  # pragma: no cover - never called
        raise NotImplementedError("a tokenizer-only backend renders prompts; it has no model")


class PromptRenderer:
    """Render and tokenise evaluator examples exactly as a judge on this tokenizer would see them.

    Args:
        tokenizer: the evaluator's tokenizer (the model being trained).
        model_name: the name the judge will be loaded with (``--model``).
        family: the chat format (``JudgeConfig.family``); when None it is detected from the
            tokenizer and ``model_config`` as :meth:`TransformersBackend.from_pretrained` does.
        relative_variant: the pairwise prompt wording (``JudgeConfig.relative_variant``).
        model_config: the model's ``transformers`` config (its architecture decides the family).
        strip_reasoning, neutralize_markers: the judge's response guards
            (:func:`prometheus_reward.guards.guard_response`), so that a response with hidden
            reasoning or protocol markers trains on what the judge will show.

    Example:
        >>> renderer = PromptRenderer(tokenizer, "embedded")                           # doctest: +SKIP
        >>> prompt, truncated = renderer.render(example, budget=1024)                  # doctest: +SKIP
    """

    def __init__(self, tokenizer: Any, model_name: str = "", family: str | None = None,
                 relative_variant: str = DEFAULT_RELATIVE_VARIANT, *, model_config: Any = None,
                 strip_reasoning: bool = JudgeConfig.strip_reasoning,
                 neutralize_markers: bool = JudgeConfig.neutralize_markers):
        if relative_variant not in RELATIVE_VARIANTS:
            raise ValueError(f"unknown relative prompt variant {relative_variant!r}; choose one of "
                             f"{', '.join(RELATIVE_VARIANTS)}")
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token: the evaluator could not learn to stop")
        self.tokenizer = tokenizer
        self.family = family or detect_family(model_name, tokenizer, model_config)
        self.relative_variant = relative_variant
        self.strip_reasoning = strip_reasoning
        self.neutralize_markers = neutralize_markers
        self.backend = _TokenizerBackend(tokenizer, self.family, model_name or "model")

    def settings(self) -> dict[str, Any]:
        """What a judge must use to see the same prompts (recorded in the training log)."""
        return {"family": self.family, "relative_variant": self.relative_variant,
                "strip_reasoning": self.strip_reasoning, "neutralize_markers": self.neutralize_markers}

    def _guard(self, example: EvaluatorExample, field: str) -> str:
        """A response as the judge shows it (Judge._guard); an unusable one is a RowError."""
        guarded = guard_response(getattr(example, field), strip=self.strip_reasoning, neutralize=self.neutralize_markers)
        if guarded.error:
            where = f"{example.source + ': ' if example.source else ''}row {example.row}"
            raise RowError(f"{where}: field '{field}': {guarded.error}")
        return guarded.text

    # -- prompts ----------------------------------------------------------------------------------------
    def _fit(self, system: str, render_user, fields: dict[str, str | None], groups, budget: int | None):
        backend = self.backend

        def render(f: dict[str, str | None]) -> str:
            return backend.format(system, render_user(f))

        if budget is None:
            return render(fields), False, fields
        return fit_prompt(fields, render, count=lambda text: backend.count_tokens([text])[0],
                          cut=backend.truncate, budget=budget, groups=groups)

    def render(self, example: EvaluatorExample, budget: int | None = None) -> tuple[str, bool]:
        """The chat-formatted prompt (and whether it was cut to ``budget`` tokens)."""
        try:
            return self._render(example, budget)
        except PromptTooLong as err:
            raise RowError(f"{example.source + ': ' if example.source else ''}row {example.row}: {err}") from None

    def _render(self, example: EvaluatorExample, budget: int | None) -> tuple[str, bool]:
        if example.kind == "absolute":
            rubric = example.rubric
            prompt, truncated, _ = self._fit(
                ABS_SYSTEM_PROMPT,
                lambda f: absolute_prompt(f["instruction"], f["response"], rubric, f["reference_answer"]),
                {"instruction": example.instruction, "response": self._guard(example, "response"),
                 "reference_answer": example.reference_answer}, _ABSOLUTE_GROUPS, budget)
            return prompt, truncated
        if example.kind == "relative":
            rubric, variant = example.rubric, self.relative_variant

            def user(f: dict[str, str | None], swapped: bool) -> str:
                a, b = (f["response_b"], f["response_a"]) if swapped else (f["response_a"], f["response_b"])
                return relative_prompt(f["instruction"], a, b, rubric, f["reference_answer"], variant=variant)

            # Judge.compare cuts the fields in the A-first order and shows the same cut fields
            # swapped; a swapped example is fitted the same way, so that the bytes match.
            first, second = self._guard(example, "response_a"), self._guard(example, "response_b")
            a, b = (second, first) if example.swapped else (first, second)
            fields = {"instruction": example.instruction, "response_a": a, "response_b": b,
                      "reference_answer": example.reference_answer}
            _, truncated, used = self._fit(REL_SYSTEM_PROMPT, lambda f: user(f, False), fields, _RELATIVE_GROUPS, budget)
            return self.backend.format(REL_SYSTEM_PROMPT, user(used, example.swapped)), truncated
        if example.kind == "rendered":
            from ..metaeval.data import render_absolute_prompt, split_absolute_prompt

            parts = split_absolute_prompt(example.rendered)
            # unchanged fields re-render the row byte for byte (what Judge.grade_rendered sends);
            # only a prompt over the budget is cut, in the judge's order
            prompt, truncated, _ = self._fit(
                ABS_SYSTEM_PROMPT, lambda f: render_absolute_prompt(parts, **f),
                {"instruction": parts.instruction, "response": parts.response,
                 "reference_answer": parts.reference_answer}, _ABSOLUTE_GROUPS, budget)
            return prompt, truncated
        raise ValueError(f"unknown example kind {example.kind!r}")

    # -- tokens -------------------------------------------------------------------------------------------
    def completion_ids(self, example: EvaluatorExample) -> list[int]:
        """The target's tokens plus EOS (the evaluator learns to stop after its result)."""
        ids = self.tokenizer(example.target, add_special_tokens=False)["input_ids"]
        return list(ids) + [self.tokenizer.eos_token_id]

    def encode(self, example: EvaluatorExample, max_length: int | None = None) -> dict[str, Any]:
        """``input_ids`` (prompt + target + EOS), ``labels`` (-100 on the prompt), ``prompt_tokens``
        and ``truncated``. With ``max_length`` the prompt is cut (judge's order) so that the whole
        target fits; a target that leaves no room is a :class:`RowError`."""
        completion = self.completion_ids(example)
        budget = None
        if max_length is not None:
            budget = max_length - len(completion)
            if budget < 1:
                where = f"{example.source + ': ' if example.source else ''}row {example.row}"
                raise RowError(f"{where}: the target has {len(completion)} tokens, no room for the prompt in "
                               f"max_length {max_length}")
        prompt, truncated = self.render(example, budget)
        prompt_ids = self.backend.encode(prompt)
        return {"input_ids": prompt_ids + completion, "labels": [IGNORE_INDEX] * len(prompt_ids) + completion,
                "prompt_tokens": len(prompt_ids), "truncated": truncated}


def build_sft_dataset(examples: Iterable[EvaluatorExample], renderer: PromptRenderer, max_length: int | None = None,
                      *, on_bad_row: str = "skip", report: DataReport | None = None):
    """A ``datasets.Dataset`` (``input_ids``, ``labels``) for TRL's ``SFTTrainer``; examples that
    cannot fit ``max_length`` are skipped and counted in ``report`` (or raise with
    ``on_bad_row="raise"``).

    Example:
        >>> dataset = build_sft_dataset(examples, PromptRenderer(tokenizer, "embedded"), max_length=1024)  # doctest: +SKIP
    """
    from datasets import Dataset

    report = report if report is not None else DataReport()
    columns: dict[str, list] = {"input_ids": [], "labels": []}
    for example in examples:
        try:
            features = renderer.encode(example, max_length)
        except RowError as err:
            if on_bad_row == "raise":
                raise
            report.skip(err)
            continue
        report.truncated += bool(features["truncated"])
        columns["input_ids"].append(features["input_ids"])
        columns["labels"].append(features["labels"])
    if not columns["input_ids"]:
        raise ValueError(f"no usable training examples ({report.skipped_rows} skipped; first problems: "
                         f"{'; '.join(report.problems[:3]) or 'none'})")
    return Dataset.from_dict(columns)


def prepare_training_data(datasets: Sequence[str], tokenizer: Any, model_name: str, *, family: str | None = None,
                          relative_variant: str = DEFAULT_RELATIVE_VARIANT, model_config: Any = None,
                          strip_reasoning: bool = JudgeConfig.strip_reasoning,
                          neutralize_markers: bool = JudgeConfig.neutralize_markers, max_length: int | None = None,
                          schema: str = "auto", rubric: Any = None, config: str | None = None, split: str = "train",
                          limit: int | None = None, on_bad_row: str = "skip", swapped_feedback: bool = True):
    """Load every source (files or hub ids), convert, render and tokenise: returns
    ``(dataset, report, renderer)``.

    Example:
        >>> dataset, report, renderer = prepare_training_data(["my_grades.jsonl"], tokenizer, "embedded",
        ...                                                   rubric="helpfulness", max_length=1024)  # doctest: +SKIP
    """
    from .data import load_examples

    renderer = PromptRenderer(tokenizer, model_name, family, relative_variant, model_config=model_config,
                              strip_reasoning=strip_reasoning, neutralize_markers=neutralize_markers)
    report = DataReport()
    examples: list[EvaluatorExample] = []
    for name in datasets:
        found, _ = load_examples(name, config, split, schema, rubric, limit=limit, on_bad_row=on_bad_row,
                                 swapped_feedback=swapped_feedback, report=report)
        examples.extend(found)
    dataset = build_sft_dataset(examples, renderer, max_length, on_bad_row=on_bad_row, report=report)
    return dataset, report, renderer
