"""The reward server's app: a Judge behind FastAPI, with concurrent requests micro-batched into
judge calls (:mod:`.batching`) and counted (:mod:`.metrics`).

Endpoints:
    - ``POST /get_reward``: OpenRLHF's remote reward protocol. ``{"query": [...], "prompts":
      [...], "labels": [...]}`` -> ``{"rewards": [...], "scores": [...], "extra_logs": {...}}``.
      Queries, prompts and labels are read as the OpenRLHF adapter reads them
      (:mod:`prometheus_reward.adapters.protocol`): the response graded is the query minus its
      prompt; a label is a reference answer or ``{"reference_answer", "rubric"}``.
    - ``POST /grade``: ``{"instructions", "responses", "reference_answers"?, "rubric"?, "mode"?,
      "samples"?}`` -> ``{"grades": [...], "rewards": [...]}`` (null rewards for unscorable rows).
    - ``POST /compare``: ``{"instructions", "responses_a", "responses_b", ...}`` -> ``{"preferences": [...]}``.
    - ``POST /group_reward``: ``{"prompts", "responses", "pairs_per_completion"?, ...}`` -> per row the
      within-group Bradley-Terry strength of a pairwise tournament (rows sharing a prompt are a group).
    - ``GET /health`` and ``GET /metrics`` (JSON; ``?format=prometheus`` for the text format).

The endpoints score through the reward classes (:mod:`prometheus_reward.rewards`): ``/get_reward``
through the configured shape (``reward_type``: rubric, checklist, or pairwise against the reference),
``/grade`` through a rubric reward, ``/group_reward`` through the tournament; their judge calls go
through the micro-batcher. Unscorable rows are settled by who is to blame
(:mod:`prometheus_reward.blame`): a response the policy made unjudgeable gets the floor reward
everywhere (flagged ``judge_floor``); a row the judge or the transport failed on is null in
``/grade`` and ``/group_reward``, and in ``/get_reward``, whose rewards must be floats (OpenRLHF
builds a tensor from them), gets the mean reward of the scored rows of its prompt in the request,
else the neutral value (a score of 3), or the reward config's ``fallback`` when set (flagged
``judge_fill``). Every response carries each row's ``cause``; ``/metrics`` counts rows by cause.
When the judge- or transport-caused share of the last ``breaker_window`` requests reaches
``breaker_threshold``, the circuit breaker answers 503 with the last errors
(:class:`~prometheus_reward.blame.JudgeOutage`).

Example:
    >>> from prometheus_reward import Judge
    >>> from prometheus_reward.server import create_app
    >>> app = create_app(Judge.from_pretrained("embedded:tiny-random"), mode="direct")  # doctest: +SKIP
    >>> # uvicorn.run(app, host="127.0.0.1", port=8000), or: prometheus-reward serve --model M
"""

from __future__ import annotations

import hmac
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import fields, replace
from typing import Any, Literal, Union

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..adapters.protocol import blame_flags, openrlhf_rows
from ..blame import CircuitBreaker, JudgeOutage
from ..config import JudgingConfig, RewardConfig, from_mapping
from ..rows import RowError, RubricColumn, column
from .batching import MicroBatcher
from .config import ServerConfig
from .metrics import ServerMetrics

logger = logging.getLogger("prometheus_reward.server")

Mode = Literal["generate", "expected", "direct"]
RubricField = Union[str, dict[str, Any]]


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


class GroupRequest(BaseModel):
    """Whole prompt groups for the tournament (``/group_reward``): rows with the same prompt are a group."""

    model_config = ConfigDict(extra="forbid")
    prompts: list[str] = Field(min_length=1)
    responses: list[str]
    reference_answers: list[str | None] | str | None = None
    rubric: RubricField | list[RubricField] | None = None
    pairs_per_completion: int | None = Field(default=None, ge=1)
    transform: Literal["prob", "symmetric", "logit"] = "prob"
    mode: Mode | None = None
    samples: int | None = Field(default=None, ge=1, le=16)

    @model_validator(mode="after")
    def _lengths(self) -> "GroupRequest":
        _same_length(self, ("prompts", "responses", "reference_answers", "rubric"))
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


# -- the app ----------------------------------------------------------------------------------------
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


class _BatchedJudge:
    """The judge as the rewards see it inside the server: ``agrade`` / ``acompare`` submit their
    rows to the micro-batcher, which merges concurrent requests into judge calls (the rewards'
    async driver awaits ``judge.a<method>``)."""

    def __init__(self, judge: Any, batcher: MicroBatcher):
        self.inner = judge
        self.batcher = batcher
        self.config = getattr(judge, "config", None)
        self.model_id = getattr(judge, "model_id", None)

    def grade(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.grade(*args, **kwargs)

    def compare(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.compare(*args, **kwargs)

    async def agrade(self, instructions: list[str], responses: list[str], rubric: Any,
                     reference_answers: Any = None, **options: Any) -> list[Any]:
        n = len(instructions)
        rows = [{"instruction": i, "response": r, "rubric": rub, "reference": ref} for i, r, rub, ref in
                zip(instructions, responses, column(rubric, n, "rubric"), column(reference_answers, n, "reference_answers"))]
        return await self.batcher.submit("grade", tuple(sorted(options.items())), rows)

    async def acompare(self, instructions: list[str], responses_a: list[str], responses_b: list[str], rubric: Any,
                       reference_answers: Any = None, **options: Any) -> list[Any]:
        n = len(instructions)
        rows = [{"instruction": i, "response_a": a, "response_b": b, "rubric": rub, "reference": ref}
                for i, a, b, rub, ref in zip(instructions, responses_a, responses_b, column(rubric, n, "rubric"),
                                             column(reference_answers, n, "reference_answers"))]
        return await self.batcher.submit("compare", tuple(sorted(options.items())), rows)


def _server_config(config: ServerConfig | None, overrides: dict[str, Any]) -> ServerConfig:
    """``config`` with keyword ``overrides``: JudgingConfig fields (``mode``), RewardConfig fields
    (``rubric``, ``normalize``, ``fallback``, ``reward_type``) or ServerConfig fields (``token``)."""
    config = replace(config) if config is not None else ServerConfig()
    judging_names = {f.name for f in fields(JudgingConfig)}
    reward_names = {f.name for f in fields(RewardConfig)}
    judging = {k: overrides.pop(k) for k in list(overrides) if k in judging_names}
    reward = {k: overrides.pop(k) for k in list(overrides) if k in reward_names}
    if judging:  # create_app(judge, mode="direct") is a JudgingConfig option
        config.judging = from_mapping(JudgingConfig, {**config.judging.__dict__, **judging}, "server options")
    if reward:  # create_app(judge, normalize="symmetric") is a RewardConfig option
        config.reward = from_mapping(RewardConfig, {**config.reward.__dict__, **reward}, "server options")
    unknown = sorted(k for k in overrides if k not in {f.name for f in fields(ServerConfig)})
    if unknown:
        raise TypeError(f"unknown server option(s) {', '.join(unknown)}")
    return replace(config, **overrides)


def create_app(judge: Any, config: ServerConfig | None = None, **overrides: Any) -> FastAPI:
    """Build the FastAPI app serving ``judge``. Keyword ``overrides`` set
    :class:`~prometheus_reward.server.config.ServerConfig` fields, or the fields of its
    :class:`~prometheus_reward.config.JudgingConfig` (``mode``) and
    :class:`~prometheus_reward.config.RewardConfig` (``rubric``, ``normalize``, ``fallback``,
    ``reward_type``). Every endpoint but ``/compare`` scores through a reward class
    (:mod:`prometheus_reward.rewards`): ``/get_reward`` through the configured shape (refused here
    when it needs whole groups: OpenRLHF sends one sample per request), ``/grade`` through a
    :class:`~prometheus_reward.rewards.RubricReward`, ``/group_reward`` through the tournament.

    Example:
        >>> app = create_app(judge, mode="direct", rubric="helpfulness", token="s3cret")  # doctest: +SKIP
    """
    from ..adapters.protocol import OPENRLHF_HTTP
    from ..rewards import make_reward

    config = _server_config(config, dict(overrides))
    remote = bool(getattr(getattr(judge, "config", None), "is_remote", False))
    metrics = ServerMetrics()

    def run_batch(kind: str, options: tuple, rows: list[dict[str, Any]]) -> list[Any]:
        started = time.perf_counter()
        if kind == "grade":
            results = judge.grade([r["instruction"] for r in rows], [r["response"] for r in rows],
                                  [r["rubric"] for r in rows], [r["reference"] for r in rows], **dict(options))
            unscorable = sum(g.value is None for g in results)
        else:
            results = judge.compare([r["instruction"] for r in rows], [r["response_a"] for r in rows],
                                    [r["response_b"] for r in rows], [r["rubric"] for r in rows],
                                    [r["reference"] for r in rows], **dict(options))
            unscorable = sum(p.prob_a is None for p in results)
        metrics.record_batch(len(rows), time.perf_counter() - started, unscorable)
        return results

    batcher = MicroBatcher(run_batch, metrics, max_batch_rows=config.max_batch_rows,
                           max_batch_tokens=config.max_merge_tokens, max_wait_ms=config.max_wait_ms,
                           workers=config.workers or (4 if remote else 1))
    batched_judge = _BatchedJudge(judge, batcher)

    # The rewards, built once per request option set. They run on the event loop (their judge calls
    # await the batcher), so a running normaliser (zscore) is never updated by two at once; /get_reward
    # and /grade share one, as they share one rubric.
    get_reward_reward = make_reward(batched_judge, config.judging, config.reward).for_engine(*OPENRLHF_HTTP)
    normalizer = getattr(get_reward_reward, "normalizer", None)
    # one breaker for the whole server: every endpoint's judge trouble counts towards it
    breaker = CircuitBreaker(config.reward.breaker_window, config.reward.breaker_threshold, "server")
    get_reward_reward._breaker = breaker
    rewards: dict[tuple, Any] = {}

    def reward_for(kind: str, mode: str | None, samples: int | None, **changes: Any) -> Any:
        key = (kind, mode, samples, tuple(sorted(changes.items())))
        reward = rewards.get(key)
        if reward is None:
            judging = replace(config.judging, mode=mode or config.judging.mode,
                              samples=samples or config.judging.samples)
            settings = replace(config.reward, reward_type=kind, fallback=None, **changes)
            reward = rewards[key] = make_reward(batched_judge, judging, settings)
            reward._breaker = breaker
            if kind == "absolute" and normalizer is not None:
                reward.normalizer = normalizer
        return reward

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="prometheus-reward", lifespan=lifespan)
    app.state.judge, app.state.config, app.state.metrics, app.state.batcher = judge, config, metrics, batcher
    app.state.reward = get_reward_reward

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

    rubric_column = RubricColumn(config.reward.rubric)

    def rubrics_for(values: Any, n: int) -> list[Any]:
        """Each row's rubric, resolved now: a bad rubric is the request's error (422), not an
        unscorable row."""
        cells = values if isinstance(values, list) else [values] * n
        try:
            return [rubric_column.resolve(cell, row) for row, cell in enumerate(cells)]
        except RowError as err:
            raise HTTPException(422, str(err)) from None

    def check_rows(n: int) -> None:
        if n > config.max_request_rows:
            raise HTTPException(413, f"{n} rows in one request, over the limit of {config.max_request_rows}")

    async def scored(reward: Any, prompts: list[Any], responses: list[Any], references: Any, rubrics: list[Any]) -> Any:
        try:
            batch = await reward.ascore_batch(prompts, responses, **{reward.reference_column: references,
                                                                     reward.rubric_column: rubrics})
        except JudgeOutage as err:  # the breaker tripped: the judge is down, say so rather than serve fills
            metrics.record_outage()
            raise HTTPException(503, str(err)) from None
        metrics.record_causes(batch.causes)
        if batch.failure is not None:  # the judge itself failed: a server error, not unscorable rows
            raise HTTPException(500, f"the judge failed on this batch: {batch.failure.removeprefix('judge call failed: ')}")
        return batch

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": judge.model_id, "mode": config.judging.mode, "queued_rows": batcher.queued_rows}

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
        labels = body.labels if (body.labels and config.labels_as_reference) else None
        # OpenRLHF sends prompt + response as the query; what the judge grades is the rest.
        rows = openrlhf_rows(body.query, body.prompts, labels, body.rubric)
        batch = await scored(get_reward_reward, rows.prompts, rows.responses, rows.references, rubrics_for(rows.rubrics, n))
        final, how = batch.filled(get_reward_reward.neutral_reward)
        metrics.record_fills(how)
        info = batch.info()
        return {
            "rewards": final,
            "scores": final,
            "extra_logs": {
                "judge_score": [0.0 if v is None else float(v) for v in batch.values],
                "unscorable": info["unscorable"],
                "truncated": info["truncated"],
                **blame_flags(batch, how),
            },
        }

    def masked(batch: Any) -> list[float | None]:
        """The rewards of an endpoint that can return null: a response the policy made unjudgeable
        keeps its floor (counted); the judge's and the transport's failures are null."""
        metrics.record_fills(["floor" if row.floor else None for row in batch.rows])
        return [None if row.unscorable and not row.floor else r for r, row in zip(batch.rewards, batch.rows)]

    @app.post("/grade")
    async def grade(body: GradeRequest) -> dict[str, Any]:
        n = len(body.instructions)
        check_rows(n)
        reward = reward_for("absolute", body.mode, body.samples)
        batch = await scored(reward, body.instructions, body.responses, body.reference_answers, rubrics_for(body.rubric, n))
        rewards = masked(batch)
        return {"grades": [g.to_dict() for g in batch.judgments], "rewards": rewards,
                "unscorable": sum(batch.unscorable), "causes": batch.causes,
                "judge_floor": [float(row.floor) for row in batch.rows]}

    @app.post("/group_reward")
    async def group_reward(body: GroupRequest) -> dict[str, Any]:
        """Rank the completions of each prompt group by a Bradley-Terry tournament (engines that
        send whole groups): rows with the same prompt form a group; the comparisons go through
        the micro-batcher like any other."""
        n = len(body.prompts)
        check_rows(n)
        k = body.pairs_per_completion if body.pairs_per_completion is not None else config.reward.pairs_per_completion
        reward = reward_for("tournament", body.mode, body.samples, pairs_per_completion=k,
                            pairwise_transform=body.transform)
        batch = await scored(reward, body.prompts, body.responses, body.reference_answers, rubrics_for(body.rubric, n))
        rewards = masked(batch)
        return {"rewards": rewards, "strengths": batch.values, "comparisons": [j.played for j in batch.judgments],
                "judgments": 2 * batch.judge_rows, "unscorable": sum(batch.unscorable), "causes": batch.causes,
                "judge_floor": [float(row.floor) for row in batch.rows]}

    @app.post("/compare")
    async def compare(body: CompareRequest) -> dict[str, Any]:
        n = len(body.instructions)
        check_rows(n)
        refs = body.reference_answers if isinstance(body.reference_answers, list) else [body.reference_answers] * n
        rubrics = rubrics_for(body.rubric, n)
        try:
            prefs = await batched_judge.acompare(
                body.instructions, body.responses_a, body.responses_b, rubrics, refs, errors="return",
                mode=body.mode or config.judging.mode, samples=body.samples or config.judging.samples, swap=body.swap,
                **config.judging.sampling_overrides())
        except Exception as err:
            raise HTTPException(500, f"the judge failed on this batch: {type(err).__name__}: {err}") from err
        return {"preferences": [p.to_dict() for p in prefs], "unscorable": sum(p.prob_a is None for p in prefs)}

    app.add_middleware(_BodyLimit, limit=config.max_body_bytes, metrics=metrics)
    return app
