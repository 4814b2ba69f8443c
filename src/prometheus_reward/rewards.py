"""TRL reward functions backed by a Prometheus-style judge: absolute (:class:`RubricReward`) and
pairwise (:class:`PairwiseReward`), each with an ``async`` flavour for remote judges.

They follow TRL's reward-function contract (``trl`` 1.16): called with keyword arguments
``prompts``, ``completions``, ``completion_ids`` plus every extra dataset column, ``trainer_state``
and, in GRPO/RLOO, ``log_extra`` / ``log_metric``; they return one float or None per completion
(None = unscorable, masked by the trainer). Inside a training step they never raise: a row the
judge cannot score comes back as None (or ``fallback``) with a warning and a logged metric, and a
failing or slow judge call (see ``timeout``) turns the whole batch into None instead of stalling
every rank.

Example:
    >>> from prometheus_reward import Judge, RubricReward
    >>> judge = Judge.from_pretrained("prometheus-eval/prometheus-7b-v2.0", dtype="bfloat16")  # doctest: +SKIP
    >>> reward = RubricReward(judge, rubric="helpfulness")                                     # doctest: +SKIP
    >>> reward(prompts=["Say hi."], completions=["Hello!"])                                  # doctest: +SKIP
    [0.83]
    >>> # trainer = GRPOTrainer(model=..., reward_funcs=[reward], ...)
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import threading
import time
import weakref
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence

from .backends.base import SamplingParams
from .completions import completion_text, group_key, prompt_text
from .grades import Grade, Preference
from .judge import MODES, Judge
from .rubric import Rubric
from .scoring import NORMALIZE_METHODS, Normalizer, pairwise_reward

logger = logging.getLogger(__name__)

JudgeLike = "Judge | Mapping[str, Any] | str"
Layout = Literal["online_dpo", "group"]
Anchor = Literal["auto", "reference", "group"]

# Names of live reward instances: TRL keys its metrics by ``__name__``, so two rewards in one
# trainer must not share one. Dead instances free their name (notebooks re-create rewards).
_LIVE_NAMES: "weakref.WeakValueDictionary[str, Any]" = weakref.WeakValueDictionary()
_NAMES_LOCK = threading.Lock()


def _claim_name(base: str, owner: Any) -> str:
    with _NAMES_LOCK:
        name, k = base, 1
        while name in _LIVE_NAMES and _LIVE_NAMES[name] is not owner:
            k += 1
            name = f"{base}_{k}"
        _LIVE_NAMES[name] = owner
        return name


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")
    while "__" in keep:
        keep = keep.replace("__", "_")
    return keep[:40] or "rubric"


class JudgeBusy(RuntimeError):
    """A previous judge call timed out and is still running; this batch is skipped."""


def _judge_spec(judge: Any) -> dict[str, Any] | None:
    if isinstance(judge, Judge):
        return dict(judge.spec) if judge.spec is not None else None
    if isinstance(judge, str):
        return {"backend": "transformers", "path_or_id": judge}
    if isinstance(judge, Mapping):
        spec = dict(judge)
        if "backend" not in spec:
            raise ValueError("a judge spec needs a 'backend' key ('transformers' or 'openai')")
        return spec
    raise TypeError(f"judge must be a Judge, a judge spec dict or a model id, got {type(judge).__name__}")


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _per_row(values: Any, n: int) -> list[Any]:
    """A dataset column as TRL passes it (one value per completion), or [None] * n."""
    if isinstance(values, (list, tuple)) and len(values) == n:
        return list(values)
    return [None] * n


@dataclass
class _Rows:
    """One batch, ready for the judge: per-row texts, rubrics, references, and input problems."""

    instructions: list[str | None]
    responses: list[str | None]
    rubrics: list[Rubric | None]
    references: list[str | None]
    errors: list[str | None]
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def live(self) -> list[int]:
        return [i for i, e in enumerate(self.errors) if e is None]


class _JudgedReward:
    """What both reward kinds share: the judge (lazy, picklable), rubric and reference columns,
    time-boxed judge calls, names and logging."""

    _default_prefix = "prometheus"

    def __init__(
        self,
        judge: Any,
        *,
        rubric: Any = None,
        reference_answer: str | None = None,
        mode: str = "expected",
        fallback: float | None = None,
        name: str | None = None,
        samples: int = 1,
        timeout: float | None = None,
        rubric_column: str = "rubric",
        reference_column: str = "reference_answer",
        generation_kwargs: Mapping[str, Any] | None = None,
        log_feedback: bool = True,
    ):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
        if samples < 1:
            raise ValueError("samples must be at least 1")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive (seconds) or None")
        self._judge: Judge | None = judge if isinstance(judge, Judge) else None
        self._judge_spec = _judge_spec(judge)
        # The default rubric is coerced now, so that a typo fails at construction, not mid-training.
        self.rubric: Rubric | None = None if rubric is None else Rubric.coerce(rubric)
        self.reference_answer = reference_answer
        self.mode = mode
        self.fallback = None if fallback is None else float(fallback)
        self.samples = samples
        self.timeout = timeout
        self.rubric_column = rubric_column
        self.reference_column = reference_column
        self.generation_kwargs = dict(generation_kwargs or {})
        SamplingParams().replace(**self.generation_kwargs)  # an unknown option fails here, not every step
        self.log_feedback = log_feedback
        base = name or f"{self._default_prefix}_{_slug(self.rubric.name or self.rubric.criteria) if self.rubric else 'rubric'}"
        self.__name__ = _claim_name(base, self) if name is None else name
        if name is not None:
            with _NAMES_LOCK:
                other = _LIVE_NAMES.get(name)
                if other is not None and other is not self:
                    logger.warning("two live rewards are both named %r: TRL will mix their metrics", name)
                _LIVE_NAMES[name] = self
        self.last_stats: dict[str, float] = {}
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._build_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._pending_thread: threading.Thread | None = None
        self._pending_task: asyncio.Future | None = None
        self._rubric_cache: dict[str, Rubric] = {}

    # -- the judge: built lazily from its spec in a new process ------------------------------------
    @property
    def judge(self) -> Judge:
        """The judge, rebuilt from its spec on first use after unpickling."""
        if self._judge is None:
            with self._build_lock:
                if self._judge is None:
                    if self._judge_spec is None:
                        raise RuntimeError("no judge and no judge spec to build one from")
                    self._judge = Judge.from_spec(self._judge_spec)
        return self._judge

    def __getstate__(self) -> dict[str, Any]:
        if self._judge_spec is None:
            raise TypeError(
                f"{type(self).__name__} {self.__name__!r} cannot be pickled: its judge was built from a bare "
                "backend and has no spec. Build it with Judge.from_pretrained / Judge.from_openai (or pass a "
                "judge spec dict) so that worker processes can rebuild it."
            )
        state = dict(self.__dict__)
        for key in ("_judge", "_build_lock", "_state_lock", "_pending_thread", "_pending_task", "_rubric_cache"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._judge = None  # rebuilt on first call, in this process
        self._init_runtime()

    def __repr__(self) -> str:
        model = self._judge.model_id if self._judge is not None else (self._judge_spec or {}).get("path_or_id") or (self._judge_spec or {}).get("model")
        return f"{type(self).__name__}(name={self.__name__!r}, judge={model!r}, mode={self.mode!r})"

    # -- rows ------------------------------------------------------------------------------------------
    def _coerce_rubric(self, cell: Any) -> Rubric:
        if isinstance(cell, Rubric):
            return cell
        if isinstance(cell, Mapping):
            # datasets unifies dict columns across rows, filling absent keys with None
            cell = {k: v for k, v in cell.items() if v is not None}
        key = group_key(cell)
        rubric = self._rubric_cache.get(key)
        if rubric is None:
            rubric = Rubric.coerce(cell)
            if len(self._rubric_cache) < 4096:
                self._rubric_cache[key] = rubric
        return rubric

    def _row_rubric(self, row: int, cell: Any) -> tuple[Rubric | None, str | None]:
        if cell is None or (isinstance(cell, str) and not cell.strip() and self.rubric is not None):
            if self.rubric is None:
                return None, f"row {row}: field '{self.rubric_column}' is empty and the reward has no default rubric"
            return self.rubric, None
        try:
            return self._coerce_rubric(cell), None
        except (ValueError, TypeError, OSError) as err:
            return None, f"row {row}: field '{self.rubric_column}' is invalid: {err}"

    def _row_reference(self, cell: Any) -> str | None:
        if isinstance(cell, str) and cell.strip():
            return cell
        return self.reference_answer

    def _read_rows(self, prompts: Sequence[Any] | None, completions: Sequence[Any], kwargs: Mapping[str, Any]) -> _Rows:
        n = len(completions)
        prompts = list(prompts) if prompts is not None else [None] * n
        rubric_cells = _per_row(kwargs.get(self.rubric_column), n)
        reference_cells = _per_row(kwargs.get(self.reference_column), n)
        rows = _Rows([], [], [], [], [])
        for i in range(n):
            error = None
            instruction = prompt_text(prompts[i]) if i < len(prompts) else None
            response = completion_text(completions[i])
            if instruction is None:
                error = f"row {i}: field 'prompt' is neither a string nor chat messages with a user turn"
            elif response is None:
                error = f"row {i}: field 'completion' is neither a string nor chat messages with an assistant turn"
            rubric, rubric_error = self._row_rubric(i, rubric_cells[i])
            rows.instructions.append(instruction)
            rows.responses.append(response)
            rows.rubrics.append(rubric)
            rows.references.append(self._row_reference(reference_cells[i]))
            rows.errors.append(error or rubric_error)
        return rows

    # -- time-boxed judge calls ------------------------------------------------------------------------
    def _call_sync(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` now, or (with ``timeout``) on one helper thread with a deadline. A call that
        overruns keeps its thread until it ends; while it runs, later batches are skipped rather
        than queued, so at most one helper thread exists and no rank waits past the deadline."""
        if self.timeout is None:
            return fn()
        with self._state_lock:
            if self._pending_thread is not None and self._pending_thread.is_alive():
                raise JudgeBusy("a judge call that timed out earlier is still running")
            box: dict[str, Any] = {}
            done = threading.Event()

            def target() -> None:
                try:
                    box["value"] = fn()
                except BaseException as err:  # handed to the caller below
                    box["error"] = err
                finally:
                    done.set()

            thread = threading.Thread(target=target, name=f"{self.__name__}-judge", daemon=True)
            self._pending_thread = thread
            thread.start()
        if not done.wait(self.timeout):
            raise TimeoutError(f"the judge took longer than timeout={self.timeout} s")
        if "error" in box:
            raise box["error"]
        return box["value"]

    async def _call_async(self, make: Callable[[], Any]) -> Any:
        """Await ``make()`` (a coroutine), with the same deadline and skip-while-busy rule."""
        pending = self._pending_task
        if pending is not None and not pending.done():
            raise JudgeBusy("a judge call that timed out earlier is still running")
        task = asyncio.ensure_future(make())
        if self.timeout is None:
            return await task
        self._pending_task = task
        # an overrun task may fail later with nobody awaiting it: read its error to silence asyncio
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"the judge took longer than timeout={self.timeout} s") from None

    def _batch_failure(self, err: BaseException, n: int) -> str:
        message = f"judge call failed: {type(err).__name__}: {err}"
        if isinstance(err, (TimeoutError, JudgeBusy)):
            logger.warning("%s: %s; returning unscorable rewards for %d rows", self.__name__, message, n)
        else:
            logger.warning("%s: %s; returning unscorable rewards for %d rows", self.__name__, message, n, exc_info=err)
        return message

    def _apply_fallback(self, rewards: list[float | None]) -> list[float | None]:
        if self.fallback is None:
            return rewards
        return [self.fallback if r is None else r for r in rewards]

    def _log(self, kwargs: Mapping[str, Any], extras: Mapping[str, list[Any]], metrics: Mapping[str, float | None]) -> None:
        stats = {k: float(v) for k, v in metrics.items() if v is not None}
        self.last_stats = stats
        log_extra, log_metric = kwargs.get("log_extra"), kwargs.get("log_metric")
        try:
            if callable(log_extra):
                for column, values in extras.items():
                    log_extra(f"{self.__name__}/{column}", list(values))
            if callable(log_metric):
                for metric, value in stats.items():
                    log_metric(f"rewards/{self.__name__}/{metric}", value)
        except Exception as err:  # logging must never cost a training step
            logger.warning("%s: could not log to the trainer: %s", self.__name__, err)

    def _warn_unscorable(self, errors: Sequence[str | None], n: int) -> None:
        bad = [e for e in errors if e]
        if bad:
            logger.warning("%s: %d of %d rows unscorable (first: %s)", self.__name__, len(bad), n, bad[0])


class RubricReward(_JudgedReward):
    """Absolute grading as a TRL reward: each completion is graded 1-5 against a rubric and the
    score is normalised.

    Args:
        judge: a :class:`~prometheus_reward.judge.Judge`, a judge spec dict (``judge.spec``) or a
            model id / folder (loaded lazily with transformers on first call).
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
        timeout: seconds one judge call may take; past it the batch returns unscorable rewards.
        rubric_column, reference_column: the dataset columns read per row.
        generation_kwargs: judge generation overrides (``max_new_tokens``, ``temperature``...).
        log_feedback: log each completion's feedback to the trainer's completions table.

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
        mode: str = "expected",
        normalize: str = "linear",
        fallback: float | None = None,
        name: str | None = None,
        *,
        samples: int = 1,
        timeout: float | None = None,
        rubric_column: str = "rubric",
        reference_column: str = "reference_answer",
        generation_kwargs: Mapping[str, Any] | None = None,
        log_feedback: bool = True,
    ):
        if normalize not in NORMALIZE_METHODS:
            raise ValueError(f"unknown normalization {normalize!r}; choose one of {NORMALIZE_METHODS}")
        super().__init__(
            judge,
            rubric=rubric,
            reference_answer=reference_answer,
            mode=mode,
            fallback=fallback,
            name=name,
            samples=samples,
            timeout=timeout,
            rubric_column=rubric_column,
            reference_column=reference_column,
            generation_kwargs=generation_kwargs,
            log_feedback=log_feedback,
        )
        self.normalize = normalize
        self.normalizer = Normalizer(normalize)
        self.last_grades: list[Grade] = []

    def _grade_call(self, rows: _Rows) -> Callable[[Judge], Any]:
        live = rows.live

        def run(judge: Judge, method: str = "grade") -> Any:
            return getattr(judge, method)(
                [rows.instructions[i] for i in live],
                [rows.responses[i] for i in live],
                [rows.rubrics[i] for i in live],
                reference_answers=[rows.references[i] for i in live],
                mode=self.mode,
                samples=self.samples,
                errors="return",
                **self.generation_kwargs,
            )

        return run

    def _finish(self, rows: _Rows, live_grades: list[Grade] | None, failure: str | None, seconds: float, kwargs: Mapping[str, Any]) -> tuple[list[float | None], list[Grade]]:
        n = len(rows.errors)
        grades = [Grade(error=e) for e in rows.errors]
        live = rows.live
        if live_grades is not None and len(live_grades) == len(live):
            for i, grade in zip(live, live_grades):
                grades[i] = grade
        else:
            for i in live:
                grades[i] = Grade(error=failure or "the judge returned the wrong number of grades")
        raw = [_finite(g.value) for g in grades]
        for g, value in zip(grades, raw):
            if value is None and g.error is None:
                g.error = "no usable score"
        keys = [r.key if r is not None else "" for r in rows.rubrics]
        rewards = [_finite(r) for r in self.normalizer(raw, keys)]
        self.last_grades = grades
        self._warn_unscorable([g.error for g in grades], n)
        scored = [v for v in raw if v is not None]
        extras: dict[str, list[Any]] = {"raw_score": raw}
        if self.log_feedback:
            extras["feedback"] = [g.feedback if g.error is None else f"[unscorable] {g.error}" for g in grades]
        self._log(
            kwargs,
            extras,
            {
                "unscorable_frac": (n - len(scored)) / n if n else 0.0,
                "raw_score_mean": sum(scored) / len(scored) if scored else None,
                "truncated_frac": sum(g.truncated for g in grades) / n if n else 0.0,
                "judge_seconds": seconds,
            },
        )
        return self._apply_fallback(rewards), grades

    def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), completion_ids: Any = None, **kwargs: Any) -> list[float | None]:
        """Score ``completions`` (one reward or None each). Never raises on judge trouble."""
        return self.score(prompts, completions, **kwargs)[0]

    def score(self, prompts: Sequence[Any] | None, completions: Sequence[Any], **kwargs: Any) -> tuple[list[float | None], list[Grade]]:
        """Like calling the reward, but also return each row's :class:`Grade` (thread-safe,
        unlike reading ``last_grades`` afterwards)."""
        start = time.perf_counter()
        rows = self._read_rows(prompts, completions, kwargs)
        grades, failure = None, None
        if rows.live:
            run = self._grade_call(rows)
            try:
                grades = self._call_sync(lambda: run(self.judge))
            except Exception as err:
                failure = self._batch_failure(err, len(rows.live))
        return self._finish(rows, grades, failure, time.perf_counter() - start, kwargs)


class AsyncRubricReward(RubricReward):
    """:class:`RubricReward` with ``async def __call__``: GRPO and RLOO await it concurrently with
    the other async reward functions (best with a remote judge, ``Judge.from_openai``). It awaits
    ``judge.agrade``. Same arguments as :class:`RubricReward`.

    Example:
        >>> judge = Judge.from_openai("http://judge:8000/v1", "prometheus-eval/prometheus-7b-v2.0")  # doctest: +SKIP
        >>> reward = AsyncRubricReward(judge, rubric="helpfulness", timeout=120)              # doctest: +SKIP
    """

    async def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), completion_ids: Any = None, **kwargs: Any) -> list[float | None]:  # type: ignore[override]
        return (await self.ascore(prompts, completions, **kwargs))[0]

    async def ascore(self, prompts: Sequence[Any] | None, completions: Sequence[Any], **kwargs: Any) -> tuple[list[float | None], list[Grade]]:
        """:meth:`score`, awaiting the judge."""
        start = time.perf_counter()
        rows = self._read_rows(prompts, completions, kwargs)
        grades, failure = None, None
        if rows.live:
            run = self._grade_call(rows)
            try:
                judge = await asyncio.to_thread(lambda: self.judge) if self._judge is None else self._judge
                grades = await self._call_async(lambda: run(judge, "agrade"))
            except Exception as err:
                failure = self._batch_failure(err, len(rows.live))
        return self._finish(rows, grades, failure, time.perf_counter() - start, kwargs)


class PairwiseReward(_JudgedReward):
    """Relative grading as a reward: the judge compares two responses in both orders and the
    reward is a win probability.

    Layouts:
        - ``online_dpo``: TRL's OnlineDPOTrainer calls the reward with 2B rows, the first half
          sample A and the second half sample B of the same prompts. Rewards are p(A beats B) for
          the first half and 1 - p for the second.
        - ``group``: for GRPO / RLOO. Each completion is compared with an anchor of its group and
          rewarded with its win probability. Groups are found by prompt identity (not position,
          since a group may be split across ranks). The anchor is the row's reference answer
          (``anchor="reference"``), a designated completion of the group (``"group"``: the one
          with the smallest content hash, so that the choice does not depend on order; it gets
          0.5, a tie with itself), or the reference when the row has one, else the group
          completion (``"auto"``).

    Args:
        judge, rubric, reference_answer, mode, fallback, name, samples, timeout, rubric_column,
        reference_column, generation_kwargs, log_feedback: as in :class:`RubricReward`.
        transform: ``prob`` (p), ``symmetric`` (2p - 1) or ``logit`` (log-odds).

    Example:
        >>> reward = PairwiseReward(judge, rubric="helpfulness")                            # doctest: +SKIP
        >>> reward(prompts=["Hi?", "Hi?"], completions=["Hello!", "Go away."])            # doctest: +SKIP
        [0.91, 0.09]
    """

    _default_prefix = "prometheus_pairwise"

    def __init__(
        self,
        judge: Any,
        rubric: Any = None,
        reference_answer: str | None = None,
        layout: Layout = "online_dpo",
        anchor: Anchor = "auto",
        mode: str = "expected",
        transform: str = "prob",
        fallback: float | None = None,
        name: str | None = None,
        *,
        samples: int = 1,
        timeout: float | None = None,
        rubric_column: str = "rubric",
        reference_column: str = "reference_answer",
        generation_kwargs: Mapping[str, Any] | None = None,
        log_feedback: bool = True,
    ):
        if layout not in ("online_dpo", "group"):
            raise ValueError(f"unknown layout {layout!r}; choose 'online_dpo' or 'group'")
        if anchor not in ("auto", "reference", "group"):
            raise ValueError(f"unknown anchor {anchor!r}; choose 'auto', 'reference' or 'group'")
        if transform not in ("prob", "symmetric", "logit"):
            raise ValueError(f"unknown transform {transform!r}; choose 'prob', 'symmetric' or 'logit'")
        super().__init__(
            judge,
            rubric=rubric,
            reference_answer=reference_answer,
            mode=mode,
            fallback=fallback,
            name=name,
            samples=samples,
            timeout=timeout,
            rubric_column=rubric_column,
            reference_column=reference_column,
            generation_kwargs=generation_kwargs,
            log_feedback=log_feedback,
        )
        self.layout = layout
        self.anchor = anchor
        self.transform = transform
        self.last_preferences: list[Preference | None] = []

    # -- pairing ---------------------------------------------------------------------------------------
    def _pairs(self, prompts: Sequence[Any] | None, rows: _Rows) -> tuple[list[tuple[int, str | None]], list[str | None]]:
        """Per row: (the row whose pair it is judged in or -1, the anchor text) and per-row errors.

        For ``online_dpo`` the pair of row i < B is (i, i + B); row i + B reads the same judgment.
        For ``group`` each row is judged against its anchor text."""
        n = len(rows.errors)
        errors = list(rows.errors)
        pairs: list[tuple[int, str | None]] = [(-1, None)] * n
        prompts = list(prompts) if prompts is not None else [None] * n
        if self.layout == "online_dpo":
            if n % 2:
                return pairs, [f"row {i}: online_dpo layout needs an even number of rows, got {n}" for i in range(n)]
            half = n // 2
            for i in range(half):
                j = i + half
                if group_key(prompts[i]) != group_key(prompts[j]):
                    message = f"row {i}: field 'prompt' differs from row {j}'s (online_dpo pairs row i with row i + {half})"
                    errors[i] = errors[i] or message
                    errors[j] = errors[j] or message
                elif errors[i] or errors[j]:
                    errors[i] = errors[i] or errors[j]
                    errors[j] = errors[j] or errors[i]
                else:
                    pairs[i] = (i, rows.responses[j])
            return pairs, errors
        groups: dict[str, list[int]] = defaultdict(list)
        for i in range(n):
            if errors[i] is None:
                groups[group_key(prompts[i])].append(i)
        for members in groups.values():
            pick = min(members, key=lambda j: (hashlib.sha256((rows.responses[j] or "").encode()).hexdigest(), j))
            for i in members:
                reference = rows.references[i]
                if self.anchor == "reference" and reference is None:
                    errors[i] = f"row {i}: field '{self.reference_column}' is empty and anchor='reference' needs it"
                elif reference is not None and self.anchor in ("reference", "auto"):
                    pairs[i] = (i, reference)
                else:
                    pairs[i] = (i, rows.responses[pick])
        return pairs, errors

    def _compare_call(self, rows: _Rows, judged: list[int], anchors: list[str]) -> Callable[[Judge, str], Any]:
        def run(judge: Judge, method: str = "compare") -> Any:
            return getattr(judge, method)(
                [rows.instructions[i] for i in judged],
                [rows.responses[i] for i in judged],
                anchors,
                [rows.rubrics[i] for i in judged],
                reference_answers=[rows.references[i] for i in judged],
                mode=self.mode,
                samples=self.samples,
                swap=True,
                errors="return",
                **self.generation_kwargs,
            )

        return run

    def _plan(self, prompts: Sequence[Any] | None, rows: _Rows) -> tuple[list[str | None], list[int], list[str], list[int]]:
        pairs, errors = self._pairs(prompts, rows)
        judged, anchors, ties = [], [], []
        for i, (row, anchor) in enumerate(pairs):
            if errors[i] is not None or row < 0:
                continue
            if anchor == rows.responses[i]:
                ties.append(i)  # a response against itself: a tie, no judge call needed
            else:
                judged.append(i)
                anchors.append(anchor)  # type: ignore[arg-type]
        return errors, judged, anchors, ties

    def _finish(self, rows: _Rows, errors: list[str | None], judged: list[int], ties: list[int], prefs: list[Preference] | None, failure: str | None, seconds: float, kwargs: Mapping[str, Any]) -> list[float | None]:
        n = len(errors)
        probs: list[float | None] = [None] * n
        row_prefs: list[Preference | None] = [None] * n
        errors = list(errors)
        if prefs is not None and len(prefs) == len(judged):
            for i, pref in zip(judged, prefs):
                row_prefs[i] = pref
                probs[i] = _finite(pref.prob_a)
                if probs[i] is None:
                    errors[i] = pref.error or "no usable preference"
        else:
            for i in judged:
                errors[i] = failure or "the judge returned the wrong number of preferences"
        for i in ties:
            probs[i] = 0.5
        if self.layout == "online_dpo":
            half = n // 2
            for i in range(half):
                j = i + half
                probs[j] = None if probs[i] is None else 1.0 - probs[i]
                row_prefs[j] = row_prefs[i]
                if probs[i] is None and errors[i]:
                    errors[j] = errors[j] or errors[i]
        rewards = [None if p is None else pairwise_reward(p, self.transform) for p in probs]  # type: ignore[arg-type]
        self.last_preferences = row_prefs
        self._warn_unscorable([e if p is None else None for e, p in zip(errors, probs)], n)
        judged_prefs = [row_prefs[i] for i in judged if row_prefs[i] is not None and row_prefs[i].prob_a is not None]
        scored = [p for p in probs if p is not None]
        extras: dict[str, list[Any]] = {"win_prob": probs}
        if self.log_feedback:
            extras["feedback"] = [
                (row_prefs[i].feedback if row_prefs[i] is not None and probs[i] is not None else
                 ("[tie with the anchor]" if i in ties else f"[unscorable] {errors[i]}"))
                for i in range(n)
            ]
        self._log(
            kwargs,
            extras,
            {
                "unscorable_frac": (n - len(scored)) / n if n else 0.0,
                "win_prob_mean": sum(scored) / len(scored) if scored else None,
                "consistent_frac": sum(p.consistent for p in judged_prefs) / len(judged_prefs) if judged_prefs else None,
                "truncated_frac": sum(bool(p and p.truncated) for p in row_prefs) / n if n else 0.0,
                "judge_seconds": seconds,
            },
        )
        return self._apply_fallback(rewards)

    def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), completion_ids: Any = None, **kwargs: Any) -> list[float | None]:
        """Rewards for ``completions`` (see the layouts). Never raises on judge trouble."""
        start = time.perf_counter()
        rows = self._read_rows(prompts, completions, kwargs)
        errors, judged, anchors, ties = self._plan(prompts, rows)
        prefs, failure = None, None
        if judged:
            run = self._compare_call(rows, judged, anchors)
            try:
                prefs = self._call_sync(lambda: run(self.judge))
            except Exception as err:
                failure = self._batch_failure(err, len(judged))
        return self._finish(rows, errors, judged, ties, prefs, failure, time.perf_counter() - start, kwargs)


class AsyncPairwiseReward(PairwiseReward):
    """:class:`PairwiseReward` with ``async def __call__`` (GRPO/RLOO group layout; OnlineDPO calls
    rewards synchronously, so use :class:`PairwiseReward` there). It awaits ``judge.acompare``."""

    async def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), completion_ids: Any = None, **kwargs: Any) -> list[float | None]:  # type: ignore[override]
        start = time.perf_counter()
        rows = self._read_rows(prompts, completions, kwargs)
        errors, judged, anchors, ties = self._plan(prompts, rows)
        prefs, failure = None, None
        if judged:
            run = self._compare_call(rows, judged, anchors)
            try:
                judge = await asyncio.to_thread(lambda: self.judge) if self._judge is None else self._judge
                prefs = await self._call_async(lambda: run(judge, "acompare"))
            except Exception as err:
                failure = self._batch_failure(err, len(judged))
        return self._finish(rows, errors, judged, ties, prefs, failure, time.perf_counter() - start, kwargs)


# -- building rewards from a config (recipes, PPO engine adapters) -----------------------------------------
_JUDGE_KEYS = ("model", "path_or_id", "base_urls", "backend")


def judge_spec_from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A :meth:`Judge.from_spec` spec from a user-facing judge config.

    ``{"model": "prometheus-eval/prometheus-7b-v2.0", "dtype": "bfloat16", "device_map": "cuda:1"}``
    loads the evaluator locally; adding ``base_urls`` (a URL or a list) judges through
    OpenAI-compatible servers instead. Other keys go to the constructor as they are.

    Example:
        >>> judge_spec_from_config({"model": "embedded:tiny-random", "dtype": "float32"})["backend"]
        'transformers'
    """
    config = {k: v for k, v in dict(config).items() if v is not None}
    if "backend" in config:
        return config
    base_urls = config.pop("base_urls", None)
    model = config.pop("model", None) or config.pop("path_or_id", None)
    if not model:
        raise ValueError("the judge config needs 'model' (a hub id, folder or 'embedded[:tiny-random]')")
    if base_urls:
        if isinstance(base_urls, str):
            base_urls = [u.strip() for u in base_urls.split(",") if u.strip()]
        for local_only in ("dtype", "device_map", "adapter"):
            config.pop(local_only, None)
        return {"backend": "openai", "base_urls": list(base_urls), "model": model, **config}
    return {"backend": "transformers", "path_or_id": model, **config}


def reward_from_config(config: Mapping[str, Any], **overrides: Any) -> RubricReward:
    """A :class:`RubricReward` from a plain mapping (YAML): ``judge`` (see
    :func:`judge_spec_from_config`), ``rubric``, ``reference_answer``, ``mode``, ``normalize``,
    ``fallback``, ``name``, ``samples``, ``timeout``, ``generation_kwargs``. The judge is built
    lazily, on the first call, in the process that calls.

    Example:
        >>> r = reward_from_config({"judge": {"model": "embedded:tiny-random"}, "rubric": "honesty"})
        >>> r.__name__.startswith("prometheus_honesty")
        True
    """
    config = {**dict(config), **overrides}
    judge = config.pop("judge", None)
    if judge is None:
        raise ValueError("the reward config needs a 'judge' section")
    spec = judge_spec_from_config(judge) if isinstance(judge, Mapping) else judge
    known = {"rubric", "reference_answer", "mode", "normalize", "fallback", "name", "samples", "timeout",
             "rubric_column", "reference_column", "generation_kwargs", "log_feedback"}
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"unknown reward config key(s): {', '.join(sorted(unknown))}")
    return RubricReward(spec, **config)


@dataclass
class RewardArguments:
    """The judge and reward knobs of the training recipes, as a dataclass ``trl.TrlParser`` reads
    from the command line and YAML (``judge_model: ...``, ``rubric: ...``).

    Example:
        >>> args = RewardArguments(judge_model="embedded:tiny-random", judge_max_new_tokens=8)
        >>> build_reward(args).mode
        'expected'
    """

    judge_model: str = field(default="prometheus-eval/prometheus-7b-v2.0", metadata={"help": "evaluator: hub id, folder, 'embedded' or 'embedded:tiny-random'"})
    judge_base_urls: list[str] | None = field(default=None, metadata={"help": "judge through these OpenAI-compatible servers instead of loading judge_model"})
    judge_dtype: str = field(default="auto", metadata={"help": "evaluator dtype (auto, bfloat16, float16, float32)"})
    judge_device_map: str | None = field(default=None, metadata={"help": "where the evaluator lives, e.g. 'cuda:1' (keep it off the policy's GPU)"})
    judge_seed: int | None = field(default=None, metadata={"help": "seed for the evaluator's sampling"})
    judge_max_new_tokens: int | None = field(default=None, metadata={"help": "feedback length cap (default 1024)"})
    judge_temperature: float | None = field(default=None, metadata={"help": "evaluator sampling temperature (default 1.0; 0 = greedy)"})
    judge_max_input_tokens: int | None = field(default=None, metadata={"help": "prompt token budget of the evaluator"})
    judge_max_batch_tokens: int | None = field(default=None, metadata={"help": "token budget of one local evaluator batch"})
    rubric: str | None = field(default="helpfulness", metadata={"help": "default rubric: preset name, YAML path or text (a 'rubric' column overrides it per row)"})
    reference_answer: str | None = field(default=None, metadata={"help": "default reference answer (a 'reference_answer' column overrides it)"})
    reward_type: str = field(default="absolute", metadata={"help": "absolute (RubricReward) or pairwise (PairwiseReward)"})
    mode: str = field(default="expected", metadata={"help": "generate, expected or direct"})
    normalize: str = field(default="linear", metadata={"help": "linear, symmetric, centered, zscore or identity (absolute rewards)"})
    pairwise_transform: str = field(default="prob", metadata={"help": "prob, symmetric or logit (pairwise rewards)"})
    pairwise_anchor: str = field(default="auto", metadata={"help": "auto, reference or group (pairwise rewards in GRPO/RLOO)"})
    samples: int = field(default=1, metadata={"help": "judgments per completion, averaged"})
    fallback: float | None = field(default=None, metadata={"help": "reward of unscorable completions (default: None, masked)"})
    timeout: float | None = field(default=None, metadata={"help": "seconds one judge call may take before its batch is skipped"})
    async_reward: bool = field(default=False, metadata={"help": "use the async reward (overlaps with other async rewards; for remote judges)"})
    reward_name: str | None = field(default=None, metadata={"help": "the reward's name in the logs"})


def build_reward(args: RewardArguments, layout: Layout = "group") -> _JudgedReward:
    """The reward function a recipe's :class:`RewardArguments` describe (judge built lazily)."""
    judge: dict[str, Any] = {
        "model": args.judge_model,
        "base_urls": args.judge_base_urls,
        "dtype": args.judge_dtype,
        "device_map": args.judge_device_map,
        "seed": args.judge_seed,
        "max_input_tokens": args.judge_max_input_tokens,
        "max_batch_tokens": args.judge_max_batch_tokens,
    }
    spec = judge_spec_from_config(judge)
    common: dict[str, Any] = dict(
        rubric=args.rubric,
        reference_answer=args.reference_answer,
        mode=args.mode,
        fallback=args.fallback,
        name=args.reward_name,
        samples=args.samples,
        timeout=args.timeout,
        generation_kwargs={
            key: value
            for key, value in (("max_new_tokens", args.judge_max_new_tokens), ("temperature", args.judge_temperature))
            if value is not None
        },
    )
    if args.reward_type == "absolute":
        cls = AsyncRubricReward if args.async_reward else RubricReward
        return cls(spec, normalize=args.normalize, **common)
    if args.reward_type == "pairwise":
        cls = AsyncPairwiseReward if args.async_reward and layout == "group" else PairwiseReward
        return cls(spec, layout=layout, anchor=args.pairwise_anchor, transform=args.pairwise_transform, **common)  # type: ignore[arg-type]
    raise ValueError(f"unknown reward_type {args.reward_type!r}; choose 'absolute' or 'pairwise'")


ENV_CONFIG = "PROMETHEUS_REWARD_CONFIG"
_ENV_JUDGE = {"MODEL": "model", "BASE_URLS": "base_urls", "DTYPE": "dtype", "DEVICE_MAP": "device_map",
              "SEED": "seed", "MAX_INPUT_TOKENS": "max_input_tokens"}
_ENV_REWARD = {"RUBRIC": "rubric", "MODE": "mode", "NORMALIZE": "normalize", "FALLBACK": "fallback",
               "TIMEOUT": "timeout", "SAMPLES": "samples", "NAME": "name"}


def _env_value(text: str) -> Any:
    try:
        import yaml

        return yaml.safe_load(text)
    except Exception:
        return text


def reward_config_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The reward config the environment describes, for engines that load a reward from a file.

    ``PROMETHEUS_REWARD_CONFIG`` names a YAML/JSON file holding a :func:`reward_from_config`
    mapping; ``PROMETHEUS_REWARD_MODEL``, ``_BASE_URLS`` (comma-separated), ``_DTYPE``,
    ``_DEVICE_MAP``, ``_SEED``, ``_MAX_INPUT_TOKENS``, ``_RUBRIC``, ``_MODE``, ``_NORMALIZE``,
    ``_FALLBACK``, ``_TIMEOUT``, ``_SAMPLES``, ``_NAME``, ``_MAX_NEW_TOKENS`` and ``_TEMPERATURE``
    override it.

    Example:
        >>> reward_config_from_env({"PROMETHEUS_REWARD_MODEL": "embedded", "PROMETHEUS_REWARD_MODE": "direct"})
        {'judge': {'model': 'embedded'}, 'mode': 'direct'}
    """
    env = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    path = env.get(ENV_CONFIG)
    if path:
        import yaml

        with open(path, encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle) or {}
        if not isinstance(loaded, Mapping):
            raise ValueError(f"{path}: the reward config must be a mapping")
        config.update(loaded)
    judge = dict(config.get("judge") or {})
    for suffix, key in _ENV_JUDGE.items():
        value = env.get(f"PROMETHEUS_REWARD_{suffix}")
        if value:
            judge[key] = value if key in ("model", "base_urls", "device_map", "dtype") else _env_value(value)
    if judge:
        config["judge"] = judge
    for suffix, key in _ENV_REWARD.items():
        value = env.get(f"PROMETHEUS_REWARD_{suffix}")
        if value:
            config[key] = value if key in ("rubric", "mode", "normalize", "name") else _env_value(value)
    generation = dict(config.get("generation_kwargs") or {})
    if env.get("PROMETHEUS_REWARD_MAX_NEW_TOKENS"):
        generation["max_new_tokens"] = int(env["PROMETHEUS_REWARD_MAX_NEW_TOKENS"])
    if env.get("PROMETHEUS_REWARD_TEMPERATURE"):
        generation["temperature"] = float(env["PROMETHEUS_REWARD_TEMPERATURE"])
    if generation:
        config["generation_kwargs"] = generation
    return config


__all__ = [
    "AsyncPairwiseReward",
    "AsyncRubricReward",
    "JudgeBusy",
    "PairwiseReward",
    "RewardArguments",
    "RubricReward",
    "build_reward",
    "judge_spec_from_config",
    "reward_config_from_env",
    "reward_from_config",
]
