"""Absolute grading as a TRL reward: each completion is graded 1-5 against a rubric and the score
is normalised (:class:`RubricReward`, and :class:`AsyncRubricReward` for remote judges)."""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

from ..config import JudgingConfig, RewardConfig
from ..grades import Grade
from ..scoring import NORMALIZE_METHODS, Normalizer
from .base import JudgeCall, JudgedReward, RewardRows, Steps, finite


def _item_logs(grades: Sequence[Grade]) -> tuple[dict[str, list[Any]], dict[str, float | None]]:
    """Checklist rows: each item's 1-5 value per completion (``item/<id>``, None where the row has
    no such item or it was unscorable) and each item's mean (``item/<id>/mean``), so a user sees
    which criterion the policy is learning, or gaming."""
    ids: list[str] = []
    for g in grades:
        for item in g.items or []:
            if item["id"] not in ids:
                ids.append(item["id"])
    extras: dict[str, list[Any]] = {}
    metrics: dict[str, float | None] = {}
    for item_id in ids:
        values = [next((i["value"] for i in g.items or [] if i["id"] == item_id), None) for g in grades]
        extras[f"item/{item_id}"] = values
        scored = [v for v in values if v is not None]
        metrics[f"item/{item_id}/mean"] = sum(scored) / len(scored) if scored else None
    return extras, metrics


class RubricReward(JudgedReward):
    """Absolute grading as a TRL reward.

    Args:
        judge: a :class:`~prometheus_reward.judge.Judge` (or :class:`~prometheus_reward.cached.CachedJudge`),
            a :class:`~prometheus_reward.config.JudgeConfig` or its dict, or a model id (loaded
            lazily with transformers on first call).
        rubric: the default rubric (Rubric, dict, preset name, YAML path, or text). A dataset
            column ``rubric`` (see ``rubric_column``) overrides it per row.
        reference_answer: the default reference answer; a ``reference_answer`` column overrides it.
        mode: ``expected`` (feedback, then the score-token distribution: a smooth reward),
            ``generate`` (the parsed score, averaged over ``samples``) or ``direct`` (no feedback,
            one forward pass).
        normalize: how raw 1-5 scores become rewards (:class:`~prometheus_reward.scoring.Normalizer`):
            ``linear`` [0, 1], ``symmetric`` [-1, 1], ``centered``, ``zscore`` (running, per rubric) or
            ``identity``.
        fallback: the reward of unscorable rows; None (default) lets TRL mask them.
        name: the reward's ``__name__`` (TRL's metric key); default ``prometheus_<rubric>``, made
            unique among live rewards.
        samples: judgments per completion, averaged.
        sampling: overrides of the judge's sampling (``max_new_tokens``, ``temperature``, ``top_p``,
            ``repetition_penalty``).
        timeout: seconds one judge call may take; past it the batch returns unscorable rewards.
        rubric_column, reference_column: the dataset columns read per row.
        log_feedback: log each completion's feedback to the trainer's completions table.
        length_penalty: group-relative length penalty (0: off): within a prompt group, each
            completion loses ``length_penalty`` times its length's z-score among its siblings.

    Logged per call (``rewards/<name>/...``): ``unscorable_frac``, ``raw_score_mean``,
    ``truncated_frac``, ``judge_seconds``, and the monitors ``forced_frac``, ``score_mass_mean``,
    ``flagged_frac``, ``length_reward_corr``.

    Example:
        >>> reward = RubricReward(judge, rubric="helpfulness", mode="expected")      # doctest: +SKIP
        >>> reward(prompts=["Say hi."], completions=[[{"role": "assistant", "content": "Hi!"}]])  # doctest: +SKIP
        [0.79]
    """

    def __init__(
        self,
        judge: Any,
        rubric: Any = None,
        reference_answer: str | None = None,
        mode: str = JudgingConfig.mode,
        normalize: str = RewardConfig.normalize,
        fallback: float | None = None,
        name: str | None = None,
        *,
        samples: int = JudgingConfig.samples,
        sampling: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        rubric_column: str = "rubric",
        reference_column: str = "reference_answer",
        log_feedback: bool = True,
        length_penalty: float = RewardConfig.length_penalty,
        checklist_aggregation: str | None = None,
    ):
        if normalize not in NORMALIZE_METHODS:
            raise ValueError(f"unknown normalization {normalize!r}; choose one of {NORMALIZE_METHODS}")
        super().__init__(
            judge, rubric=rubric, reference_answer=reference_answer, mode=mode, samples=samples, sampling=sampling,
            fallback=fallback, name=name, timeout=timeout, rubric_column=rubric_column,
            reference_column=reference_column, log_feedback=log_feedback, length_penalty=length_penalty,
            checklist_aggregation=checklist_aggregation,
        )
        self.normalize = normalize
        self.normalizer = Normalizer(normalize)  # type: ignore[arg-type]
        self.last_grades: list[Grade] = []

    @property
    def neutral_reward(self) -> float:
        """The reward of a middling score (3): what PPO adapters give unscorable rows by default."""
        return self.normalizer.neutral()

    def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), completion_ids: Any = None,
                 **kwargs: Any) -> list[float | None]:
        """Score ``completions`` (one reward or None each). Never raises on judge trouble."""
        return self.score(prompts, completions, **kwargs)[0]

    def score(self, prompts: Sequence[Any] | None, completions: Sequence[Any], **kwargs: Any) -> tuple[list[float | None], list[Grade]]:
        """Like calling the reward, but also return each row's :class:`~prometheus_reward.grades.Grade`
        (thread-safe, unlike reading ``last_grades`` afterwards)."""
        return self._drive(self._steps(prompts, completions, kwargs))

    async def ascore(self, prompts: Sequence[Any] | None, completions: Sequence[Any], **kwargs: Any) -> tuple[list[float | None], list[Grade]]:
        """:meth:`score`, awaiting the judge (``judge.agrade``)."""
        return await self._adrive(self._steps(prompts, completions, kwargs))

    def _steps(self, prompts: Sequence[Any] | None, completions: Sequence[Any], kwargs: Mapping[str, Any]) -> Steps:
        start = time.perf_counter()
        rows = self._read_rows(prompts, completions, kwargs)
        live = rows.live
        grades: list[Grade] | None = None
        failure = None
        if live:
            result = yield JudgeCall("grade", (
                [rows.instructions[i] for i in live], [rows.responses[i] for i in live], [rows.rubrics[i] for i in live],
            ), {"reference_answers": [rows.references[i] for i in live], **self._grade_kwargs()})
            if isinstance(result, BaseException):
                failure = self._failure(result, len(live))
            else:
                grades = result
        return self._finish(rows, grades, failure, time.perf_counter() - start, kwargs)

    def _finish(self, rows: RewardRows, live_grades: list[Grade] | None, failure: str | None, seconds: float,
                kwargs: Mapping[str, Any]) -> tuple[list[float | None], list[Grade]]:
        n = len(rows)
        grades = [Grade(error=e) for e in rows.errors]
        live = rows.live
        if live_grades is not None and len(live_grades) == len(live):
            for i, grade in zip(live, live_grades):
                grades[i] = grade
        else:
            for i in live:
                grades[i] = Grade(error=failure or "the judge returned the wrong number of grades")
        raw = [finite(g.value) for g in grades]
        for g, value in zip(grades, raw):
            if value is None and g.error is None:
                g.error = "no usable score"
        keys = [r.key if r is not None else "" for r in rows.rubrics]
        lengths = self._lengths(rows)
        rewards = self._penalise_length([finite(r) for r in self.normalizer(raw, keys)], rows, lengths)
        self.last_grades = grades
        self._warn_unscorable([g.error for g in grades], n)
        scored = [v for v in raw if v is not None]
        extras: dict[str, list[Any]] = {"raw_score": raw}
        if self.log_feedback:
            extras["feedback"] = [g.feedback if g.error is None else f"[unscorable] {g.error}" for g in grades]
        item_extras, item_metrics = _item_logs(grades)
        extras.update(item_extras)
        self._log(kwargs, extras, {
            **item_metrics,
            "unscorable_frac": (n - len(scored)) / n if n else 0.0,
            "raw_score_mean": sum(scored) / len(scored) if scored else None,
            "truncated_frac": sum(g.truncated for g in grades) / n if n else 0.0,
            "judge_seconds": seconds,
            **self._monitors(rewards, lengths, grades),
        })
        return self._apply_fallback(rewards), grades


class AsyncRubricReward(RubricReward):
    """:class:`RubricReward` with ``async def __call__``: GRPO and RLOO await it concurrently with
    the other async reward functions (best with a remote judge, ``Judge.from_openai``). It awaits
    ``judge.agrade``. Same arguments as :class:`RubricReward`.

    Example:
        >>> judge = Judge.from_openai("http://judge:8000/v1", "prometheus-eval/prometheus-7b-v2.0")  # doctest: +SKIP
        >>> reward = AsyncRubricReward(judge, rubric="helpfulness", timeout=120)              # doctest: +SKIP
    """

    async def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (),  # type: ignore[override]
                       completion_ids: Any = None, **kwargs: Any) -> list[float | None]:
        return (await self.ascore(prompts, completions, **kwargs))[0]
