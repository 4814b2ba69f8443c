"""A durable judgment cache: sqlite on disk, keyed by a content hash of everything that decides a
judgment, so reruns (after a crash, ``kill -9`` included) never pay twice for the same call.

A key is the sha256 of a canonical JSON of: the judge (the evaluator: its model id, revision,
chat family, engine, context length and fingerprint, i.e. a local model's weights as loaded, adapter
included, and its tokenizer, an HTTP server's API and logprob settings; and every judging rule of
its frozen config: relative-prompt variant, budgets, score floors, defences...), the kind of judgment and template (absolute / relative, with or without swap), the mode,
the number of samples, the sampling parameters after overrides, and the row inputs with the
rubric *rendered* (so a preset name and its text give one key). Values are the ``Grade`` /
``Preference`` dicts. The database runs in WAL mode: many processes may read and write at once,
and a committed batch survives a killed process.

:class:`CachedJudge` puts the Judge interface over the cache: only the misses reach the judge,
and only complete judgments are stored: a row with an error, a partial result (``partial_samples``,
``single_order``) or a checklist with an item not judged is judged again next time.

A cache file belongs to one evaluator: the first :class:`CachedJudge` to open it records the
evaluator's identity in the file, and another evaluator's judge is refused
(:class:`CacheIdentityError`) unless it is opened with ``share=True`` (``--cache-share``); their keys
never collide, so sharing is safe, but it must be asked for. The default path is one file per
evaluator.

Example:
    >>> from prometheus_reward.cached import JudgmentCache
    >>> cache = JudgmentCache(":memory:")
    >>> cache.put_many({"k1": {"score": 4}})
    >>> cache.get_many(["k1", "k2"])
    {'k1': {'score': 4}}
    >>> cache.stats()["hits"], cache.stats()["misses"]
    (1, 1)
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .config import JudgingConfig
from .grades import Grade, Preference
from .rows import RowError, column

CACHE_ENV = "PROMETHEUS_REWARD_CACHE"
# 2: grades carry source and score mass; 3: the judge identity is every judging rule;
# 4: the evaluator's engine, context length and fingerprint (weights, tokenizer, API settings) join it
CACHE_SCHEMA_VERSION = 4
_SQLITE_MAX_VARS = 500  # stay well under SQLITE_MAX_VARIABLE_NUMBER on old builds


class CacheIdentityError(ValueError):
    """A cache file written by one evaluator, opened by another without ``share=True``."""


def default_cache_path(evaluator: Mapping[str, Any] | None = None) -> Path:
    """``$PROMETHEUS_REWARD_CACHE`` if set; else, under the package cache home, one file per
    evaluator (``judgments/<model>-<identity hash>.sqlite``) when its identity is given (see
    :func:`evaluator_identity`), or ``judgments.sqlite``.

    Example:
        >>> default_cache_path({"model_id": "runs/a/final"}).name  # doctest: +SKIP
        'final-3f2a9c0d1e4b.sqlite'
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    from .embedded import cache_home

    if evaluator is None:
        return cache_home() / "judgments.sqlite"
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(str(evaluator.get("model_id"))).name)
    return cache_home() / "judgments" / f"{name or 'evaluator'}-{identity_hash(evaluator)[:12]}.sqlite"


class JudgmentCache:
    """Judgments in an sqlite file (WAL mode), safe across threads, processes and crashes.

    Args:
        path: the database file (created with its folder), or ``":memory:"``; default
            :func:`default_cache_path`.
        timeout: seconds to wait for another writer's lock before failing.

    Example:
        >>> cache = JudgmentCache(":memory:")
        >>> cache.put_many({"a": {"winner": "A"}})
        >>> cache.get("a")
        {'winner': 'A'}
    """

    def __init__(self, path: str | Path | None = None, timeout: float = 60.0):
        self.path = str(default_cache_path() if path is None else path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # One connection per cache object, shared by threads behind a lock (sqlite connections
        # are not thread-safe on their own); processes each open their own.
        self._conn = sqlite3.connect(self.path, timeout=timeout, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.writes = 0
        with self._lock:
            if self.path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable against process crashes in WAL mode (only an OS crash or power
            # loss can drop the last commits), and much faster than FULL.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS judgments ("
                " key TEXT PRIMARY KEY, kind TEXT NOT NULL, value TEXT NOT NULL, created REAL NOT NULL)"
            )
            self._conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")

    # -- raw access ---------------------------------------------------------------------------
    def get(self, key: str) -> dict[str, Any] | None:
        """One cached value, or None."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The cached values among ``keys`` (counting hits and misses per distinct key)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        with self._lock:
            for start in range(0, len(wanted), _SQLITE_MAX_VARS):
                part = wanted[start : start + _SQLITE_MAX_VARS]
                marks = ",".join("?" * len(part))
                for key, value in self._conn.execute(f"SELECT key, value FROM judgments WHERE key IN ({marks})", part):
                    found[key] = json.loads(value)
            self.hits += len(found)
            self.misses += len(wanted) - len(found)
        return found

    def put_many(self, items: Mapping[str, Mapping[str, Any]], kind: str = "") -> None:
        """Store values in one transaction (all or nothing, even under ``kill -9``)."""
        if not items:
            return
        now = time.time()
        rows = [(key, kind, json.dumps(dict(value), sort_keys=True), now) for key, value in items.items()]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("INSERT OR REPLACE INTO judgments VALUES (?, ?, ?, ?)", rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self.writes += len(rows)

    def claim(self, evaluator: Mapping[str, Any], share: bool = False) -> None:
        """Record ``evaluator`` (an :func:`evaluator_identity`) as the file's owner when it has
        none; when another evaluator owns it, raise :class:`CacheIdentityError` unless ``share``.

        Example:
            >>> cache = JudgmentCache(":memory:")
            >>> cache.claim({"model_id": "a"})
            >>> cache.claim({"model_id": "b"})
            Traceback (most recent call last):
            ...
            prometheus_reward.cached.CacheIdentityError: :memory: holds the judgments of another evaluator (model_id 'a', not 'b'); use another cache file, or share it on purpose: CachedJudge(..., share=True), --cache-share (the keys keep the evaluators' judgments apart)
            >>> cache.claim({"model_id": "b"}, share=True)
        """
        mine = json.dumps(dict(evaluator), sort_keys=True, default=repr)
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")  # two processes creating one file: the first one owns it
            try:
                self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('evaluator', ?)", (mine,))
                owner = self._conn.execute("SELECT value FROM meta WHERE name = 'evaluator'").fetchone()[0]
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        if owner == mine or share:
            return
        theirs = json.loads(owner)
        differs = [f"{name} {theirs.get(name)!r}, not {evaluator.get(name)!r}"
                   for name in sorted(set(theirs) | set(evaluator)) if theirs.get(name) != evaluator.get(name)]
        raise CacheIdentityError(
            f"{self.path} holds the judgments of another evaluator ({'; '.join(differs)}); use another cache "
            f"file, or share it on purpose: CachedJudge(..., share=True), --cache-share (the keys keep the "
            f"evaluators' judgments apart)")

    def owner(self) -> dict[str, Any] | None:
        """The identity of the evaluator that owns the file (see :meth:`claim`), or None."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE name = 'evaluator'").fetchone()
        return None if row is None else json.loads(row[0])

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM judgments").fetchone()[0])

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM judgments WHERE key = ?", (key,)).fetchone() is not None

    def stats(self) -> dict[str, int]:
        """Hits, misses and writes of this object (not of other processes)."""
        return {"hits": self.hits, "misses": self.misses, "writes": self.writes}

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "JudgmentCache":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# -- keys ----------------------------------------------------------------------------------------
def evaluator_identity(backend: Any) -> dict[str, Any]:
    """What identifies an evaluator backend: its engine (class), model id, revision, chat family and
    context length (it decides truncation), plus whatever its ``fingerprint()`` reports (a local
    model's weights as loaded and its tokenizer; an HTTP server's API, logprob settings and
    tokenizer: see :mod:`prometheus_reward.backends.fingerprint`). A backend without
    ``fingerprint()`` is known by its name alone.

    Example:
        >>> evaluator_identity(Judge.from_pretrained("embedded").backend)["context_length"]  # doctest: +SKIP
        32768
    """
    ident = {
        "engine": type(backend).__name__,
        "model_id": getattr(backend, "model_id", None),
        "revision": getattr(backend, "revision", None),
        "family": getattr(backend, "family", None),
        "context_length": getattr(backend, "context_length", None),
    }
    fingerprint = getattr(backend, "fingerprint", None)
    if callable(fingerprint):
        ident.update(fingerprint())
    return ident


def identity_hash(identity: Mapping[str, Any]) -> str:
    """sha256 of a canonical JSON of an identity."""
    text = json.dumps(dict(identity), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def judge_identity(judge: Any) -> dict[str, Any]:
    """What identifies the judge in a key: the backend's model id, revision and chat family, the
    whole :func:`evaluator_identity` (``evaluator``: weights, tokenizer, context length, API...),
    plus every judging rule of the judge's frozen config (:meth:`JudgeConfig.judging_rules
    <prometheus_reward.config.JudgeConfig.judging_rules>`: all fields not marked as describing
    the backend, so a new rule joins the key without a list to update here). A judge-like object
    without a config contributes its backend alone.

    Example:
        >>> judge = Judge(my_backend, min_score_mass=0.0)                        # doctest: +SKIP
        >>> judge_identity(judge)["min_score_mass"], judge_identity(judge)["model_id"]  # doctest: +SKIP
        (0.0, 'my-judge')
    """
    config = getattr(judge, "config", None)
    rules = config.judging_rules() if config is not None else {}
    return {
        **rules,
        "model_id": judge.model_id,
        "revision": getattr(judge.backend, "revision", None),
        "family": getattr(judge.backend, "family", None),
        "evaluator": evaluator_identity(judge.backend),
    }


def sampling_identity(judge: Any, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The judge's sampling parameters with the call's overrides applied."""
    return dataclasses.asdict(judge.sampling.replace(**overrides))


def _rubric_text(rubric: Any) -> Any:
    # The rendered text, so that every way of naming one rubric shares a key; an unusable rubric
    # keeps its raw form (the judge reports it and nothing is stored).
    from .checklist import Checklist, coerce_criteria

    try:
        criteria = coerce_criteria(rubric)
    except (TypeError, ValueError, OSError):
        return rubric
    if isinstance(criteria, Checklist):
        return {"checklist": [[i.criterion, i.weight, i.descriptions] for i in criteria.items],
                "aggregation": criteria.aggregation, "min_items_frac": criteria.min_items_frac}
    return criteria.render()


def judgment_key(
    judge_id: Mapping[str, Any],
    kind: str,
    mode: str,
    samples: int,
    sampling: Mapping[str, Any],
    inputs: Mapping[str, Any],
) -> str:
    """sha256 of a canonical JSON of everything that decides one judgment.

    Example:
        >>> k1 = judgment_key({"model_id": "m"}, "absolute", "direct", 1, {}, {"instruction": "q", "response": "r"})
        >>> k2 = judgment_key({"model_id": "m"}, "absolute", "expected", 1, {}, {"instruction": "q", "response": "r"})
        >>> len(k1), k1 == k2
        (64, False)
    """
    payload = {
        "v": CACHE_SCHEMA_VERSION,
        "judge": dict(judge_id),
        "kind": kind,
        "mode": mode,
        "samples": samples,
        "sampling": dict(sampling),
        "inputs": dict(inputs),
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _row_keys(judge: Any, kind: str, mode: str, samples: int, overrides: Mapping[str, Any], rubrics: list[Any],
              columns: Mapping[str, Sequence[Any]], claim: Callable[[Mapping[str, Any]], None] = lambda _: None) -> list[str]:
    """One key per row; each distinct rubric object is rendered once; ``claim`` sees the evaluator."""
    ident, sampling = judge_identity(judge), sampling_identity(judge, overrides)
    claim(ident["evaluator"])
    rendered: dict[int, Any] = {}
    keys = []
    for i, rubric in enumerate(rubrics):
        if id(rubric) not in rendered:
            rendered[id(rubric)] = _rubric_text(rubric)
        inputs = {name: values[i] for name, values in columns.items()}
        keys.append(judgment_key(ident, kind, mode, samples, sampling, {**inputs, "rubric": rendered[id(rubric)]}))
    return keys


PARTIAL_FLAGS = ("partial_samples", "single_order")  # a judgment allowed to stand on part of its evidence


def is_complete(judgment: Grade | Preference) -> bool:
    """Whether a judgment may be stored: no error, not partial (:data:`PARTIAL_FLAGS`), and for a
    checklist, every item judged.

    Example:
        >>> is_complete(Grade(score=4, mean=4.0)), is_complete(Grade(score=4, mean=4.0, flags=["partial_samples"]))
        (True, False)
        >>> is_complete(Grade(expected=2.0, items=[{"id": "a", "value": 5.0, "error": None},
        ...                                        {"id": "b", "value": None, "error": "no verdict"}]))
        False
    """
    if judgment.error is not None or any(flag in PARTIAL_FLAGS for flag in judgment.flags):
        return False
    items = getattr(judgment, "items", None) or ()
    return all(item.get("error") is None and item.get("value") is not None for item in items)


def _through_cache(cache: JudgmentCache, kind: str, keys: list[str], run: Callable[[list[int]], list], restore: Callable[..., Any]) -> list:
    """Hits from sqlite; misses (deduplicated by key) judged in one ``run(rows)`` call; complete
    results stored before returning, in input order."""
    found = cache.get_many(keys)
    todo: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key not in found and key not in todo:
            todo[key] = i
    fresh: dict[str, Any] = {}
    if todo:
        fresh = dict(zip(todo, run(list(todo.values()))))
        cache.put_many({k: r.to_dict() for k, r in fresh.items() if is_complete(r)}, kind=kind)
    return [fresh[k] if k in fresh else restore.from_dict(found[k]) for k in keys]


# -- the Judge interface over the cache ---------------------------------------------------------------------
class CachedJudge:
    """A judge whose judgments go through a :class:`JudgmentCache`: it has the Judge interface
    (``grade``, ``compare``, their async twins, ``model_id``, ``backend``...), so every workflow
    (rerank, best-of-n, labeling, rewards) takes it where it takes a judge.

    Hits come from sqlite; misses (deduplicated by key) go to the wrapped judge in one call, and
    complete results are stored before they are returned. ``grade_rendered`` passes through uncached.

    Args:
        judge: a :class:`~prometheus_reward.judge.Judge`.
        cache: a :class:`JudgmentCache`, a path, or None (``$PROMETHEUS_REWARD_CACHE``, else one
            file per evaluator under the cache home: :func:`default_cache_path`).
        share: open a file another evaluator owns (see :meth:`JudgmentCache.claim`); without it
            that is a :class:`CacheIdentityError`.

    Example:
        >>> judge = CachedJudge(Judge.from_pretrained("embedded"), "judgments.sqlite")        # doctest: +SKIP
        >>> judge.grade(["Say hi."], ["Hello!"], "helpfulness", mode="direct")[0].expected   # doctest: +SKIP
        3.12
    """

    def __init__(self, judge: Any, cache: "JudgmentCache | str | Path | None" = None, share: bool = False):
        if isinstance(judge, CachedJudge):
            judge = judge.judge
        self.judge = judge
        self.share = share
        evaluator = evaluator_identity(judge.backend)
        if isinstance(cache, JudgmentCache):
            self.cache = cache
        else:
            self.cache = JudgmentCache(default_cache_path(evaluator) if cache is None else cache)
        self._claimed = ""
        self._claim(evaluator)

    def _claim(self, evaluator: Mapping[str, Any]) -> None:
        # checked again whenever the evaluator's identity changes (weights trained in this process)
        fingerprint = identity_hash(evaluator)
        if fingerprint != self._claimed:
            self.cache.claim(evaluator, share=self.share)
            self._claimed = fingerprint

    def __getattr__(self, name: str) -> Any:
        # everything else (model_id, backend, sampling, config, relative_variant...) is the judge's
        if name in ("judge", "cache", "share", "_claimed"):
            raise AttributeError(name)
        return getattr(self.judge, name)

    def __repr__(self) -> str:
        return f"CachedJudge({self.judge!r}, cache={self.cache.path!r})"

    def replace(self, **changes: Any) -> "CachedJudge":
        """:meth:`Judge.replace <prometheus_reward.judge.Judge.replace>`, still through this cache
        (the new rules give new keys)."""
        return CachedJudge(self.judge.replace(**changes), self.cache, share=self.share)

    def grade(self, instructions: Sequence[Any], responses: Sequence[Any], rubric: Any,
              reference_answers: Any = None, mode: str = JudgingConfig.mode, samples: int = 1,
              errors: str = "raise", checklist_aggregation: str | None = None, **sampling: Any) -> list[Grade]:
        """:meth:`Judge.grade <prometheus_reward.judge.Judge.grade>` through the cache."""
        n = len(instructions)
        if len(responses) != n:
            raise RowError(f"{n} instructions but {len(responses)} responses")
        rubrics = column(rubric, n, "rubric")
        references = column(reference_answers, n, "reference_answers")
        kind = "absolute" if checklist_aggregation is None else f"absolute+checklist-{checklist_aggregation}"
        keys = _row_keys(self.judge, kind, mode, samples, sampling, rubrics,
                         {"instruction": instructions, "response": responses, "reference_answer": references},
                         self._claim)
        extra = {} if checklist_aggregation is None else {"checklist_aggregation": checklist_aggregation}

        def run(rows: list[int]) -> list[Grade]:
            return self.judge.grade(
                [instructions[i] for i in rows], [responses[i] for i in rows], [rubrics[i] for i in rows],
                [references[i] for i in rows], mode=mode, samples=samples, errors=errors, **extra, **sampling,
            )

        return _through_cache(self.cache, "absolute", keys, run, Grade)

    def compare(self, instructions: Sequence[Any], responses_a: Sequence[Any], responses_b: Sequence[Any],
                rubric: Any, reference_answers: Any = None, mode: str = JudgingConfig.mode, samples: int = 1,
                swap: bool = True, errors: str = "raise", **sampling: Any) -> list[Preference]:
        """:meth:`Judge.compare <prometheus_reward.judge.Judge.compare>` through the cache."""
        n = len(instructions)
        if not len(responses_a) == len(responses_b) == n:
            raise RowError(f"{n} instructions, {len(responses_a)} responses_a, {len(responses_b)} responses_b")
        rubrics = column(rubric, n, "rubric")
        references = column(reference_answers, n, "reference_answers")
        kind = "relative+swap" if swap else "relative"
        keys = _row_keys(self.judge, kind, mode, samples, sampling, rubrics,
                         {"instruction": instructions, "response_a": responses_a, "response_b": responses_b,
                          "reference_answer": references}, self._claim)

        def run(rows: list[int]) -> list[Preference]:
            return self.judge.compare(
                [instructions[i] for i in rows], [responses_a[i] for i in rows], [responses_b[i] for i in rows],
                [rubrics[i] for i in rows], [references[i] for i in rows], mode=mode, samples=samples, swap=swap,
                errors=errors, **sampling,
            )

        return _through_cache(self.cache, kind, keys, run, Preference)

    async def agrade(self, *args: Any, **kwargs: Any) -> list[Grade]:
        """:meth:`grade` without blocking the event loop (runs in a worker thread)."""
        return await asyncio.to_thread(self.grade, *args, **kwargs)

    async def acompare(self, *args: Any, **kwargs: Any) -> list[Preference]:
        """:meth:`compare` without blocking the event loop (runs in a worker thread)."""
        return await asyncio.to_thread(self.compare, *args, **kwargs)

    def stats(self) -> dict[str, int]:
        """The cache's hits, misses and writes in this process."""
        return self.cache.stats()

    def close(self) -> None:
        self.cache.close()
