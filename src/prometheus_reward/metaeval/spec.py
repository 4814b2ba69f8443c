"""What a meta-evaluation benchmark is: one :class:`BenchmarkSpec` per set, registered by name.

A spec holds everything meta-eval needs to know about a set: its usual file name, the pinned
upstream file (commit and SHA-256) it is downloaded from, its loader, its kind, the protocols it
supports and runs by default, and the published figures its results sit beside. The specs of the
Prometheus papers' sets live in :mod:`prometheus_reward.metaeval.benchmarks` (one file each) and
are registered in :data:`prometheus_reward.registry.BENCHMARKS`; the command line's choices, the
download and the report all read them from there. A new benchmark is one file holding its
``SPEC`` plus one registration line (or a ``BENCHMARKS.register`` call from your own code).

Example:
    >>> from prometheus_reward.registry import BENCHMARKS
    >>> spec = BENCHMARKS.get("hhh")
    >>> spec.kind, spec.default_file, spec.default_protocols
    ('pairwise', 'hhh_alignment_eval.json', ('absolute', 'relative'))
    >>> spec.published[0].figures["Prometheus-2-7B"]
    0.7466
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Mapping

from ..io import DataFileError
from ..registry import BENCHMARKS

Kind = Literal["absolute", "pairwise"]
PROTOCOLS: tuple[str, ...] = ("absolute", "relative")
TIE = 2  # a pair's gold label (and a judge's pick): 0 = response 1 better, 1 = response 2, 2 = tie


class DataError(DataFileError):
    """A benchmark or custom row that cannot be used, naming the file, row and field (also a
    file that cannot be read: a :class:`~prometheus_reward.io.DataFileError`)."""


@dataclass(frozen=True)
class PinnedFile:
    """One upstream file: fetched from ``{base_url}/{commit}/{path}``, kept as ``filename``."""

    filename: str
    commit: str
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Headline:
    """One headline metric of a set: its label, where its value sits in the run's metrics (``{src}``
    stands for ``integer``/``expected``, ``{rel}`` for ``votes``/``probs``), and the published
    figures by model name (correlations as r, accuracies as fractions)."""

    label: str
    path: tuple[str, ...]
    figures: Mapping[str, float] = field(default_factory=dict)


# Loader: (path, limit, rubric, skip_bad_rows) -> the loaded set (a metaeval.data.Benchmark).
Loader = Callable[[Path, "int | None", Any, bool], Any]


@dataclass(frozen=True)
class BenchmarkSpec:
    """One meta-evaluation set, declared once.

    ``kind`` is ``"absolute"`` (rows graded 1-5 against gold scores) or ``"pairwise"`` (pairs with
    a gold preference), or ``None`` when each file says (custom data). ``default_file`` is the
    name a ``--data`` folder holds it under (``other_file_names``: names it may have instead);
    ``pin`` the upstream file downloaded when no ``--data`` is given (``None``: ``--data`` is
    required). ``protocols`` are the protocols a pairwise set supports, ``default_protocols`` the
    ones run when none is chosen. ``published``: the headline metrics beside the papers' figures.
    """

    name: str
    load: Loader
    kind: Kind | None
    default_file: str | None = None
    other_file_names: tuple[str, ...] = ()
    pin: PinnedFile | None = None
    protocols: tuple[str, ...] = PROTOCOLS
    default_protocols: tuple[str, ...] = ("relative",)
    published: tuple[Headline, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.protocols) - set(PROTOCOLS) or set(self.default_protocols) - set(self.protocols)
        if unknown:
            raise ValueError(f"benchmark {self.name!r}: unknown or unsupported protocol(s) {sorted(unknown)}")
        if self.pin is not None and self.pin.filename != self.default_file:
            raise ValueError(f"benchmark {self.name!r}: the pinned file is kept as {self.pin.filename!r}, "
                             f"not its default file {self.default_file!r}")

    def protocols_for(self, kind: str, choice: str | None = None) -> tuple[str, ...]:
        """The protocols a run uses: ``absolute`` for absolute data; else ``choice`` (``absolute``,
        ``relative`` or ``both``), or this set's default ones."""
        if kind == "absolute":
            return ("absolute",)
        if choice is None:
            return self.default_protocols
        wanted = self.protocols if choice == "both" else (choice,)
        unsupported = [p for p in wanted if p not in self.protocols]
        if unsupported:
            raise DataError(f"--benchmark {self.name} does not support the {', '.join(unsupported)} protocol")
        return tuple(wanted)


def benchmark_spec(name: str) -> BenchmarkSpec:
    """The registered spec of ``name``; :class:`DataError` (listing the choices) for an unknown one."""
    if name not in BENCHMARKS:
        raise DataError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
    return BENCHMARKS.get(name)


def default_protocols(name: str) -> tuple[str, ...]:
    """The protocols a pairwise set runs when none is chosen (``relative`` for an unregistered name)."""
    return BENCHMARKS.get(name).default_protocols if name in BENCHMARKS else ("relative",)


class SpecTable(Mapping[str, Any]):
    """A read-only, always current view ``name -> one field`` over the registered specs (sets
    whose field is ``None`` are left out): e.g. the pinned files, or the default file names."""

    def __init__(self, field_of: Callable[[BenchmarkSpec], Any]):
        self._field_of = field_of

    def _items(self) -> dict[str, Any]:
        values = {name: self._field_of(BENCHMARKS.get(name)) for name in BENCHMARKS}
        return {name: value for name, value in values.items() if value is not None}

    def __getitem__(self, name: str) -> Any:
        return self._items()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __repr__(self) -> str:
        return f"SpecTable({self._items()!r})"
