"""A reward server: a Judge behind FastAPI, with concurrent requests micro-batched into judge calls.

Endpoints:
    - ``POST /get_reward``: OpenRLHF's remote reward protocol. ``{"query": [...], "prompts":
      [...], "labels": [...]}`` -> ``{"rewards": [...], "scores": [...], "extra_logs": {...}}``.
      Each query is prompt + response; the response graded is the query minus its prompt.
      Labels, when given, are used as reference answers.
    - ``POST /grade``: ``{"instructions", "responses", "reference_answers"?, "rubric"?, "mode"?,
      "samples"?}`` -> ``{"grades": [...], "rewards": [...]}`` (null rewards for unscorable rows).
    - ``POST /compare``: ``{"instructions", "responses_a", "responses_b", ...}`` -> ``{"preferences": [...]}``.
    - ``GET /health`` and ``GET /metrics`` (JSON; ``?format=prometheus`` for the text format).

Rewards in ``/get_reward`` must be floats (OpenRLHF builds a tensor from them): an unscorable
row gets ``unscorable_reward`` (default 0.0, the neutral point of the default ``symmetric``
normalisation, i.e. a score of 3) and is flagged in ``extra_logs["unscorable"]``.

Requests from many clients are queued and merged into one judge call per batch (up to
``max_batch_rows`` rows or ``max_batch_tokens`` estimated tokens, waiting at most
``max_wait_ms`` for the batch to fill); the judge runs in worker threads so the event loop keeps
answering health checks, metrics and validation errors while the model works.

Example:
    >>> from prometheus_reward import Judge
    >>> from prometheus_reward.server import create_app
    >>> app = create_app(Judge.from_pretrained("embedded:tiny-random"), mode="direct")  # doctest: +SKIP
    >>> # uvicorn.run(app, host="127.0.0.1", port=8000), or: prometheus-reward serve --model M
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import ipaddress
import logging
import math
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Union

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .rubric import Rubric
from .scoring import NORMALIZE_METHODS, Normalizer

logger = logging.getLogger(__name__)

Mode = Literal["generate", "expected", "direct"]
RubricField = Union[str, dict[str, Any]]
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_CHARS_PER_TOKEN = 4  # batch-size estimate only; the backend does exact token batching


# -- request schemas ------------------------------------------------------------------------------
def _same_length(model: BaseModel, names: tuple[str, ...]) -> None:
    lengths = {n: len(getattr(model, n)) for n in names if isinstance(getattr(model, n), list)}
    first = names[0]
    for name, length in lengths.items():
        if length != lengths[first]:
            raise ValueError(f"field '{name}' has {length} items but '{first}' has {lengths[first]}")


class RewardRequest(BaseModel):
    """OpenRLHF remote reward request (extra keys are ignored for forward compatibility)."""

    model_config = ConfigDict(extra="ignore")
    query: list[str] = Field(min_length=1)
    prompts: list[str] | None = None
    labels: list[str | None] | None = None
    rubric: RubricField | None = None

    @model_validator(mode="after")
    def _lengths(self) -> "RewardRequest":
        _same_length(self, ("query", "prompts", "labels"))
        return self


class GradeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instructions: list[str] = Field(min_length=1)
    responses: list[str]
    reference_answers: list[str | None] | str | None = None
    rubric: RubricField | list[RubricField] | None = None
    mode: Mode | None = None
    samples: int | None = Field(default=None, ge=1, le=16)

    @model_validator(mode="after")
    def _lengths(self) -> "GradeRequest":
        _same_length(self, ("instructions", "responses", "reference_answers", "rubric"))
        return self


class CompareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instructions: list[str] = Field(min_length=1)
    responses_a: list[str]
    responses_b: list[str]
    reference_answers: list[str | None] | str | None = None
    rubric: RubricField | list[RubricField] | None = None
    mode: Mode | None = None
    samples: int | None = Field(default=None, ge=1, le=16)
    swap: bool = True

    @model_validator(mode="after")
    def _lengths(self) -> "CompareRequest":
        _same_length(self, ("instructions", "responses_a", "responses_b", "reference_answers", "rubric"))
        return self


# -- metrics ----------------------------------------------------------------------------------------
def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class ServerMetrics:
    """Counters behind ``GET /metrics``; updated on the event loop and in judge threads."""

    started: float = field(default_factory=time.time)
    requests: Counter = field(default_factory=Counter)  # endpoint -> count
    statuses: Counter = field(default_factory=Counter)  # "2xx"/"4xx"/"5xx" -> count
    rows: int = 0
    unscorable_rows: int = 0
    judge_failures: int = 0
    batches: int = 0
    batch_rows: int = 0
    batch_max: int = 0
    batch_histogram: Counter = field(default_factory=Counter)
    judge_seconds: float = 0.0
    latencies: dict[str, deque] = field(default_factory=dict)
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record_request(self, path: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[path] += 1
            self.statuses[f"{status // 100}xx"] += 1
            self.latencies.setdefault(path, deque(maxlen=20000)).append(seconds)

    def record_batch(self, rows: int, seconds: float, unscorable: int) -> None:
        with self.lock:
            self.batches += 1
            self.batch_rows += rows
            self.batch_max = max(self.batch_max, rows)
            bucket = next((b for b in _BATCH_BUCKETS if rows <= b), math.inf)
            self.batch_histogram["+Inf" if bucket == math.inf else str(bucket)] += 1
            self.judge_seconds += seconds
            self.rows += rows
            self.unscorable_rows += unscorable

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            latency = {}
            for path, values in self.latencies.items():
                vals = list(values)
                latency[path] = {
                    "count": len(vals),
                    "p50_s": _percentile(vals, 0.5),
                    "p90_s": _percentile(vals, 0.9),
                    "p99_s": _percentile(vals, 0.99),
                    "max_s": max(vals) if vals else None,
                }
            return {
                "uptime_s": time.time() - self.started,
                "requests": dict(self.requests),
                "responses": dict(self.statuses),
                "in_flight": self.in_flight,
                "rows": self.rows,
                "unscorable_rows": self.unscorable_rows,
                "judge_failures": self.judge_failures,
                "batches": {
                    "count": self.batches,
                    "rows": self.batch_rows,
                    "mean_size": self.batch_rows / self.batches if self.batches else 0.0,
                    "max_size": self.batch_max,
                    "histogram": {k: self.batch_histogram[k] for k in [*map(str, _BATCH_BUCKETS), "+Inf"]
                                  if self.batch_histogram[k]},
                    "judge_seconds": self.judge_seconds,
                },
                "latency": latency,
            }

    def prometheus_text(self) -> str:
        """The same numbers in the Prometheus exposition format."""
        snap = self.snapshot()
        lines = ["# TYPE prometheus_reward_requests_total counter"]
        for path, count in snap["requests"].items():
            lines.append(f'prometheus_reward_requests_total{{path="{path}"}} {count}')
        lines.append("# TYPE prometheus_reward_responses_total counter")
        for status, count in snap["responses"].items():
            lines.append(f'prometheus_reward_responses_total{{class="{status}"}} {count}')
        lines += [
            f"prometheus_reward_rows_total {snap['rows']}",
            f"prometheus_reward_unscorable_rows_total {snap['unscorable_rows']}",
            f"prometheus_reward_judge_failures_total {snap['judge_failures']}",
            f"prometheus_reward_batches_total {snap['batches']['count']}",
            f"prometheus_reward_batch_rows_total {snap['batches']['rows']}",
            "# TYPE prometheus_reward_batch_size histogram",
        ]
        cumulative = 0
        for bucket in [*map(str, _BATCH_BUCKETS), "+Inf"]:
            cumulative += snap["batches"]["histogram"].get(bucket, 0)
            lines.append(f'prometheus_reward_batch_size_bucket{{le="{bucket}"}} {cumulative}')
        lines.append("# TYPE prometheus_reward_latency_seconds summary")
        for path, stats in snap["latency"].items():
            for q in ("p50", "p90", "p99"):
                if stats[f"{q}_s"] is not None:
                    quantile = {"p50": "0.5", "p90": "0.9", "p99": "0.99"}[q]
                    lines.append(f'prometheus_reward_latency_seconds{{path="{path}",quantile="{quantile}"}} '
                                 f"{stats[f'{q}_s']:.6f}")
        return "\n".join(lines) + "\n"


# -- micro-batching ------------------------------------------------------------------------------------
@dataclass
class _Work:
    kind: str  # "grade" or "compare"
    options: tuple  # rows only merge with the same (mode, samples, swap)
    rows: list[dict[str, Any]]
    tokens: int
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


class MicroBatcher:
    """Merge concurrent requests into judge calls.

    A dispatcher task waits for a free worker, then for the oldest queued request's batch to
    fill (``max_batch_rows`` rows or ``max_batch_tokens`` estimated tokens) or its
    ``max_wait_ms`` to pass, and hands the merged rows to ``run_batch`` in a thread. While every
    worker is busy requests pile up, so batches grow with load.
    """

    def __init__(
        self,
        run_batch: Callable[[str, tuple, list[dict[str, Any]]], list[Any]],
        metrics: ServerMetrics,
        *,
        max_batch_rows: int = 64,
        max_batch_tokens: int = 65536,
        max_wait_ms: float = 10.0,
        workers: int = 1,
    ):
        self.run_batch = run_batch
        self.metrics = metrics
        self.max_batch_rows = max_batch_rows
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait_ms / 1000.0
        self.workers = workers
        self._pending: deque[_Work] = deque()
        self._arrived: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()

    def start(self) -> None:
        self._arrived = asyncio.Event()
        self._slots = asyncio.Semaphore(self.workers)
        self._task = asyncio.get_running_loop().create_task(self._dispatch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for work in self._pending:
            if not work.future.done():
                work.future.set_exception(RuntimeError("server shutting down"))

    @property
    def queued_rows(self) -> int:
        return sum(len(w.rows) for w in self._pending)

    async def submit(self, kind: str, options: tuple, rows: list[dict[str, Any]]) -> list[Any]:
        tokens = sum(len(v) for row in rows for v in row.values() if isinstance(v, str)) // _CHARS_PER_TOKEN
        work = _Work(kind, options, rows, tokens, asyncio.get_running_loop().create_future())
        self._pending.append(work)
        assert self._arrived is not None
        self._arrived.set()
        return await work.future

    def _fits(self, key: tuple) -> bool:
        rows = tokens = 0
        for work in self._pending:
            if (work.kind, work.options) == key:
                rows += len(work.rows)
                tokens += work.tokens
        return rows >= self.max_batch_rows or tokens >= self.max_batch_tokens

    def _take(self) -> list[_Work]:
        first = self._pending[0]
        key = (first.kind, first.options)
        taken, kept = [], deque()
        rows = tokens = 0
        for work in self._pending:
            fits = rows + len(work.rows) <= self.max_batch_rows and tokens + work.tokens <= self.max_batch_tokens
            if (work.kind, work.options) == key and (not taken or fits):
                taken.append(work)
                rows += len(work.rows)
                tokens += work.tokens
            else:
                kept.append(work)
        self._pending = kept
        return taken

    async def _dispatch(self) -> None:
        assert self._arrived is not None and self._slots is not None
        while True:
            await self._slots.acquire()
            while not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            first = self._pending[0]
            key = (first.kind, first.options)
            while not self._fits(key):
                remaining = first.arrived + self.max_wait - time.monotonic()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch = self._take()
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[_Work]) -> None:
        assert self._slots is not None
        try:
            rows = [row for work in batch for row in work.rows]
            kind, options = batch[0].kind, batch[0].options
            try:
                results = await asyncio.to_thread(self.run_batch, kind, options, rows)
            except Exception as err:  # the judge itself failed: these requests get a 500
                logger.exception("judge call failed for a batch of %d rows", len(rows))
                with self.metrics.lock:
                    self.metrics.judge_failures += 1
                for work in batch:
                    if not work.future.done():
                        work.future.set_exception(err)
                return
            start = 0
            for work in batch:
                if not work.future.done():  # the client may have gone; its rows were still judged once
                    work.future.set_result(results[start : start + len(work.rows)])
                start += len(work.rows)
        finally:
            self._slots.release()


# -- the app ----------------------------------------------------------------------------------------
@dataclass
class ServerConfig:
    """Server knobs (see ``prometheus-reward serve --help``)."""

    mode: Mode = "direct"
    rubric: Any = "helpfulness"
    samples: int = 1
    normalize: str = "symmetric"
    unscorable_reward: float = 0.0
    labels_as_reference: bool = True
    token: str | None = None
    max_batch_rows: int = 64
    max_batch_tokens: int = 65536
    max_wait_ms: float = 10.0
    workers: int = 1
    max_request_rows: int = 4096
    max_body_bytes: int = 16 * 2**20
    generation_overrides: dict[str, Any] = field(default_factory=dict)


class _BodyTooLarge(Exception):
    pass


class _BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes with 413 (declared or streamed)."""

    def __init__(self, app, limit: int, metrics: "ServerMetrics | None" = None):
        self.app = app
        self.limit = limit
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(scope, send)
        seen = 0
        started = False

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(scope, send)

    async def _refuse(self, scope, send):
        if self.metrics is not None:  # refused before the app sees it: count it here
            self.metrics.record_request(scope.get("path", ""), 413, 0.0)
        body = f'{{"error": "request body over the limit of {self.limit} bytes"}}'.encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _error_location(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def create_app(judge: Any, config: ServerConfig | None = None, **overrides: Any) -> FastAPI:
    """Build the FastAPI app serving ``judge`` (keyword ``overrides`` set :class:`ServerConfig` fields).

    Example:
        >>> app = create_app(judge, mode="direct", rubric="helpfulness", token="s3cret")  # doctest: +SKIP
    """
    config = config or ServerConfig()
    for key, value in overrides.items():
        if not hasattr(config, key):
            raise TypeError(f"unknown server option {key!r}")
        setattr(config, key, value)
    if config.normalize not in NORMALIZE_METHODS:
        raise ValueError(f"unknown normalization {config.normalize!r}; choose one of {NORMALIZE_METHODS}")
    default_rubric = Rubric.coerce(config.rubric) if config.rubric is not None else None
    normalizer = Normalizer(config.normalize)  # type: ignore[arg-type]
    normalizer_lock = threading.Lock()  # zscore keeps running statistics; batches may run in parallel
    metrics = ServerMetrics()

    def run_batch(kind: str, options: tuple, rows: list[dict[str, Any]]) -> list[Any]:
        started = time.perf_counter()
        mode, samples, swap = options
        if kind == "grade":
            results = judge.grade(
                [r["instruction"] for r in rows], [r["response"] for r in rows], [r["rubric"] for r in rows],
                [r["reference"] for r in rows], mode=mode, samples=samples, errors="return",
                **config.generation_overrides,
            )
            unscorable = sum(g.value is None for g in results)
        else:
            results = judge.compare(
                [r["instruction"] for r in rows], [r["response_a"] for r in rows], [r["response_b"] for r in rows],
                [r["rubric"] for r in rows], [r["reference"] for r in rows], mode=mode, samples=samples,
                swap=swap, errors="return", **config.generation_overrides,
            )
            unscorable = sum(p.prob_a is None for p in results)
        metrics.record_batch(len(rows), time.perf_counter() - started, unscorable)
        return results

    batcher = MicroBatcher(run_batch, metrics, max_batch_rows=config.max_batch_rows,
                           max_batch_tokens=config.max_batch_tokens, max_wait_ms=config.max_wait_ms,
                           workers=config.workers)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="prometheus-reward", lifespan=lifespan)
    app.state.judge, app.state.config, app.state.metrics, app.state.batcher = judge, config, metrics, batcher

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        details = []
        for error in exc.errors():
            loc = tuple(p for p in error.get("loc", ()) if p != "body")
            where = _error_location(loc)
            message = error.get("msg", "invalid")
            if error.get("type") == "json_invalid":
                where, message = "", "the request body is not valid JSON"
            message = message.removeprefix("Value error, ")
            details.append(f"{where}: {message}" if where else message)
        return JSONResponse(status_code=422, content={"error": "invalid request", "details": details})

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        return JSONResponse(status_code=exc.status_code, content={"error": exc.detail}, headers=exc.headers)

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        started = time.perf_counter()
        path = request.url.path
        if config.token and path != "/health":
            supplied = request.headers.get("authorization", "")
            expected = f"Bearer {config.token}"
            if not hmac.compare_digest(supplied.encode(), expected.encode()):
                metrics.record_request(path, 401, time.perf_counter() - started)
                return JSONResponse(status_code=401, content={"error": "missing or wrong bearer token"},
                                    headers={"WWW-Authenticate": "Bearer"})
        metrics.in_flight += 1
        try:
            response = await call_next(request)
        except Exception:
            logger.exception("unhandled error on %s", path)
            response = JSONResponse(status_code=500, content={"error": "internal server error"})
        finally:
            metrics.in_flight -= 1
        if path != "/metrics":
            metrics.record_request(path, response.status_code, time.perf_counter() - started)
        return response

    def rubrics_for(value: Any, n: int) -> list[Rubric]:
        values = value if isinstance(value, list) else [value] * n
        out, cache = [], {}
        for row, item in enumerate(values):
            if item is None:
                if default_rubric is None:
                    raise HTTPException(422, f"row {row}: field 'rubric' is missing and the server has no default")
                out.append(default_rubric)
                continue
            key = repr(item)
            if key not in cache:
                try:
                    cache[key] = Rubric.coerce(item)
                except (ValueError, TypeError) as err:
                    raise HTTPException(422, f"row {row}: field 'rubric' is invalid: {err}") from err
            out.append(cache[key])
        return out

    def check_rows(n: int) -> None:
        if n > config.max_request_rows:
            raise HTTPException(413, f"{n} rows in one request, over the limit of {config.max_request_rows}")

    async def judged(kind: str, options: tuple, rows: list[dict[str, Any]]) -> list[Any]:
        try:
            return await batcher.submit(kind, options, rows)
        except Exception as err:
            raise HTTPException(500, f"the judge failed on this batch: {type(err).__name__}: {err}") from err

    def rewards_of(grades: list[Any], rubrics: list[Rubric]) -> list[float | None]:
        values = [g.value for g in grades]
        with normalizer_lock:
            return normalizer(values, [r.key for r in rubrics])

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": judge.model_id, "mode": config.mode, "queued_rows": batcher.queued_rows}

    @app.get("/metrics")
    async def get_metrics(format: str = "json"):
        if format == "prometheus":
            return PlainTextResponse(metrics.prometheus_text())
        snap = metrics.snapshot()
        backend = getattr(judge, "backend", None)
        if backend is not None and hasattr(backend, "endpoint_stats"):
            snap["upstreams"] = backend.endpoint_stats()
        return snap

    @app.post("/get_reward")
    async def get_reward(body: RewardRequest) -> dict[str, Any]:
        n = len(body.query)
        check_rows(n)
        prompts = body.prompts or [""] * n
        labels = body.labels if (body.labels and config.labels_as_reference) else [None] * n
        rubrics = rubrics_for(body.rubric, n)
        rows = []
        for query, prompt, label, rubric in zip(body.query, prompts, labels, rubrics):
            # OpenRLHF sends prompt + response as the query; what the judge grades is the rest.
            response = query[len(prompt):] if prompt and query.startswith(prompt) else query
            rows.append({"instruction": prompt, "response": response, "rubric": rubric,
                         "reference": label if label else None})
        grades = await judged("grade", (config.mode, config.samples, True), rows)
        rewards = rewards_of(grades, rubrics)
        flags = [float(r is None) for r in rewards]
        final = [config.unscorable_reward if r is None else float(r) for r in rewards]
        return {
            "rewards": final,
            "scores": final,
            "extra_logs": {
                "judge_score": [0.0 if g.value is None else float(g.value) for g in grades],
                "unscorable": flags,
                "truncated": [float(g.truncated) for g in grades],
            },
        }

    @app.post("/grade")
    async def grade(body: GradeRequest) -> dict[str, Any]:
        n = len(body.instructions)
        check_rows(n)
        refs = body.reference_answers if isinstance(body.reference_answers, list) else [body.reference_answers] * n
        rubrics = rubrics_for(body.rubric, n)
        rows = [{"instruction": i, "response": r, "rubric": rub, "reference": ref}
                for i, r, rub, ref in zip(body.instructions, body.responses, rubrics, refs)]
        grades = await judged("grade", (body.mode or config.mode, body.samples or config.samples, True), rows)
        rewards = rewards_of(grades, rubrics)
        return {"grades": [g.to_dict() for g in grades], "rewards": rewards,
                "unscorable": sum(r is None for r in rewards)}

    @app.post("/compare")
    async def compare(body: CompareRequest) -> dict[str, Any]:
        n = len(body.instructions)
        check_rows(n)
        refs = body.reference_answers if isinstance(body.reference_answers, list) else [body.reference_answers] * n
        rubrics = rubrics_for(body.rubric, n)
        rows = [{"instruction": i, "response_a": a, "response_b": b, "rubric": rub, "reference": ref}
                for i, a, b, rub, ref in zip(body.instructions, body.responses_a, body.responses_b, rubrics, refs)]
        prefs = await judged("compare", (body.mode or config.mode, body.samples or config.samples, body.swap), rows)
        return {"preferences": [p.to_dict() for p in prefs], "unscorable": sum(p.prob_a is None for p in prefs)}

    app.add_middleware(_BodyLimit, limit=config.max_body_bytes, metrics=metrics)
    return app


# -- CLI ----------------------------------------------------------------------------------------------
def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``prometheus-reward serve``."""
    from .cli_args import add_generation_arguments, add_judge_arguments

    parser = subparsers.add_parser("serve", help="serve rewards over HTTP (OpenRLHF /get_reward, /grade, /compare)")
    add_judge_arguments(parser)
    add_generation_arguments(parser)
    group = parser.add_argument_group("server")
    group.add_argument("--host", default="127.0.0.1", help="listen address (loopback by default)")
    group.add_argument("--port", type=int, default=8000)
    group.add_argument("--rubric", default="helpfulness", help="default rubric: preset name, YAML file or text")
    group.add_argument("--normalize", default="symmetric", choices=list(NORMALIZE_METHODS),
                       help="score -> reward mapping (symmetric: (s-3)/2 in [-1, 1])")
    group.add_argument("--unscorable-reward", type=float, default=0.0,
                       help="reward sent to OpenRLHF for unscorable rows (flagged in extra_logs)")
    group.add_argument("--no-labels-as-reference", action="store_true",
                       help="ignore OpenRLHF labels instead of using them as reference answers")
    group.add_argument("--token", default=None,
                       help="require 'Authorization: Bearer TOKEN' (or set PROMETHEUS_REWARD_TOKEN)")
    group.add_argument("--max-batch-rows", type=int, default=64, help="rows merged into one judge call")
    group.add_argument("--max-merge-tokens", type=int, default=65536,
                       help="estimated tokens merged into one judge call (--max-batch-tokens is the backend's budget)")
    group.add_argument("--max-wait-ms", type=float, default=10.0, help="how long a batch waits to fill")
    group.add_argument("--workers", type=int, default=None,
                       help="judge calls in parallel (default 1 for a local model, 4 for HTTP upstreams)")
    group.add_argument("--max-request-rows", type=int, default=4096)
    group.add_argument("--max-body-mb", type=float, default=16.0)
    group.add_argument("--log-level", default="warning", help="uvicorn log level")
    parser.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from .cli_args import generation_overrides, judge_from_args

    token = args.token or os.environ.get("PROMETHEUS_REWARD_TOKEN") or None
    if not _is_loopback(args.host) and not token:
        logger.warning("serving on %s without a bearer token: anyone who can reach it can use the judge", args.host)
    judge = judge_from_args(args)
    remote = bool(getattr(args, "openai_base_url", None))
    config = ServerConfig(
        mode=args.mode,
        rubric=args.rubric,
        samples=args.samples,
        normalize=args.normalize,
        unscorable_reward=args.unscorable_reward,
        labels_as_reference=not args.no_labels_as_reference,
        token=token,
        max_batch_rows=args.max_batch_rows,
        max_batch_tokens=args.max_merge_tokens,
        max_wait_ms=args.max_wait_ms,
        workers=args.workers or (4 if remote else 1),
        max_request_rows=args.max_request_rows,
        max_body_bytes=int(args.max_body_mb * 2**20),
        generation_overrides=generation_overrides(args),
    )
    app = create_app(judge, config)
    print(f"prometheus-reward serving {judge.model_id} (mode={config.mode}) on http://{args.host}:{args.port}",
          flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m prometheus_reward.server --model M ...``: the ``serve`` subcommand on its own."""
    parser = argparse.ArgumentParser(prog="prometheus-reward-serve")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["serve", *(argv if argv is not None else __import__("sys").argv[1:])])
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
