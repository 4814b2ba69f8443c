"""Which generation path ``batching="auto"`` takes for one call: continuous or padded, chosen by
where continuous batching was measured faster (``prometheus-reward bench --crossover``), never
by hope.

Continuous batching frees a finished row's place at once, so it wins when rows are many and
their lengths differ. What it costs depends on the attention implementation: with ``sdpa`` or
``paged|eager`` transformers runs one attention over every row of a step flattened into one
sequence, masked block by block, so a step's attention grows with the square of the rows
(the padded path's grows with the rows); flash kernels are per row. So the crossover is kept per
device type and attention implementation, and a combination nobody measured stays padded.

Example:
    >>> choose_batching("cpu", "sdpa", rows=2, expected_new_tokens=64)[0]
    'padded'
    >>> choose_batching("cuda", "flash_attention_2", rows=64, expected_new_tokens=512)[0]
    'padded'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Crossover:
    """Where continuous batching was measured faster than padded batching, for one device type
    and attention implementation: every measured call of at least ``min_rows`` rows (samples
    counted) writing at least ``min_new_tokens`` tokens a row on average. ``min_rows=None``:
    it was slower everywhere measured. ``measured``: the bench JSON behind it."""

    min_rows: int | None
    min_new_tokens: int
    measured: str


# (device type, attention implementation) -> the measured crossover
CROSSOVERS: dict[tuple[str, str], Crossover] = {
    ("cpu", "sdpa"): Crossover(min_rows=None, min_new_tokens=0,
                               measured="benchmarks/results/bench/cpu_gemma-3-270m_crossover.json"),
}


def _attention_key(attention: str | None) -> str:
    # transformers' CB runs "eager" as "paged|eager" and takes "paged|sdpa" as "sdpa"
    name = (attention or "sdpa").removeprefix("paged|")
    return name


def choose_batching(device_type: str, attention: str | None, rows: int, expected_new_tokens: float
                    ) -> tuple[str, str]:
    """``("continuous" | "padded", why)`` for a call of ``rows`` rows expected to write
    ``expected_new_tokens`` tokens each, on this device type and attention implementation."""
    key = (device_type, _attention_key(attention))
    crossover = CROSSOVERS.get(key)
    if crossover is None:
        return "padded", f"continuous batching is not measured on {key[0]} with {key[1]} attention"
    if crossover.min_rows is None:
        return "padded", f"continuous batching was slower at every size measured on {key[0]} with {key[1]} ({crossover.measured})"
    if rows >= crossover.min_rows and expected_new_tokens >= crossover.min_new_tokens:
        return "continuous", (f"{rows} rows x ~{expected_new_tokens:.0f} new tokens: past the crossover "
                              f"({crossover.min_rows} rows, {crossover.min_new_tokens} tokens; {crossover.measured})")
    return "padded", (f"{rows} rows x ~{expected_new_tokens:.0f} new tokens: below the crossover "
                      f"({crossover.min_rows} rows, {crossover.min_new_tokens} tokens; {crossover.measured})")
