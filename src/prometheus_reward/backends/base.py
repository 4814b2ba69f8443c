"""What the Judge needs from an evaluator backend (local transformers, HTTP servers, vLLM).

A backend turns chat-formatted prompts into (a) sampled generations, with the probabilities of
the answer tokens at the result position when it can read them, and (b) next-token probabilities
over a small set of answers after a fixed lead (``"[RESULT] "``): the ``direct`` mode and the
fallback of ``expected`` mode. Everything Prometheus-specific (templates, parsing, truncation
order, retries) stays in the Judge.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Callable, Literal, Sequence

# Given a generated text, the character offset where its result value starts (or None).
Locator = Callable[[str], "int | None"]


@dataclass(frozen=True)
class SamplingParams:
    """Generation settings. Defaults are the Prometheus model cards' recommendation."""

    max_new_tokens: int = 1024
    temperature: float = 1.0
    top_p: float = 0.9
    repetition_penalty: float = 1.03
    seed: int | None = None
    # benchmarks set this to max_new_tokens so every judgment writes the same number of tokens
    min_new_tokens: int = 0

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0

    def replace(self, **overrides) -> "SamplingParams":
        unknown = set(overrides) - set(asdict(self))
        if unknown:
            raise TypeError(f"unknown generation option(s): {', '.join(sorted(unknown))}")
        return SamplingParams(**{**asdict(self), **overrides})


@dataclass
class Generation:
    """One sampled evaluator output."""

    text: str
    # Probabilities over the answer choices at the result position, renormalised; None when the
    # backend could not read them (no logprobs, or no result written).
    choice_probs: list[float] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class BackendStats:
    """Counters a backend keeps for benchmarks and /metrics."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    forward_batches: int = 0
    generate_batches: int = 0
    oom_splits: int = 0
    batch_sizes: list[int] = field(default_factory=list)


class Backend(ABC):
    """Abstract evaluator backend.

    Attributes:
        model_id: the evaluator's name or path (part of cache keys).
        revision: the model revision or content hash, when known (part of cache keys).
        family: chat format family (see :func:`prometheus_reward.templates.format_chat`).
        context_length: the evaluator's context window in tokens.
    """

    model_id: str = "unknown"
    revision: str | None = None
    family: str = "auto"
    context_length: int = 4096

    def __init__(self) -> None:
        self.stats = BackendStats()

    @abstractmethod
    def format(self, system: str, user: str) -> str:
        """Chat-format one evaluator turn (system + user), opening the assistant turn."""

    @abstractmethod
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts of already formatted prompts."""

    @abstractmethod
    def truncate(self, text: str, max_tokens: int, keep: Literal["head", "tail"] = "head") -> str:
        """Cut ``text`` to at most ``max_tokens`` tokens, keeping its head or its tail."""

    @abstractmethod
    def generate(
        self,
        prompts: Sequence[str],
        sampling: SamplingParams,
        *,
        choices: Sequence[str] | None = None,
        locate: Locator | None = None,
        num_samples: int = 1,
    ) -> list[list[Generation]]:
        """Sample ``num_samples`` outputs per prompt. When ``choices`` and ``locate`` are given,
        also read the choice probabilities at the position ``locate(text)`` points to."""

    @abstractmethod
    def choice_probs(
        self, prefixes: Sequence[str], choices: Sequence[str], lead: str = "[RESULT] "
    ) -> list[list[float] | None]:
        """p(choice) for the token right after ``prefix + lead`` (renormalised over choices)."""

    def close(self) -> None:
        """Release resources (HTTP clients, GPU memory)."""
