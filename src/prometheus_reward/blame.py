"""Who is to blame for a missing judgment, and what each party's failure pays.

Every unscorable row carries a **cause**:

- ``response``: the policy's output cannot be judged (unterminated hidden reasoning, a response
  that is only markers, a response too long to fit the evaluator's context on its own). The policy
  chose this, so it must never gain by it: the row gets the **floor** reward (the normaliser's
  minimum), everywhere, flagged.
- ``judge``: the evaluator did not deliver (no verdict after retries, too little score mass,
  non-finite logits, an invalid verdict, a prompt the template and rubric alone overflow).
- ``transport``: the request did not (a failed or timed-out request, a server that returned no
  logprobs where they were needed).

``judge`` and ``transport`` rows say nothing about the policy: TRL masks them (None); where the
trainer cannot mask (the PPO engines, the server) they get a **fill** that carries no signal for
their group, the mean reward of the scored rows of the same prompt in that call (else the neutral
value), flagged. A :class:`CircuitBreaker` stops the run with one clear error when such rows pile
up, instead of training on fills.

Example:
    >>> fill([0.2, None, 1.0, None], [None, "judge", None, "response"], groups=["p", "p", "p", "q"],
    ...      floor=0.0, neutral=0.5)
    ([0.2, 0.6, 1.0, 0.0], [None, 'fill', None, 'floor'])
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Hashable, Literal, Sequence

Cause = Literal["response", "judge", "transport"]
CAUSES: tuple[str, ...] = ("response", "judge", "transport")


def counted(cause: str | None) -> str:
    """The cause an unscorable row is counted under: its own, or ``judge`` when unknown.

    Example:
        >>> counted("response"), counted(None)
        ('response', 'judge')
    """
    return cause if cause in CAUSES else "judge"


class JudgeOutage(RuntimeError):
    """The circuit breaker tripped: too many recent rows failed for the judge's or the transport's
    sake. Training on fills would be training on nothing; fix the judge and resume."""


def fill(rewards: Sequence[float | None], causes: Sequence[str | None], *, groups: Sequence[Hashable],
         floor: float, neutral: float) -> tuple[list[float], list[str | None]]:
    """Rewards for a trainer that cannot mask (PPO engines, the server), and per row how the value
    was made: ``None`` (scored), ``"floor"`` (``response``-caused: the floor reward) or ``"fill"``
    (``judge``/``transport``-caused, or no cause known: the mean of the scored rows of the same
    group in this call, else ``neutral``)."""
    if not len(rewards) == len(causes) == len(groups):
        raise ValueError(f"{len(rewards)} rewards, {len(causes)} causes and {len(groups)} groups")
    scored: dict[Hashable, list[float]] = {}
    for reward, group in zip(rewards, groups):
        if reward is not None:
            scored.setdefault(group, []).append(float(reward))
    out: list[float] = []
    how: list[str | None] = []
    for reward, cause, group in zip(rewards, causes, groups):
        if reward is not None:
            out.append(float(reward))
            how.append(None)
        elif cause == "response":
            out.append(float(floor))
            how.append("floor")
        else:
            peers = scored.get(group)
            out.append(sum(peers) / len(peers) if peers else float(neutral))
            how.append("fill")
    return out, how


class CircuitBreaker:
    """Trips when the judge- or transport-caused share of the rows of the last ``window`` calls
    reaches ``threshold`` (``threshold`` None or ``window`` 0: never).

    It raises only once the window is full, so a single bad first batch does not stop a run, and it
    keeps the last errors to name in its message.

    Example:
        >>> breaker = CircuitBreaker(window=2, threshold=0.5)
        >>> breaker.record(["judge", None], ["no verdict"])   # one call: the window is not full yet
        >>> breaker.record(["transport", "transport"], ["timed out", "timed out"])
        Traceback (most recent call last):
        ...
        prometheus_reward.blame.JudgeOutage: 3 of the last 4 rows (2 calls) were unscorable for the judge's or the transport's sake (threshold 0.5): timed out; no verdict
    """

    def __init__(self, window: int = 8, threshold: float | None = 0.5, name: str = "reward"):
        if window < 0:
            raise ValueError("the breaker window must be 0 (off) or more calls")
        if threshold is not None and not 0 < threshold <= 1:
            raise ValueError(f"the breaker threshold must be in (0, 1], got {threshold!r}")
        self.window, self.threshold, self.name = window, threshold, name
        self._calls: deque[tuple[int, int]] = deque(maxlen=max(window, 1))
        self._errors: deque[str] = deque(maxlen=5)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.window) and self.threshold is not None

    def record(self, causes: Sequence[str | None], errors: Sequence[str | None] = ()) -> None:
        """Count one call's rows; raise :class:`JudgeOutage` when the breaker trips."""
        if not self.enabled or not causes:
            return
        blamed = [c in ("judge", "transport") for c in causes]
        with self._lock:
            self._calls.append((sum(blamed), len(causes)))
            for error, bad in zip(errors, blamed):
                if bad and error:
                    self._errors.appendleft(error)
            if len(self._calls) < self.window:
                return
            bad_rows = sum(b for b, _ in self._calls)
            rows = sum(n for _, n in self._calls)
            if rows and bad_rows / rows >= self.threshold:  # type: ignore[operator]
                last = "; ".join(dict.fromkeys(self._errors)) or "no error recorded"
                self._calls.clear()
                raise JudgeOutage(f"{bad_rows} of the last {rows} rows ({self.window} calls) were unscorable for the "
                                  f"judge's or the transport's sake (threshold {self.threshold:g}): {last}")
