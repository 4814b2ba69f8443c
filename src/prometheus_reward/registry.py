"""Registries: where each engine, reward shape and benchmark is found by name.

Adding a capability is one new file plus one registration line here (or a call to
``register`` from your own code). Entries are registered lazily, by ``"module:attribute"``
path, so that naming every choice (the command line, :mod:`prometheus_reward.config`) imports
no engine, no torch and no vLLM; the target is imported on first :meth:`Registry.get`.

Example:
    >>> "transformers" in ENGINES and "openai" in ENGINES
    True
    >>> ENGINES.get("nope")
    Traceback (most recent call last):
    ...
    prometheus_reward.registry.UnknownName: unknown engine 'nope'; choose one of transformers, openai, vllm
"""

from __future__ import annotations

import importlib
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownName(ValueError):
    """A name no entry of the registry has (the message lists the choices)."""


@dataclass
class Entry:
    """One registered thing: its name, one line of help, and the object or the path it loads from."""

    name: str
    target: Any  # the object, or "package.module:attribute" loaded on first use
    help: str = ""

    @property
    def lazy(self) -> bool:
        return isinstance(self.target, str)


class Registry(Generic[T]):
    """Names -> things of one kind (engines, reward shapes, benchmarks), in registration order.

    Example:
        >>> colours = Registry("colour")
        >>> colours.register("red", (255, 0, 0), help="warm")
        >>> colours.names(), colours.get("red"), colours.help("red")
        (('red',), (255, 0, 0), 'warm')
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()

    def register(self, name: str, target: Any, *, help: str = "", replace: bool = False) -> None:
        """Register ``target`` as ``name``: an object, or a string ``"package.module:attribute"``
        imported on first use (a string is always such a path)."""
        if not name or not isinstance(name, str):
            raise ValueError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        with self._lock:
            if name in self._entries and not replace:
                raise ValueError(f"{self.kind} {name!r} is registered already (pass replace=True to override)")
            self._entries[name] = Entry(name, target, help)

    def unregister(self, name: str) -> None:
        """Forget ``name`` (nothing happens when it is not registered): tests, notebooks."""
        with self._lock:
            self._entries.pop(name, None)

    @contextmanager
    def registered(self, name: str, target: Any, *, help: str = "") -> Iterator[None]:
        """Register ``name`` for the duration of a ``with`` block (registrations are process-wide).

        Example:
            >>> with ENGINES.registered("toy", "toy_engine:ToyBackend"):
            ...     "toy" in ENGINES
            True
            >>> "toy" in ENGINES
            False
        """
        self.register(name, target, help=help)
        try:
            yield
        finally:
            self.unregister(name)

    def decorator(self, name: str, *, help: str = "") -> Callable[[T], T]:
        """``@REGISTRY.decorator("name")`` registers the decorated object."""

        def wrap(obj: T) -> T:
            self.register(name, obj, help=help)
            return obj

        return wrap

    def get(self, name: str) -> T:
        """The thing registered as ``name`` (imported now if it was registered by path)."""
        entry = self._entries.get(name)
        if entry is None:
            raise UnknownName(f"unknown {self.kind} {name!r}; choose one of {', '.join(self._entries)}")
        if entry.lazy:
            with self._lock:
                if entry.lazy:
                    module, _, attribute = entry.target.partition(":")
                    obj: Any = importlib.import_module(module)
                    for part in attribute.split("."):
                        obj = getattr(obj, part)
                    entry.target = obj
        return entry.target

    def help(self, name: str) -> str:
        return self._entries[name].help if name in self._entries else ""

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


# -- the registries ---------------------------------------------------------------------------------------------
# Engines: ``target`` is a Backend class with ``from_config(config: JudgeConfig) -> Backend``.
ENGINES: Registry[Any] = Registry("engine")
ENGINES.register("transformers", "prometheus_reward.backends.transformers:TransformersBackend",
                 help="load the evaluator in this process with transformers")
ENGINES.register("openai", "prometheus_reward.backends.openai:OpenAIBackend",
                 help="OpenAI-compatible servers (vLLM, SGLang, TGI, llama.cpp) at base_urls")
ENGINES.register("vllm", "prometheus_reward.backends.vllm:VLLMBackend",
                 help="load the evaluator in this process with vLLM (pip install prometheus-reward[vllm])")


# Reward shapes (``RewardConfig.reward_type``): ``target`` builds the reward a config describes.
REWARD_SHAPES: Registry[Any] = Registry("reward shape")
REWARD_SHAPES.register("absolute", "prometheus_reward.rewards.absolute:build_rubric_reward",
                       help="each completion graded 1-5 against a rubric (RubricReward)")
REWARD_SHAPES.register("checklist", "prometheus_reward.rewards.checklist:build_checklist_reward",
                       help="a weighted checklist of criteria, RaR's aggregation (ChecklistReward)")
REWARD_SHAPES.register("pairwise", "prometheus_reward.rewards.pairwise:build_pairwise_reward",
                       help="A-vs-B win probability against an anchor (PairwiseReward; pairwise_anchor picks it)")
REWARD_SHAPES.register("tournament", "prometheus_reward.rewards.pairwise:build_tournament_reward",
                       help="a group's completions compared with each other, Bradley-Terry strengths")


# Meta-evaluation benchmarks: ``target`` is a ``BenchmarkSpec``.
BENCHMARKS: Registry[Any] = Registry("benchmark")
_SETS = "prometheus_reward.metaeval.benchmarks"
BENCHMARKS.register("vicuna", f"{_SETS}.vicuna:SPEC", help="320 rows graded 1-5, gold: 3 GPT-4 scores each")
BENCHMARKS.register("mt_bench", f"{_SETS}.mt_bench:SPEC", help="320 rows graded 1-5, gold: 3 GPT-4 scores each")
BENCHMARKS.register("hhh", f"{_SETS}.hhh:SPEC", help="221 HHH Alignment pairs, chosen vs rejected")
BENCHMARKS.register("autoj", f"{_SETS}.autoj:SPEC", help="1,392 Auto-J pairs with human labels, ties included")
BENCHMARKS.register("custom", f"{_SETS}.custom:SPEC", help="your own rows (docs/meta_evaluation.md), --data PATH required")
