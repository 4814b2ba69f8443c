"""Micro-batching: concurrent requests merged into judge calls."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from .metrics import ServerMetrics

logger = logging.getLogger("prometheus_reward.server")

_CHARS_PER_TOKEN = 4  # batch-size estimate only; the backend does exact token batching


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


