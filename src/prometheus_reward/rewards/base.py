"""What every judge-backed reward shares: a lazily built, picklable judge; its options declared once
(:class:`~prometheus_reward.config.RewardConfig` and
:class:`~prometheus_reward.config.JudgingConfig`, held as ``reward.config`` and ``reward.judging``);
per-row inputs read by :func:`prometheus_reward.rows.judge_inputs`; the scoring contract
(:mod:`.contract`: ``score_batch`` / ``ascore_batch`` -> :class:`~.contract.RewardBatch`);
time-boxed judge calls; unique names; logging to TRL; who is to blame for an unscorable row
(:mod:`prometheus_reward.blame`: the floor for ``response``-caused rows, a mask or ``fallback`` for
the others, the per-cause counters) and the circuit breaker that stops a run when the judge is down.

The sync and async rewards share one implementation: a reward's work is a generator
(``_steps``) that yields :class:`JudgeCall` requests and receives their results (or the error they
raised), and returns a :class:`~.contract.RewardBatch`; :meth:`JudgedReward._drive` runs it with
blocking calls, :meth:`JudgedReward._adrive` with awaited ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Collection, Generator, Mapping, Sequence

from ..blame import CircuitBreaker, JudgeOutage, counted
from ..config import ConfigError, JudgeConfig, JudgingConfig, RewardConfig, from_mapping
from ..guards import guard_response
from ..judge import Judge
from ..rows import JudgeInputs, RubricColumn, group_key, judge_inputs
from ..checklist import coerce_criteria
from .contract import NEEDS_HINT, NEEDS_TEXT, ROWS, RewardBatch, ScoredRow, UnusableReward, cause_counts

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


# Exceptions of a judge call that say the request did not arrive or return, not that the evaluator
# failed to judge: their rows are blamed on the transport.
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, JudgeBusy, ConnectionError, OSError)


def unjudgeable(text: str | None) -> bool:
    """The policy made ``text`` unjudgeable: the defences leave nothing to grade (an unterminated
    reasoning block, a response that is only hidden reasoning).

    Example:
        >>> unjudgeable("<think>still going"), unjudgeable("<think>x</think>"), unjudgeable("Paris.")
        (True, True, False)
    """
    if text is None:
        return False
    guarded = guard_response(text)
    return guarded.error is not None or (bool(text.strip()) and not guarded.text.strip())


def failure_cause(err: BaseException) -> str:
    """The cause of the rows of a judge call that raised ``err``: ``transport`` for a timeout, a
    skipped call or a connection error (any exception named like one: ``httpx.ConnectError``...),
    ``judge`` otherwise.

    Example:
        >>> failure_cause(TimeoutError("slow")), failure_cause(ValueError("bad logits"))
        ('transport', 'judge')
    """
    if isinstance(err, _TRANSPORT_ERRORS):
        return "transport"
    name = type(err).__name__.lower()
    return "transport" if any(k in name for k in ("timeout", "connect", "transport", "network", "http")) else "judge"


def judge_config_of(judge: Any, where: str = "judge") -> JudgeConfig | None:
    """The config that rebuilds ``judge`` in another process: a JudgeConfig, its dict (None values
    dropped) or a model id; a Judge's own config (None for a hand-made judge)."""
    if isinstance(judge, JudgeConfig):
        return judge
    if isinstance(judge, str):
        return JudgeConfig(model=judge)
    if isinstance(judge, Mapping):
        return from_mapping(JudgeConfig, {k: v for k, v in judge.items() if v is not None}, where)
    config = judge.rebuild_config if hasattr(judge, "rebuild_config") else getattr(judge, "config", None)
    if config is None and not hasattr(judge, "grade"):
        raise TypeError(f"{where}: expected a Judge, a JudgeConfig (or its dict) or a model id, got {type(judge).__name__}")
    return config


_REWARD_FIELDS = frozenset(f.name for f in dataclasses.fields(RewardConfig))
_JUDGING_FIELDS = frozenset(f.name for f in dataclasses.fields(JudgingConfig))


def reward_options(options: Mapping[str, Any], sampling: Mapping[str, Any] | None = None,
                   where: str = "reward options") -> tuple[RewardConfig, JudgingConfig]:
    """Keyword options of a reward constructor -> its (RewardConfig, JudgingConfig): each name goes
    to the config that declares it; ``sampling`` holds JudgingConfig sampling fields. Unknown
    names and bad values are errors naming them."""
    unknown = sorted(set(options) - _REWARD_FIELDS - _JUDGING_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {', '.join(unknown)} (RewardConfig and JudgingConfig fields: "
                          f"{', '.join(sorted(_REWARD_FIELDS | _JUDGING_FIELDS))})")
    judging = from_mapping(JudgingConfig, {**{k: v for k, v in options.items() if k in _JUDGING_FIELDS},
                                           **dict(sampling or {})}, where)
    reward = from_mapping(RewardConfig, {k: v for k, v in options.items() if k in _REWARD_FIELDS}, where)
    return reward, judging


def config_options(judging: JudgingConfig, reward: RewardConfig, *drop: str) -> dict[str, Any]:
    """Every field of the two configs as reward-constructor keywords (a shape's builder passes them
    on; ``reward_type`` is the class's own, and ``drop`` names fields the builder passes itself)."""
    values = {**dataclasses.asdict(judging), **{f.name: getattr(reward, f.name) for f in dataclasses.fields(reward)}}
    for name in ("reward_type", *drop):
        values.pop(name, None)
    return values


def _config_field(name: str, doc: str) -> property:
    """A reward attribute that reads (and sets) its :class:`RewardConfig` field: one truth."""

    def get(self: Any) -> Any:
        return getattr(self.config, name)

    def set_(self: Any, value: Any) -> None:
        self.config = dataclasses.replace(self.config, **{name: value})

    return property(get, set_, doc=doc)


@dataclass
class JudgeCall:
    """One judge request a reward's steps yield: ``judge.<method>(*args, **kwargs)`` (the async
    driver awaits ``judge.a<method>``)."""

    method: str
    args: tuple
    kwargs: dict[str, Any]



Steps = Generator[JudgeCall, Any, Any]


class JudgedReward:
    """Base of the TRL reward functions: see :class:`~prometheus_reward.rewards.RubricReward`."""

    _default_prefix = "prometheus"
    #: the ``reward_type`` this class reports in ``self.config`` (a shape of the registry)
    shape = "absolute"
    #: what ``ScoredRow.value`` is for this shape
    value_name = "raw_score"

    def __init__(self, judge: Any, *, sampling: Mapping[str, Any] | None = None, **options: Any):
        # The options are declared once, by RewardConfig and JudgingConfig; they are checked here,
        # at construction, not every step.
        options.setdefault("rubric", None)
        options["reward_type"] = self._shape_of(options)
        self.config, self.judging = reward_options(options, sampling)
        self._judge: Any = None if isinstance(judge, (str, Mapping, JudgeConfig)) else judge
        self._judge_config = judge_config_of(judge)
        # The default rubric is coerced now, so that a typo fails at construction, not mid-training.
        rubric = self.config.rubric
        self.rubric: Any = None if rubric is None else coerce_criteria(rubric)  # a Rubric or a Checklist
        name = self.config.name
        base = name or f"{self._default_prefix}_{_slug(self.rubric.name or self.rubric.criteria) if self.rubric else 'rubric'}"
        self.__name__ = _claim_name(base, self) if name is None else name
        if name is not None:
            with _NAMES_LOCK:
                other = _LIVE_NAMES.get(name)
                if other is not None and other is not self:
                    logger.warning("two live rewards are both named %r: TRL will mix their metrics", name)
                _LIVE_NAMES[name] = self
        self.last_stats: dict[str, float] = {}
        self._engine_delivers: frozenset[str] | None = None  # set by for_engine
        self._init_runtime()

    def _shape_of(self, options: Mapping[str, Any]) -> str:
        return self.shape

    reference_answer = _config_field("reference_answer", "the default reference answer")
    fallback = _config_field("fallback", "the reward of unscorable rows (None: masked)")
    timeout = _config_field("timeout", "seconds one judge call may take")
    rubric_column = _config_field("rubric_column", "the dataset column with per-row rubrics")
    reference_column = _config_field("reference_column", "the dataset column with per-row references")
    log_feedback = _config_field("log_feedback", "log each completion's feedback to the trainer")
    length_penalty = _config_field("length_penalty", "group-relative length penalty (0: off)")

    @property
    def mode(self) -> str:
        return self.judging.mode

    @property
    def samples(self) -> int:
        return self.judging.samples

    @property
    def neutral_reward(self) -> float:
        """The reward of a middling judgment: what PPO engines give a ``judge``/``transport``-caused
        row when its prompt group has no scored row to average."""
        raise NotImplementedError

    def floor_reward(self, key: str = "") -> float:
        """The worst reward of this shape: what a ``response``-caused unscorable row gets (``key``:
        the row's rubric key, for a running normaliser)."""
        raise NotImplementedError

    # -- the contract --------------------------------------------------------------------------------------
    def score_batch(self, prompts: Sequence[Any] | None, completions: Sequence[Any], **columns: Any) -> RewardBatch:
        """Score one batch of rows: rewards plus per-row provenance (:class:`~.contract.RewardBatch`).
        ``columns`` are the dataset columns (the rubric and reference columns are read) and TRL's
        ``log_extra`` / ``log_metric``. Never raises on judge trouble or a bad row, with ONE
        exception: the circuit breaker (``breaker_window`` / ``breaker_threshold``) raises
        :class:`~prometheus_reward.blame.JudgeOutage` when the judge- or transport-caused share of
        the rows of the last ``breaker_window`` calls reaches ``breaker_threshold``, because
        training on masks and fills would be training on nothing.

        Example:
            >>> batch = reward.score_batch(["Say hi."], ["Hello!"])                        # doctest: +SKIP
            >>> batch.rewards, batch.rows[0].value, batch.info()["unscorable"]             # doctest: +SKIP
            ([0.79], 4.16, [0.0])
        """
        return self._watch(self._drive(self._steps(prompts, completions, columns)))

    async def ascore_batch(self, prompts: Sequence[Any] | None, completions: Sequence[Any], **columns: Any) -> RewardBatch:
        """:meth:`score_batch`, awaiting the judge (``judge.agrade`` / ``judge.acompare``)."""
        return self._watch(await self._adrive(self._steps(prompts, completions, columns)))

    def _watch(self, batch: RewardBatch) -> RewardBatch:
        """Count the batch's causes in the circuit breaker (raises JudgeOutage when it trips)."""
        try:
            self._breaker.record(batch.causes, batch.errors)
        except JudgeOutage as err:
            logger.error("%s: %s", self.__name__, err)
            raise JudgeOutage(f"{self.__name__}: {err} (breaker_window={self.config.breaker_window}, "
                              f"breaker_threshold={self.config.breaker_threshold}; set breaker_window=0 to "
                              "turn the breaker off)") from None
        return batch

    def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), completion_ids: Any = None,
                 **kwargs: Any) -> list[float | None]:
        """TRL's reward-function contract: one reward or None per completion (``score_batch(...).rewards``)."""
        return self.score_batch(prompts, completions, **kwargs).rewards

    @property
    def needs(self) -> str:
        """The row layout this shape needs (:data:`~.contract.ROWS`, ``GROUPS`` or ``PAIRS``)."""
        return ROWS

    def for_engine(self, engine: str, delivers: Collection[str], how: str = "") -> "JudgedReward":
        """Set this reward up for an engine that delivers the row layouts ``delivers``: refused with
        :class:`~.contract.UnusableReward` when the shape needs another (``how`` says how the
        engine calls, for the message). Returns the reward.

        Example:
            >>> reward.for_engine("OpenRLHF's reward_func", {"rows"}, "calls it with one sample at a time")  # doctest: +SKIP
        """
        needs = self.needs
        if needs not in delivers:
            raise UnusableReward(
                f"{engine} cannot use the {self.config.reward_type} reward {self.__name__!r} "
                f"({type(self).__name__}): it needs {NEEDS_TEXT[needs]}, and {engine} "
                f"{how or 'delivers ' + ', '.join(sorted(delivers))}. {NEEDS_HINT[needs]}".rstrip(". ") + "."
            )
        self._engine_delivers = frozenset(delivers)
        return self

    def _init_runtime(self) -> None:
        self._build_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._pending_thread: threading.Thread | None = None
        self._pending_task: asyncio.Future | None = None
        self._rubrics = RubricColumn(self.rubric, self.rubric_column)
        self._breaker = CircuitBreaker(self.config.breaker_window, self.config.breaker_threshold, self.__name__)

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
        for key in ("_judge", "_build_lock", "_state_lock", "_pending_thread", "_pending_task", "_rubrics", "_breaker"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._judge = None  # rebuilt on first call, in this process
        self._init_runtime()

    def __repr__(self) -> str:
        model = getattr(self._judge, "model_id", None) if self._judge is not None else getattr(self._judge_config, "model", None)
        return f"{type(self).__name__}(name={self.__name__!r}, judge={model!r}, mode={self.mode!r})"

    def _judge_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of every judge call: mode, samples, sampling overrides."""
        return {"mode": self.judging.mode, "samples": self.judging.samples, "errors": "return",
                **self.judging.sampling_overrides()}

    def _grade_kwargs(self) -> dict[str, Any]:
        """:meth:`_judge_kwargs` plus the checklist aggregation (absolute grading only)."""
        return {"errors": "return", **self.judging.grade_options()}

    # -- rows ---------------------------------------------------------------------------------------------------
    def _read_rows(self, prompts: Sequence[Any] | None, completions: Sequence[Any], kwargs: Mapping[str, Any]) -> JudgeInputs:
        return judge_inputs(prompts, completions, kwargs.get(self.rubric_column), kwargs.get(self.reference_column),
                            default_rubric=self._rubrics, default_reference=self.reference_answer,
                            rubric_field=self.rubric_column, reference_field=self.reference_column)

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

    def _settle(self, rewards: Sequence[float | None], causes: Sequence[str | None], rows: JudgeInputs,
                lengths: Sequence[int | None], keys: Sequence[str] | None = None, penalise: bool = True
                ) -> tuple[list[float | None], list[float | None], list[bool]]:
        """From the judged rewards (None: unscorable) and each unscorable row's cause: the rewards
        before the length penalty (``response``-caused rows at the floor: a real reward, penalised
        for length like any other), and the final rewards (penalised; ``fallback`` for the other
        unscorable rows when set, else None). Returns (final, before the penalty, floor flags)."""
        keys = list(keys) if keys is not None else [""] * len(rewards)
        floors = [r is None and c == "response" for r, c in zip(rewards, causes)]
        before = [self.floor_reward(k) if f else r for r, f, k in zip(rewards, floors, keys)]
        final = self._apply_fallback(self._penalise_length(list(before), rows, lengths) if penalise else list(before))
        return final, before, floors

    def _blame_metrics(self, causes: Sequence[str | None], values: Sequence[float | None]) -> dict[str, float]:
        """``unscorable_frac`` and the per-cause shares (an unscorable row of unknown cause counts
        as ``judge``)."""
        return cause_counts([None if v is not None else counted(c) for c, v in zip(causes, values)])

    def _scored_rows(self, rows: JudgeInputs, final: Sequence[float | None], values: Sequence[float | None],
                     errors: Sequence[str | None], judgments: Sequence[Any], truncated: Sequence[bool],
                     sources: Sequence[str | None], causes: Sequence[str | None],
                     floors: Sequence[bool]) -> list[ScoredRow]:
        return [ScoredRow(final[i], values[i], None if values[i] is not None else errors[i], judgments[i],
                          bool(truncated[i]), sources[i], None if values[i] is not None else causes[i], floors[i],
                          group_key(rows.prompts[i]))
                for i in range(len(final))]

    def _log(self, kwargs: Mapping[str, Any], extras: Mapping[str, list[Any]],
             metrics: Mapping[str, float | None]) -> dict[str, float]:
        """Log a batch's per-row ``extras`` and ``metrics`` to the trainer; returns the metrics logged."""
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
        return stats

    @staticmethod
    def _lengths(rows: JudgeInputs) -> list[int | None]:
        """Each completion's length in characters of the text the judge reads (token counts would
        serve as well: only ranks within a batch and z-scores within a group are used)."""
        return [None if r is None else len(r) for r in rows.responses]

    @staticmethod
    def _length_corr(rewards: Sequence[float | None], lengths: Sequence[int | None]) -> float | None:
        pairs = [(n, r) for n, r in zip(lengths, rewards) if n is not None and r is not None]
        if len(pairs) >= 3 and len({n for n, _ in pairs}) > 1 and len({r for _, r in pairs}) > 1:
            from scipy.stats import spearmanr

            return float(spearmanr([n for n, _ in pairs], [r for _, r in pairs]).statistic)
        return None

    @classmethod
    def _monitors(cls, rewards: Sequence[float | None], lengths: Sequence[int | None],
                  judged: Sequence[Any], penalised: Sequence[float | None] | None = None) -> dict[str, float | None]:
        """The in-training monitors of a judge being gamed: ``length_reward_corr`` (Spearman
        between completion length and reward over the batch, BEFORE the length penalty, which is
        built to be anti-correlated with length and would hide the padding; a policy padding its
        way up shows as a rising correlation), ``length_reward_corr_penalised`` (the same after the
        penalty, when ``penalised`` rewards are given), ``flagged_frac`` (responses carrying
        protocol markers or hidden reasoning), ``forced_frac`` (judgments scored from a forced
        [RESULT]) and the mean mass on the answer tokens."""
        corr = cls._length_corr(rewards, lengths)
        present = [j for j in judged if j is not None]
        masses = [getattr(j, "score_mass", getattr(j, "answer_mass", None)) for j in present]
        masses = [m for m in masses if m is not None]
        n = len(judged)
        out: dict[str, float | None] = {"length_reward_corr": corr}
        if penalised is not None:
            out["length_reward_corr_penalised"] = cls._length_corr(penalised, lengths)
        return {
            **out,
            "flagged_frac": sum(bool(j.flags) for j in present) / n if n else 0.0,
            "forced_frac": sum(j.forced for j in present) / n if n else 0.0,
            "score_mass_mean": sum(masses) / len(masses) if masses else None,
        }

    def _penalise_length(self, rewards: list[float | None], rows: JudgeInputs,
                         lengths: Sequence[int | None]) -> list[float | None]:
        """Group-relative length penalty (``length_penalty`` > 0): within each prompt group, a
        completion loses ``length_penalty`` times its length's z-score among its siblings, so a
        group-relative advantage (GRPO, RLOO) stops paying for padding; absolute length is not
        punished, and a group of equal lengths is untouched."""
        if not self.length_penalty:
            return rewards
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
