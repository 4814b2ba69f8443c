"""Absolute grading as a TRL reward: each completion is graded 1-5 against a rubric and the score
is normalised (:class:`RubricReward`, and :class:`AsyncRubricReward` for remote judges)."""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

from ..config import JudgingConfig, RewardConfig
from ..grades import Grade
from ..scoring import Normalizer
from ..rows import JudgeInputs
from .base import JudgeCall, JudgedReward, Steps, config_options, failure_cause, finite, unjudgeable
from .contract import RewardBatch


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
        fallback: the reward of rows unscorable for the judge's or the transport's sake; None
            (default) lets TRL mask them. Never replaces the floor of a ``response``-caused row.
        name: the reward's ``__name__`` (TRL's metric key); default ``prometheus_<rubric>``, made
            unique among live rewards.
        **options: every other :class:`~prometheus_reward.config.RewardConfig` or
            :class:`~prometheus_reward.config.JudgingConfig` field by name, checked by the config:
            ``samples`` (judgments per completion, averaged), ``timeout`` (seconds one judge call
            may take; past it the batch returns unscorable rewards), ``rubric_column`` /
            ``reference_column`` (the dataset columns read per row), ``log_feedback``,
            ``length_penalty`` (group-relative: within a prompt group, each completion loses
            ``length_penalty`` times its length's z-score among its siblings),
            ``checklist_aggregation``; and ``sampling``, a mapping of the judge's sampling
            overrides (``max_new_tokens``, ``temperature``, ``top_p``, ``repetition_penalty``).

    The options live in ``reward.config`` (:class:`~prometheus_reward.config.RewardConfig`) and
    ``reward.judging`` (:class:`~prometheus_reward.config.JudgingConfig`).

    Logged per call (``rewards/<name>/...``): ``unscorable_frac`` and per cause
    ``unscorable_response_frac``, ``unscorable_judge_frac``, ``unscorable_transport_frac``,
    ``raw_score_mean``, ``truncated_frac``, ``judge_seconds``, and the monitors ``forced_frac``,
    ``score_mass_mean``, ``flagged_frac``, ``length_reward_corr`` (before the length penalty) and,
    with a ``length_penalty``, ``length_reward_corr_penalised`` (after it). Per row (``log_extra``): ``raw_score``, ``cause``,
    ``judge_floor``.

    Unscorable rows (see :mod:`prometheus_reward.blame`): a response the policy made unjudgeable
    (cause ``response``) gets the floor reward (:meth:`floor_reward`: 0.0 under ``linear``), never
    None; a row the judge or the transport failed on is None (masked by TRL) or ``fallback``. The
    circuit breaker (``breaker_window``, ``breaker_threshold``) raises
    :class:`~prometheus_reward.blame.JudgeOutage` when the judge keeps failing.

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
        **options: Any,
    ):
        super().__init__(judge, rubric=rubric, reference_answer=reference_answer, mode=mode, normalize=normalize,
                         fallback=fallback, name=name, **options)
        self.normalizer = Normalizer(self.config.normalize)  # type: ignore[arg-type]
        self.last_grades: list[Grade] = []

    @property
    def normalize(self) -> str:
        return self.config.normalize

    @property
    def neutral_reward(self) -> float:
        """The reward of a middling score (3): what PPO adapters and the server give a
        ``judge``/``transport``-caused row when its prompt group has no scored row."""
        return self.normalizer.neutral()

    def floor_reward(self, key: str = "") -> float:
        """The reward of the worst score (1) under the normaliser (:meth:`Normalizer.floor`): what a
        ``response``-caused unscorable row gets, in TRL too."""
        return self.normalizer.floor(key)

    def score(self, prompts: Sequence[Any] | None, completions: Sequence[Any], **kwargs: Any) -> tuple[list[float | None], list[Grade]]:
        """Like calling the reward, but also return each row's :class:`~prometheus_reward.grades.Grade`
        (thread-safe, unlike reading ``last_grades`` afterwards): :meth:`score_batch`'s rewards and
        judgments."""
        batch = self.score_batch(prompts, completions, **kwargs)
        return batch.rewards, batch.judgments

    async def ascore(self, prompts: Sequence[Any] | None, completions: Sequence[Any], **kwargs: Any) -> tuple[list[float | None], list[Grade]]:
        """:meth:`score`, awaiting the judge (``judge.agrade``)."""
        batch = await self.ascore_batch(prompts, completions, **kwargs)
        return batch.rewards, batch.judgments

    def _steps(self, prompts: Sequence[Any] | None, completions: Sequence[Any], kwargs: Mapping[str, Any]) -> Steps:
        start = time.perf_counter()
        rows = self._read_rows(prompts, completions, kwargs)
        live = rows.live
        grades: list[Grade] | None = None
        failure = None
        blame = "judge"
        if live:
            result = yield JudgeCall("grade", (
                [rows.instructions[i] for i in live], [rows.responses[i] for i in live], [rows.rubrics[i] for i in live],
            ), {"reference_answers": [rows.references[i] for i in live], **self._grade_kwargs()})
            if isinstance(result, BaseException):
                failure = self._failure(result, len(live))
                blame = failure_cause(result)
            else:
                grades = result
        return self._finish(rows, grades, failure, time.perf_counter() - start, kwargs, blame)

    def _finish(self, rows: JudgeInputs, live_grades: list[Grade] | None, failure: str | None, seconds: float,
                kwargs: Mapping[str, Any], failure_blame: str = "judge") -> RewardBatch:
        n = len(rows)
        grades = [Grade(error=e, cause=c) for e, c in zip(rows.errors, rows.causes)]
        live = rows.live
        if live_grades is not None and len(live_grades) == len(live):
            for i, grade in zip(live, live_grades):
                grades[i] = grade
        else:
            for i in live:
                grades[i] = Grade(error=failure or "the judge returned the wrong number of grades", cause=failure_blame)
        raw = [finite(g.value) for g in grades]
        for g, value in zip(grades, raw):
            if value is None and g.error is None:
                g.error = "no usable score"
        keys = [r.key if r is not None else "" for r in rows.rubrics]
        lengths = self._lengths(rows)
        # a grade without a cause whose response the defences find empty is the policy's doing
        causes = [None if v is not None else g.cause or ("response" if unjudgeable(text) else None)
                  for g, v, text in zip(grades, raw, rows.responses)]
        judged = [finite(r) for r in self.normalizer(raw, keys)]
        rewards, before, floors = self._settle(judged, causes, rows, lengths, keys)
        self.last_grades = grades
        self._warn_unscorable([g.error for g in grades], n)
        scored = [v for v in raw if v is not None]
        extras: dict[str, list[Any]] = {"raw_score": raw}
        if self.log_feedback:
            extras["feedback"] = [g.feedback if g.error is None else f"[unscorable] {g.error}" for g in grades]
        item_extras, item_metrics = _item_logs(grades)
        extras.update(item_extras)
        extras["cause"] = causes
        extras["judge_floor"] = [float(f) for f in floors]
        stats = self._log(kwargs, extras, {
            **item_metrics,
            **self._blame_metrics(causes, raw),
            "raw_score_mean": sum(scored) / len(scored) if scored else None,
            "truncated_frac": sum(g.truncated for g in grades) / n if n else 0.0,
            "judge_seconds": seconds,
            **self._monitors(before, lengths, grades, penalised=rewards if self.length_penalty else None),
        })
        scored_rows = self._scored_rows(rows, rewards, raw, [g.error for g in grades], grades,
                                        [g.truncated for g in grades], [g.source for g in grades], causes, floors)
        return RewardBatch(rewards, scored_rows, self.value_name, failure, len(live), stats)


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
        return (await self.ascore_batch(prompts, completions, **kwargs)).rewards


def build_rubric_reward(judge: Any, judging: JudgingConfig, reward: RewardConfig, layout: str = "group") -> RubricReward:
    """The ``absolute`` reward shape (registered in :data:`~prometheus_reward.registry.REWARD_SHAPES`):
    a :class:`RubricReward`, or :class:`AsyncRubricReward` with ``async_reward``."""
    cls = AsyncRubricReward if reward.async_reward else RubricReward
    return cls(judge, **config_options(judging, reward))
