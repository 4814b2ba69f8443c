"""What every judge-backed reward shares: a lazily built, picklable judge; per-row inputs read
through :mod:`prometheus_reward.rows`; time-boxed judge calls; unique names; logging to TRL.

The sync and async rewards share one implementation: a reward's work is a generator
(``_steps``) that yields :class:`JudgeCall` requests and receives their results (or the error they
raised); :meth:`JudgedReward._drive` runs it with blocking calls, :meth:`JudgedReward._adrive`
with awaited ones.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Mapping, Sequence

from ..config import JudgeConfig, JudgingConfig, from_mapping
from ..judge import Judge
from ..rows import RowError, RubricColumn, column, reference_for, require_prompt, require_response
from ..checklist import coerce_criteria

logger = logging.getLogger("prometheus_reward.rewards")

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


def finite(value: float | None) -> float | None:
    """``value`` as a float, or None when it is missing or not finite."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class JudgeBusy(RuntimeError):
    """A previous judge call timed out and is still running; this batch is skipped."""


def judge_config_of(judge: Any) -> JudgeConfig | None:
    """The config that rebuilds ``judge`` in another process (None for a hand-made judge)."""
    if isinstance(judge, JudgeConfig):
        return judge
    if isinstance(judge, str):
        return JudgeConfig(model=judge)
    if isinstance(judge, Mapping):
        return from_mapping(JudgeConfig, judge, "judge config")
    config = getattr(judge, "config", None)
    if config is None and not hasattr(judge, "grade"):
        raise TypeError(f"judge must be a Judge, a JudgeConfig (or its dict) or a model id, got {type(judge).__name__}")
    return config


@dataclass
class JudgeCall:
    """One judge request a reward's steps yield: ``judge.<method>(*args, **kwargs)`` (the async
    driver awaits ``judge.a<method>``)."""

    method: str
    args: tuple
    kwargs: dict[str, Any]


@dataclass
class RewardRows:
    """One batch as the evaluator reads it: per-row texts, rubrics, references and input problems."""

    prompts: list[Any]
    instructions: list[str | None]
    responses: list[str | None]
    rubrics: list[Any]
    references: list[str | None]
    errors: list[str | None]
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def live(self) -> list[int]:
        return [i for i, e in enumerate(self.errors) if e is None]

    def __len__(self) -> int:
        return len(self.errors)


Steps = Generator[JudgeCall, Any, Any]


class JudgedReward:
    """Base of the TRL reward functions: see :class:`~prometheus_reward.rewards.RubricReward`."""

    _default_prefix = "prometheus"

    def __init__(
        self,
        judge: Any,
        *,
        rubric: Any = None,
        reference_answer: str | None = None,
        mode: str = JudgingConfig.mode,
        samples: int = JudgingConfig.samples,
        sampling: Mapping[str, Any] | None = None,
        fallback: float | None = None,
        name: str | None = None,
        timeout: float | None = None,
        checklist_aggregation: str | None = None,
        rubric_column: str = "rubric",
        reference_column: str = "reference_answer",
        log_feedback: bool = True,
        length_penalty: float = 0.0,
    ):
        # JudgingConfig checks mode, samples and the sampling values once, here, not every step
        self.judging = from_mapping(JudgingConfig, {"mode": mode, "samples": samples,
                                                    "checklist_aggregation": checklist_aggregation,
                                                    **dict(sampling or {})}, "reward options")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive (seconds) or None")
        self._judge: Any = None if isinstance(judge, (str, Mapping, JudgeConfig)) else judge
        self._judge_config = judge_config_of(judge)
        # The default rubric is coerced now, so that a typo fails at construction, not mid-training.
        self.rubric: Any = None if rubric is None else coerce_criteria(rubric)  # a Rubric or a Checklist
        self.reference_answer = reference_answer
        self.fallback = None if fallback is None else float(fallback)
        self.timeout = timeout
        self.rubric_column = rubric_column
        self.reference_column = reference_column
        self.log_feedback = log_feedback
        if length_penalty < 0:
            raise ValueError("length_penalty must be 0 (off) or positive")
        self.length_penalty = float(length_penalty)
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

    @property
    def mode(self) -> str:
        return self.judging.mode

    @property
    def samples(self) -> int:
        return self.judging.samples

    def _init_runtime(self) -> None:
        self._build_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._pending_thread: threading.Thread | None = None
        self._pending_task: asyncio.Future | None = None
        self._rubrics = RubricColumn(self.rubric, self.rubric_column)

    # -- the judge: built lazily from its config in a new process -------------------------------------------
    @property
    def judge(self) -> Any:
        """The judge, rebuilt from its config on first use after unpickling."""
        if self._judge is None:
            with self._build_lock:
                if self._judge is None:
                    if self._judge_config is None:
                        raise RuntimeError("no judge and no judge config to build one from")
                    self._judge = Judge.from_config(self._judge_config)
        return self._judge

    def __getstate__(self) -> dict[str, Any]:
        if self._judge_config is None:
            raise TypeError(
                f"{type(self).__name__} {self.__name__!r} cannot be pickled: its judge was built from a bare "
                "backend and has no config. Build it with Judge.from_pretrained / Judge.from_openai (or pass a "
                "JudgeConfig) so that worker processes can rebuild it."
            )
        state = dict(self.__dict__)
        for key in ("_judge", "_build_lock", "_state_lock", "_pending_thread", "_pending_task", "_rubrics"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._judge = None  # rebuilt on first call, in this process
        self._init_runtime()

    def __repr__(self) -> str:
        model = self._judge.model_id if self._judge is not None else getattr(self._judge_config, "model", None)
        return f"{type(self).__name__}(name={self.__name__!r}, judge={model!r}, mode={self.mode!r})"

    def _judge_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of every judge call: mode, samples, sampling overrides."""
        return {"mode": self.judging.mode, "samples": self.judging.samples, "errors": "return",
                **self.judging.sampling_overrides()}

    def _grade_kwargs(self) -> dict[str, Any]:
        """:meth:`_judge_kwargs` plus the checklist aggregation (absolute grading only)."""
        return {"errors": "return", **self.judging.grade_options()}

    # -- rows ---------------------------------------------------------------------------------------------------
    def _read_rows(self, prompts: Sequence[Any] | None, completions: Sequence[Any], kwargs: Mapping[str, Any]) -> RewardRows:
        n = len(completions)
        prompts = list(prompts) if prompts is not None else [None] * n
        rows = RewardRows(prompts, [], [], [], [], [])
        try:
            rubric_cells = column(kwargs.get(self.rubric_column), n, self.rubric_column)
            reference_cells = column(kwargs.get(self.reference_column), n, self.reference_column)
            if len(prompts) != n:
                raise RowError(f"field 'prompts' has {len(prompts)} values for {n} completions")
        except RowError as err:  # a malformed batch: every row says why, nothing raises
            for _ in range(n):
                for part in (rows.instructions, rows.responses, rows.rubrics, rows.references):
                    part.append(None)
                rows.errors.append(str(err))
            return rows
        for i in range(n):
            instruction = response = rubric = reference = None
            error = None
            try:
                instruction = require_prompt(prompts[i], i, "prompt")
                response = require_response(completions[i], i, "completion")
                rubric = self._rubrics.resolve(rubric_cells[i], i)
                reference = reference_for(reference_cells[i], self.reference_answer, i, self.reference_column)
            except RowError as err:
                error = str(err)
            rows.instructions.append(instruction)
            rows.responses.append(response)
            rows.rubrics.append(rubric)
            rows.references.append(reference)
            rows.errors.append(error)
        return rows

    # -- driving the steps: blocking or awaited ------------------------------------------------------------------
    def _drive(self, steps: Steps) -> Any:
        """Run a reward's steps with blocking (time-boxed) judge calls."""
        try:
            call = next(steps)
            while True:
                try:
                    result: Any = self._call_sync(lambda c=call: getattr(self.judge, c.method)(*c.args, **c.kwargs))
                except Exception as err:  # handed to the steps, which turn it into unscorable rows
                    result = err
                call = steps.send(result)
        except StopIteration as stop:
            return stop.value

    async def _adrive(self, steps: Steps) -> Any:
        """Run a reward's steps with awaited (time-boxed) judge calls."""
        try:
            call = next(steps)
            while True:
                try:
                    judge = await asyncio.to_thread(lambda: self.judge) if self._judge is None else self._judge
                    result: Any = await self._call_async(lambda c=call: getattr(judge, "a" + c.method)(*c.args, **c.kwargs))
                except Exception as err:
                    result = err
                call = steps.send(result)
        except StopIteration as stop:
            return stop.value

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

    def _failure(self, err: BaseException, n: int) -> str:
        """Log a failed judge call (it never raises into the trainer) and say why, for the rows."""
        message = f"judge call failed: {type(err).__name__}: {err}"
        if isinstance(err, (TimeoutError, JudgeBusy)):
            logger.warning("%s: %s; returning unscorable rewards for %d rows", self.__name__, message, n)
        else:
            logger.warning("%s: %s; returning unscorable rewards for %d rows", self.__name__, message, n, exc_info=err)
        return message

    # -- results --------------------------------------------------------------------------------------------------
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
                for name, values in extras.items():
                    log_extra(f"{self.__name__}/{name}", list(values))
            if callable(log_metric):
                for metric, value in stats.items():
                    log_metric(f"rewards/{self.__name__}/{metric}", value)
        except Exception as err:  # logging must never cost a training step
            logger.warning("%s: could not log to the trainer: %s", self.__name__, err)

    @staticmethod
    def _lengths(rows: RewardRows) -> list[int | None]:
        """Each completion's length in characters of the text the judge reads (token counts would
        serve as well: only ranks within a batch and z-scores within a group are used)."""
        return [None if r is None else len(r) for r in rows.responses]

    @staticmethod
    def _monitors(rewards: Sequence[float | None], lengths: Sequence[int | None],
                  judged: Sequence[Any]) -> dict[str, float | None]:
        """The in-training monitors of a judge being gamed: ``length_reward_corr`` (Spearman
        between completion length and reward over the batch; a policy padding its way up shows
        as a rising correlation), ``flagged_frac`` (responses carrying protocol markers or hidden
        reasoning), ``forced_frac`` (judgments scored from a forced [RESULT]) and the mean mass
        on the answer tokens."""
        pairs = [(n, r) for n, r in zip(lengths, rewards) if n is not None and r is not None]
        corr = None
        if len(pairs) >= 3 and len({n for n, _ in pairs}) > 1 and len({r for _, r in pairs}) > 1:
            from scipy.stats import spearmanr

            corr = float(spearmanr([n for n, _ in pairs], [r for _, r in pairs]).statistic)
        present = [j for j in judged if j is not None]
        masses = [getattr(j, "score_mass", getattr(j, "answer_mass", None)) for j in present]
        masses = [m for m in masses if m is not None]
        n = len(judged)
        return {
            "length_reward_corr": corr,
            "flagged_frac": sum(bool(j.flags) for j in present) / n if n else 0.0,
            "forced_frac": sum(j.forced for j in present) / n if n else 0.0,
            "score_mass_mean": sum(masses) / len(masses) if masses else None,
        }

    def _penalise_length(self, rewards: list[float | None], rows: RewardRows,
                         lengths: Sequence[int | None]) -> list[float | None]:
        """Group-relative length penalty (``length_penalty`` > 0): within each prompt group, a
        completion loses ``length_penalty`` times its length's z-score among its siblings, so a
        group-relative advantage (GRPO, RLOO) stops paying for padding; absolute length is not
        punished, and a group of equal lengths is untouched."""
        if not self.length_penalty:
            return rewards
        from ..rows import group_key

        groups: dict[str, list[int]] = {}
        for i, (r, n) in enumerate(zip(rewards, lengths)):
            if r is not None and n is not None:
                groups.setdefault(group_key(rows.prompts[i]), []).append(i)
        out = list(rewards)
        for members in groups.values():
            values = [float(lengths[i]) for i in members]  # type: ignore[arg-type]
            mean = sum(values) / len(values)
            std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
            if std > 0:
                for i, v in zip(members, values):
                    out[i] = out[i] - self.length_penalty * (v - mean) / std  # type: ignore[operator]
        return out

    def _warn_unscorable(self, errors: Sequence[str | None], n: int) -> None:
        bad = [e for e in errors if e]
        if bad:
            logger.warning("%s: %d of %d rows unscorable (first: %s)", self.__name__, len(bad), n, bad[0])
