"""The reward server's counters: requests, batches, latencies; JSON and the Prometheus text format."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from ..blame import CAUSES

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


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
    unscorable_by_cause: Counter = field(default_factory=Counter)  # cause -> rows
    scored_rows: int = 0  # rows the rewards settled (the denominator of the per-cause shares)
    judge_fills: int = 0
    judge_floors: int = 0
    breaker_trips: int = 0
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
            bucket = next((b for b in BATCH_BUCKETS if rows <= b), math.inf)
            self.batch_histogram["+Inf" if bucket == math.inf else str(bucket)] += 1
            self.judge_seconds += seconds
            self.rows += rows
            self.unscorable_rows += unscorable

    def record_causes(self, causes: list[str | None]) -> None:
        """Count a scored batch's rows by the cause of the unscorable ones."""
        with self.lock:
            self.scored_rows += len(causes)
            for cause in causes:
                if cause is not None:
                    self.unscorable_by_cause[cause] += 1

    def record_fills(self, how: list[str | None]) -> None:
        with self.lock:
            self.judge_fills += sum(h == "fill" for h in how)
            self.judge_floors += sum(h == "floor" for h in how)

    def record_outage(self) -> None:
        with self.lock:
            self.breaker_trips += 1

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
                "reward_rows": self.scored_rows,
                "unscorable_by_cause": {c: self.unscorable_by_cause[c] for c in CAUSES},
                **{f"unscorable_{c}_frac": (self.unscorable_by_cause[c] / self.scored_rows if self.scored_rows else 0.0)
                   for c in CAUSES},
                "unscorable_frac": (sum(self.unscorable_by_cause.values()) / self.scored_rows
                                    if self.scored_rows else 0.0),
                "judge_fills": self.judge_fills,
                "judge_floors": self.judge_floors,
                "breaker_trips": self.breaker_trips,
                "batches": {
                    "count": self.batches,
                    "rows": self.batch_rows,
                    "mean_size": self.batch_rows / self.batches if self.batches else 0.0,
                    "max_size": self.batch_max,
                    "histogram": {k: self.batch_histogram[k] for k in [*map(str, BATCH_BUCKETS), "+Inf"]
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
            "# TYPE prometheus_reward_unscorable_by_cause_total counter",
            *(f'prometheus_reward_unscorable_by_cause_total{{cause="{c}"}} {k}'
              for c, k in snap["unscorable_by_cause"].items()),
            f"prometheus_reward_judge_fills_total {snap['judge_fills']}",
            f"prometheus_reward_judge_floors_total {snap['judge_floors']}",
            f"prometheus_reward_breaker_trips_total {snap['breaker_trips']}",
            f"prometheus_reward_batches_total {snap['batches']['count']}",
            f"prometheus_reward_batch_rows_total {snap['batches']['rows']}",
            "# TYPE prometheus_reward_batch_size histogram",
        ]
        cumulative = 0
        for bucket in [*map(str, BATCH_BUCKETS), "+Inf"]:
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


