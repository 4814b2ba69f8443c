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

Rewards in ``/get_reward`` must be floats (OpenRLHF builds a tensor from them): an unscorable
row gets ``unscorable_reward`` (default: the normaliser's neutral value, a score of 3, never the
worst reward) and is flagged in ``extra_logs["unscorable"]``.

Example:
    >>> from prometheus_reward import Judge
    >>> from prometheus_reward.server import create_app
    >>> app = create_app(Judge.from_pretrained("embedded:tiny-random"), mode="direct")  # doctest: +SKIP
    >>> # uvicorn.run(app, host="127.0.0.1", port=8000), or: prometheus-reward serve --model M
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, Union

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..adapters.protocol import instruction_of, label_fields, split_query
from ..config import JudgingConfig, RewardConfig, from_mapping
from ..rows import RowError, RubricColumn, prompt_text
from ..rubric import Rubric
from ..scoring import NORMALIZE_METHODS, Normalizer
from .batching import MicroBatcher
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
@dataclass
class ServerConfig:
    """Server knobs (see ``prometheus-reward serve --help``). How rows are judged is a
    :class:`~prometheus_reward.config.JudgingConfig`; the rubric and normalisation defaults are
    :class:`~prometheus_reward.config.RewardConfig`'s."""

    judging: JudgingConfig = field(default_factory=JudgingConfig)
    rubric: Any = RewardConfig.rubric
    normalize: str = RewardConfig.normalize
    unscorable_reward: float | None = None
    labels_as_reference: bool = True
    token: str | None = None
    max_batch_rows: int = 64
    max_batch_tokens: int = 65536
    max_wait_ms: float = 10.0
    workers: int = 1
    max_request_rows: int = 4096
    max_body_bytes: int = 16 * 2**20


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
    config = replace(config) if config is not None else ServerConfig()
    judging_names = {f.name for f in fields(JudgingConfig)}
    judging = {k: overrides.pop(k) for k in list(overrides) if k in judging_names}
    if judging:  # create_app(judge, mode="direct") is a JudgingConfig option
        config.judging = from_mapping(JudgingConfig, {**config.judging.__dict__, **judging}, "server options")
    for key, value in overrides.items():
        if not hasattr(config, key):
            raise TypeError(f"unknown server option {key!r}")
        setattr(config, key, value)
    if config.normalize not in NORMALIZE_METHODS:
        raise ValueError(f"unknown normalization {config.normalize!r}; choose one of {NORMALIZE_METHODS}")
    normalizer = Normalizer(config.normalize)  # type: ignore[arg-type]
    unscorable_reward = normalizer.neutral() if config.unscorable_reward is None else config.unscorable_reward
    sampling = config.judging.sampling_overrides()
    normalizer_lock = threading.Lock()  # zscore keeps running statistics; batches may run in parallel
    metrics = ServerMetrics()

    def run_batch(kind: str, options: tuple, rows: list[dict[str, Any]]) -> list[Any]:
        started = time.perf_counter()
        mode, samples, swap = options
        if kind == "grade":
            results = judge.grade(
                [r["instruction"] for r in rows], [r["response"] for r in rows], [r["rubric"] for r in rows],
                [r["reference"] for r in rows], mode=mode, samples=samples, errors="return", **sampling,
            )
            unscorable = sum(g.value is None for g in results)
        else:
            results = judge.compare(
                [r["instruction"] for r in rows], [r["response_a"] for r in rows], [r["response_b"] for r in rows],
                [r["rubric"] for r in rows], [r["reference"] for r in rows], mode=mode, samples=samples,
                swap=swap, errors="return", **sampling,
            )
            unscorable = sum(p.prob_a is None for p in results)
        metrics.record_batch(len(rows), time.perf_counter() - started, unscorable)
        return results

    batcher = MicroBatcher(run_batch, metrics, max_batch_rows=config.max_batch_rows,
                           max_batch_tokens=config.max_batch_tokens, max_wait_ms=config.max_wait_ms,
                           workers=config.workers)

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

    rubric_column = RubricColumn(config.rubric)

    def rubrics_for(values: Any, n: int) -> list[Rubric]:
        cells = values if isinstance(values, list) else [values] * n
        try:
            return [rubric_column.resolve(cell, row) for row, cell in enumerate(cells)]
        except RowError as err:
            raise HTTPException(422, str(err)) from None

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
        prompts = body.prompts or [""] * n
        labels = body.labels if (body.labels and config.labels_as_reference) else [None] * n
        fields_of = [label_fields(label, body.rubric) for label in labels]
        rubrics = rubrics_for([rubric for _, rubric in fields_of], n)
        rows = []
        for query, prompt, (reference, _), rubric in zip(body.query, prompts, fields_of, rubrics):
            # OpenRLHF sends prompt + response as the query; what the judge grades is the rest.
            rows.append({"instruction": prompt_text(instruction_of(prompt)) or "", "response": split_query(query, prompt),
                         "rubric": rubric, "reference": reference})
        grades = await judged("grade", (config.judging.mode, config.judging.samples, True), rows)
        rewards = rewards_of(grades, rubrics)
        flags = [float(r is None) for r in rewards]
        final = [unscorable_reward if r is None else float(r) for r in rewards]
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
        grades = await judged("grade", (body.mode or config.judging.mode, body.samples or config.judging.samples, True), rows)
        rewards = rewards_of(grades, rubrics)
        return {"grades": [g.to_dict() for g in grades], "rewards": rewards,
                "unscorable": sum(r is None for r in rewards)}

    @app.post("/group_reward")
    async def group_reward(body: GroupRequest) -> dict[str, Any]:
        """Rank the completions of each prompt group by a Bradley-Terry tournament (engines that
        send whole groups): rows with the same prompt form a group; the comparisons go through
        the micro-batcher like any other."""
        from ..rewards.pairwise import tournament_pairs, tournament_strengths
        from ..scoring import pairwise_reward

        n = len(body.prompts)
        check_rows(n)
        refs = body.reference_answers if isinstance(body.reference_answers, list) else [body.reference_answers] * n
        rubrics = rubrics_for(body.rubric, n)
        groups: dict[str, list[int]] = {}
        for i, prompt in enumerate(body.prompts):
            groups.setdefault(prompt, []).append(i)
        matches = [pair for key, members in groups.items() for pair in tournament_pairs(members, body.pairs_per_completion, key)]
        rows = [{"instruction": body.prompts[i], "response_a": body.responses[i], "response_b": body.responses[j],
                 "rubric": rubrics[i], "reference": refs[i]} for i, j in matches]
        prefs = await judged("compare", (body.mode or config.judging.mode, body.samples or config.judging.samples, True),
                             rows) if rows else []
        strengths, played, _ = tournament_strengths(groups.values(), matches, prefs, n)
        rewards = [None if p is None else pairwise_reward(p, body.transform) for p in strengths]
        return {"rewards": rewards, "strengths": strengths, "comparisons": [played[i] for i in range(n)],
                "judgments": 2 * len(matches), "unscorable": sum(r is None for r in rewards)}

    @app.post("/compare")
    async def compare(body: CompareRequest) -> dict[str, Any]:
        n = len(body.instructions)
        check_rows(n)
        refs = body.reference_answers if isinstance(body.reference_answers, list) else [body.reference_answers] * n
        rubrics = rubrics_for(body.rubric, n)
        rows = [{"instruction": i, "response_a": a, "response_b": b, "rubric": rub, "reference": ref}
                for i, a, b, rub, ref in zip(body.instructions, body.responses_a, body.responses_b, rubrics, refs)]
        prefs = await judged("compare", (body.mode or config.judging.mode, body.samples or config.judging.samples, body.swap), rows)
        return {"preferences": [p.to_dict() for p in prefs], "unscorable": sum(p.prob_a is None for p in prefs)}

    app.add_middleware(_BodyLimit, limit=config.max_body_bytes, metrics=metrics)
    return app


