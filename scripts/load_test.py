"""Load a running reward server: C concurrent clients x R requests each to ``/get_reward``.

Reports throughput (requests/s, rows/s), client-side latency p50/p99, and the server's mean batch
size over the run (from the ``/metrics`` difference). Start the server first, e.g.::

    HF_HUB_OFFLINE=1 prometheus-reward serve --model embedded --dtype float32 --mode direct --port 8011
    python scripts/load_test.py --url http://127.0.0.1:8011 --clients 1 8 64 --requests 8 3 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx

WORDS = "river stone bright quiet answer garden window simple orange morning careful music".split()


def make_row(client: int, k: int) -> tuple[str, str]:
    # short, distinct prompts: the measurement is about serving, not about long contexts
    a, b = WORDS[(client + k) % len(WORDS)], WORDS[(client * 3 + k) % len(WORDS)]
    prompt = f"Write one sentence about a {a} {b}."
    return prompt, f" The {a} {b} was there, {client}-{k}."


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low, high = int(rank), min(int(rank) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def run_level(url: str, clients: int, requests: int, rows: int, headers: dict[str, str]) -> dict:
    latencies: list[float] = []
    failures = 0

    async def client(c: int, http: httpx.AsyncClient) -> None:
        nonlocal failures
        for k in range(requests):
            pairs = [make_row(c, k * rows + j) for j in range(rows)]
            body = {"query": [p + r for p, r in pairs], "prompts": [p for p, _ in pairs]}
            start = time.perf_counter()
            reply = await http.post("/get_reward", json=body, headers=headers)
            latencies.append(time.perf_counter() - start)
            if reply.status_code != 200 or len(reply.json().get("rewards", [])) != rows:
                failures += 1

    async with httpx.AsyncClient(base_url=url, timeout=3600, limits=httpx.Limits(max_connections=clients)) as http:
        before = (await http.get("/metrics", headers=headers)).json()
        start = time.perf_counter()
        await asyncio.gather(*(client(c, http) for c in range(clients)))
        wall = time.perf_counter() - start
        after = (await http.get("/metrics", headers=headers)).json()
    batches = after["batches"]["count"] - before["batches"]["count"]
    batch_rows = after["batches"]["rows"] - before["batches"]["rows"]
    total = clients * requests
    return {
        "clients": clients,
        "requests": total,
        "rows": total * rows,
        "failures": failures,
        "wall_s": round(wall, 2),
        "requests_per_s": round(total / wall, 3),
        "rows_per_s": round(total * rows / wall, 3),
        "p50_s": round(statistics.median(latencies), 3),
        "p99_s": round(percentile(latencies, 0.99), 3),
        "mean_batch_rows": round(batch_rows / batches, 2) if batches else 0.0,
        "judge_calls": batches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--requests", type=int, nargs="+", default=[8, 3, 2],
                        help="requests per client, one value per --clients level (or one for all)")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--token", default=None)
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    per_level = args.requests if len(args.requests) == len(args.clients) else [args.requests[0]] * len(args.clients)
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    results = []
    for clients, requests in zip(args.clients, per_level):
        result = asyncio.run(run_level(args.url, clients, requests, args.rows, headers))
        print(json.dumps(result), flush=True)
        results.append(result)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
