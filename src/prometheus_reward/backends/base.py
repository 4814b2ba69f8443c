"""What the Judge needs from an evaluator backend (local transformers, HTTP servers, vLLM).

A backend turns chat-formatted prompts into (a) sampled generations, with the evaluator's
distribution over the answer tokens at the result position when it can read it, and (b) that
distribution after a given prefix and lead (``"[RESULT] "``): the ``direct`` mode, and the reading
of ``expected`` mode where generation could not record it. Everything Prometheus-specific
(templates, parsing, truncation order, retries) stays in the Judge.

A distribution is an :class:`AnswerDistribution`: the probabilities renormalised over the choices
*and* the mass the evaluator put on them before renormalising, so that a judge that was not
answering at all (digits holding 2e-5 of the probability) is visible instead of looking like a
calm, flat distribution. Non-finite or zero probabilities never become a distribution: they come
back as an ``error``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Callable, Literal, Sequence

if TYPE_CHECKING:
    from ..config import JudgeConfig

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
class AnswerDistribution:
    """The evaluator's probabilities over the answer choices at one position.

    Attributes:
        probs: p(choice), renormalised over the choices; None when unusable (see ``error``).
        mass: the total probability on the choices before renormalising (over the full vocabulary
            for local models; over the returned top logprobs for HTTP servers); None when the
            backend cannot measure it (a server that returns no logprobs).
        error: why there is no distribution (non-finite logits, zero mass, a failed request).
        transport: the error is the transport's (a request that failed or timed out, a server
            that returned no logprobs where they were needed), not the evaluator's: it decides
            who is blamed for the row (:mod:`prometheus_reward.blame`).

    Example:
        >>> d = AnswerDistribution.from_masses([0.1, 0.1, 0.2, 0.0, 0.0])
        >>> [round(p, 2) for p in d.probs], round(d.mass, 2)
        ([0.25, 0.25, 0.5, 0.0, 0.0], 0.4)
        >>> AnswerDistribution.from_masses([float("nan")] * 5).error
        'non-finite probabilities on the answer tokens (NaN or infinite logits)'
        >>> AnswerDistribution.failed("ReadTimeout", transport=True).transport
        True
    """

    probs: list[float] | None
    mass: float | None = None
    error: str | None = None
    transport: bool = False

    @classmethod
    def from_masses(cls, masses: Sequence[float], measured: bool = True) -> "AnswerDistribution":
        """From each choice's unnormalised probability (``measured=False``: the masses are not
        probabilities of the full vocabulary, so no mass is recorded)."""
        values = [float(m) for m in masses]
        if not all(math.isfinite(v) for v in values):
            return cls(None, None, "non-finite probabilities on the answer tokens (NaN or infinite logits)")
        total = sum(values)
        if total <= 0:
            return cls(None, 0.0 if measured else None, "the evaluator put zero probability on the answer tokens")
        return cls([v / total for v in values], total if measured else None, None)

    @classmethod
    def failed(cls, error: str, transport: bool = False) -> "AnswerDistribution":
        """No distribution, and why (``transport=True``: the request's fault, not the evaluator's)."""
        return cls(None, None, error, transport)


@dataclass
class Generation:
    """One sampled evaluator output.

    ``answer`` is the distribution at the result position when the backend recorded it (None: not
    read, e.g. no result written or no logprobs); ``error`` says the generation failed (a request
    that never succeeded): the text is then empty and must not be scored. ``transport`` says the
    failure was the transport's (see :class:`AnswerDistribution`)."""

    text: str
    answer: AnswerDistribution | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    transport: bool = False


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

    @classmethod
    def from_config(cls, config: "JudgeConfig") -> "Backend":
        """The backend a :class:`~prometheus_reward.config.JudgeConfig` describes: what makes a
        Backend class an engine. :data:`prometheus_reward.registry.ENGINES` maps an engine name
        to its class and :meth:`Judge.from_config <prometheus_reward.judge.Judge.from_config>`
        calls ``ENGINES.get(config.engine_name).from_config(config)``. Read the fields that say how
        to load or reach the evaluator (``model``, ``dtype``, ``device_map``, ``adapter``,
        ``family``, ``model_kwargs``...); the judging rules are the Judge's. Set ``model_id`` and
        ``revision`` (the weights, adapter included): they stand for the evaluator in cache keys.
        """
        raise NotImplementedError(f"{cls.__name__} has no from_config, so it cannot be registered as an engine")

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
        also record the answer distribution at the position ``locate(text)`` points to."""

    @abstractmethod
    def read_answers(
        self, prefixes: Sequence[str], choices: Sequence[str], lead: str = "[RESULT] "
    ) -> list[AnswerDistribution]:
        """The distribution over ``choices`` for the token right after ``prefix + lead``, one per
        prefix (an :class:`AnswerDistribution` with ``error`` where it cannot be read)."""

    def close(self) -> None:
        """Release resources (HTTP clients, GPU memory)."""
