"""``prometheus-reward bench --crossover``: where continuous batching beats padded batching.

For every (rows, max new tokens) point of a grid it times ``generate:padded`` and
``generate:continuous`` (each in its own process, the same prompts, the same stopping rule and,
under ``--stop drawn``, the same output lengths; both draw tokens with the same sampler) and
reports continuous's speed over padded's. :func:`derive_crossover` then finds the largest
region ``rows >= R and mean new tokens >= L`` in which continuous was faster at every measured
point: what :mod:`prometheus_reward.backends.batching_choice` holds for ``batching="auto"``.

Example:
    prometheus-reward bench --model embedded --crossover-rows 2,4,8,16 --crossover-lengths 64,128,256 \\
        --stop drawn --json benchmarks/results/bench/cpu_crossover.json
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .bench import BenchConfig, run_bench

PAIR = ("generate:padded", "generate:continuous")


def derive_crossover(points: list[dict[str, Any]], margin: float = 1.0) -> dict[str, Any]:
    """The largest region ``rows >= min_rows and mean_new_tokens >= min_new_tokens`` whose every
    point has ``ratio > margin`` (continuous faster), with the points it covers; ``min_rows``
    None when no region qualifies (continuous was never faster everywhere in one).

    Example:
        >>> pts = [dict(rows=r, mean_new_tokens=n, ratio=q) for r, n, q in
        ...        [(2, 64, 0.7), (2, 256, 0.9), (16, 64, 0.8), (16, 256, 1.3)]]
        >>> derive_crossover(pts)["min_rows"], derive_crossover(pts)["min_new_tokens"]
        (16, 256)
    """
    best: dict[str, Any] = {"min_rows": None, "min_new_tokens": None, "covers": 0}
    for rows in sorted({p["rows"] for p in points}):
        for tokens in sorted({p["mean_new_tokens"] for p in points}):
            region = [p for p in points if p["rows"] >= rows and p["mean_new_tokens"] >= tokens]
            if region and all(p["ratio"] > margin for p in region) and len(region) > best["covers"]:
                best = {"min_rows": rows, "min_new_tokens": int(tokens), "covers": len(region)}
    return {**best, "margin": margin, "points_measured": len(points)}


def run_crossover(cfg: BenchConfig, rows: list[int], lengths: list[int], progress: bool = True) -> dict[str, Any]:
    """Time the padded and continuous paths at every (rows, max new tokens) point; returns
    ``{"points": [...], "crossover": derive_crossover(points)}``. Each point records both runs'
    figures, their mean new tokens a row, and ``ratio`` (continuous judgments/s over padded's)."""
    from tqdm.auto import tqdm

    points = []
    grid = [(n, length) for n in rows for length in lengths]
    for n, length in tqdm(grid, desc="crossover", unit="point", disable=not progress):
        point_cfg = dataclasses.replace(cfg, limit=n, max_new_tokens=length, modes=list(PAIR))
        results = run_bench(point_cfg, progress=False)
        padded, continuous = results[PAIR[0]], results[PAIR[1]]
        if padded["batching"] != "padded" or continuous["batching"] != "continuous":
            raise RuntimeError(f"the crossover needs both paths; got {padded['batching']} and {continuous['batching']}")
        points.append({
            "rows": padded["judgments"], "max_new_tokens": length,
            "mean_new_tokens": round(padded["completion_tokens"] / padded["judgments"], 1),
            "padded_s": padded["seconds"], "continuous_s": continuous["seconds"],
            "ratio": continuous["judgments_per_s"] / padded["judgments_per_s"],
            "completion_tokens": {"padded": padded["completion_tokens"], "continuous": continuous["completion_tokens"]},
            "peak_rss_mb": {"padded": padded["peak_rss_mb"], "continuous": continuous["peak_rss_mb"]},
            "device": padded["device"], "model": padded["model"],
        })
    return {"points": points, "crossover": derive_crossover(points)}


def crossover_table(report: dict[str, Any], cfg: BenchConfig):
    """A rich table: rows down, max new tokens across, continuous's speed over padded's in each cell."""
    from rich.table import Table

    points = report["points"]
    lengths = sorted({p["max_new_tokens"] for p in points})
    first = points[0]
    table = Table(title=f"continuous / padded judgments per second: {first['model']} on {first['device']}, "
                        f"stop={cfg.resolved_stop()} (>1: continuous faster)")
    table.add_column("rows", justify="right")
    for length in lengths:
        table.add_column(f"max {length} new", justify="right")
    for rows in sorted({p["rows"] for p in points}):
        cells = []
        for length in lengths:
            match = [p for p in points if p["rows"] == rows and p["max_new_tokens"] == length]
            cells.append(f"{match[0]['ratio']:.2f}x (~{match[0]['mean_new_tokens']:.0f} tok)" if match else "-")
        table.add_row(str(rows), *cells)
    found = report["crossover"]
    table.caption = ("continuous never faster across a whole region: auto stays padded" if found["min_rows"] is None
                     else f"crossover: >= {found['min_rows']} rows and >= {found['min_new_tokens']} new tokens a row")
    return table
