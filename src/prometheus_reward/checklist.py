"""Checklist rubrics: a response judged against a weighted list of specific criteria, some of them
pitfalls with negative weight ("Rubrics as Rewards", RaR; "Checklists Are Better Than Reward
Models", RLCF).

A :class:`Checklist` is accepted wherever a rubric is (Judge, rewards, the command line, labeling,
best-of-n, meta-eval's custom sets, a dataset's per-row ``rubric`` column). Two ways to judge it:

- **explicit** (default): every (response, item) pair is one absolute judgment against the item's
  own rubric (its five score descriptions, or the generic scale below); all of them go to the
  evaluator in one batch. The row's score is RaR's weighted, normalised sum
  ``agg = sum_i w_i s_i / sum_i |w_i|`` with ``s_i = (score_i - 1) / 4`` in [0, 1] (so a pitfall,
  ``w_i < 0``, that is present pulls the score down), reported on the 1-5 scale as
  ``1 + 4 * agg`` (the ``linear`` normaliser turns it back into ``agg``), with ``agg`` clipped to
  [0, 1] so that a row whose pitfalls outweigh what it meets stays on the scale. An unscorable
  item makes the row unscorable unless the items scored hold at least ``min_items_frac`` of the
  total |weight|; then each missing item counts as its worst case (a criterion not met, a pitfall
  committed), so a judgment that failed never pays more than one that was made.
- **implicit**: the whole checklist rendered as one rubric, one judgment (cheaper: RaR's implicit
  variant).

An item without score descriptions is graded on a generic scale derived from its criterion
(:data:`GENERIC_SCALE`): 1 = the response does not meet the criterion at all ... 5 = it fully meets
it. A pitfall is phrased as the thing to avoid ("Recommends stopping the medication"), so its
score says how much the response commits it.

Example:
    >>> c = Checklist.from_dict({"items": [
    ...     {"criterion": "States the dose in milligrams", "category": "essential"},
    ...     {"criterion": "Suggests stopping treatment without a doctor", "category": "pitfall"}]})
    >>> [(i.id, i.weight) for i in c.items]
    [('states_the_dose_in_milligrams', 5.0), ('suggests_stopping_treatment_without', -2.0)]
    >>> round(c.aggregate([5, 1]), 3), c.aggregate([5, 5]) < c.aggregate([5, 1])
    (0.714, True)

RaR's own rows (``{"title", "description", "weight"}`` items, as in ``ScaleAI/RaR-Medicine``'s
``rubric`` column) are read as they are: the description is the criterion, the title its id.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from .rubric import Rubric

# Default weights per category, on the scale of RaR's data (Essential 5, Important 3-4, Optional
# 1-2, Pitfall -1 to -2); an item's explicit ``weight`` always wins.
CATEGORY_WEIGHTS: dict[str, float] = {"essential": 5.0, "important": 3.0, "optional": 1.0, "pitfall": -2.0}
AGGREGATIONS: tuple[str, ...] = ("explicit", "implicit")

GENERIC_SCALE: tuple[str, str, str, str, str] = (
    "The response does not meet the criterion at all.",
    "The response meets only a small part of the criterion.",
    "The response meets about half of the criterion, with clear gaps.",
    "The response meets most of the criterion, with minor gaps.",
    "The response fully meets the criterion.",
)


def _slug(text: str, limit: int = 36) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}_{word}" if slug else word
        if len(candidate) > limit:
            break
        slug = candidate
    return slug or "item"


@dataclass(frozen=True)
class ChecklistItem:
    """One criterion of a checklist.

    Attributes:
        criterion: what the response should (or, for a pitfall, should not) do.
        weight: its weight; negative for a pitfall. Default from ``category``.
        category: ``essential`` / ``important`` / ``optional`` / ``pitfall`` (RaR's), or None.
        descriptions: its own five score descriptions; None for the generic scale.
        id: a short name for logs and metrics (default: a slug of the criterion).
    """

    criterion: str
    weight: float = 1.0
    category: str | None = None
    descriptions: tuple[str, str, str, str, str] | None = None
    id: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.criterion, str) or not self.criterion.strip():
            raise ValueError("a checklist item needs a non-empty 'criterion'")
        if self.weight == 0:
            raise ValueError(f"checklist item {self.criterion[:40]!r} has weight 0 (it would never count)")
        if not self.id:
            object.__setattr__(self, "id", _slug(self.criterion))

    @property
    def rubric(self) -> Rubric:
        """The rubric this item is judged against (explicit aggregation)."""
        return Rubric(self.criterion, self.descriptions or GENERIC_SCALE, name=self.id)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | str, where: str = "item") -> "ChecklistItem":
        if isinstance(data, str):
            return cls(data)
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: a checklist item is a criterion text or a mapping, got {type(data).__name__}")
        data = {k: v for k, v in data.items() if v is not None}
        criterion = data.get("criterion", data.get("criteria", data.get("description")))
        if criterion is None:
            raise ValueError(f"{where}: a checklist item needs a 'criterion'")
        category = data.get("category")
        if category is not None:
            category = str(category).strip().lower()
            if category not in CATEGORY_WEIGHTS:
                raise ValueError(f"{where}: unknown category {category!r}; choose one of {', '.join(CATEGORY_WEIGHTS)}")
        weight = data.get("weight", CATEGORY_WEIGHTS.get(category or "", 1.0))
        try:
            weight = float(weight)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: 'weight' must be a number, got {weight!r}") from None
        descriptions = data.get("descriptions")
        if descriptions is None and any(f"score{i}_description" in data for i in range(1, 6)):
            descriptions = [data.get(f"score{i}_description") for i in range(1, 6)]
        if descriptions is not None:
            descriptions = tuple(descriptions)
            if len(descriptions) != 5 or not all(isinstance(d, str) and d for d in descriptions):
                raise ValueError(f"{where}: 'descriptions' must be five texts (scores 1 to 5)")
        item_id = data.get("id") or (_slug(str(data["title"])) if data.get("title") else "")
        return cls(str(criterion), weight, category, descriptions, str(item_id))


@dataclass(frozen=True)
class Checklist:
    """A weighted list of criteria (see the module).

    Attributes:
        items: the criteria.
        name: a short name (logs, metric prefixes).
        aggregation: ``explicit`` (one judgment per item) or ``implicit`` (one judgment).
        min_items_frac: explicit aggregation: the share of the total |weight| that must be scored
            for the row to get a score (default 1.0: every item).
    """

    items: tuple[ChecklistItem, ...]
    name: str | None = None
    aggregation: str = "explicit"
    min_items_frac: float = 1.0
    _implicit: Rubric | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        items = tuple(self.items)
        object.__setattr__(self, "items", items)
        if not items:
            raise ValueError("a checklist needs at least one item")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown checklist aggregation {self.aggregation!r}; choose explicit or implicit")
        if not 0 < self.min_items_frac <= 1:
            raise ValueError(f"min_items_frac must be in (0, 1], got {self.min_items_frac!r}")
        if not any(item.weight > 0 for item in items):
            raise ValueError("a checklist needs at least one item with a positive weight")
        ids = [item.id for item in items]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"checklist item ids must be unique; repeated: {', '.join(dupes)} (set 'id')")

    @property
    def key(self) -> str:
        """A stable identity (running statistics, caches)."""
        return self.name or "checklist:" + json.dumps([(i.criterion, i.weight) for i in self.items])

    @property
    def criteria(self) -> str:
        return self.name or f"checklist of {len(self.items)} items"

    def with_aggregation(self, aggregation: str | None) -> "Checklist":
        if aggregation is None or aggregation == self.aggregation:
            return self
        return Checklist(self.items, self.name, aggregation, self.min_items_frac)

    # -- explicit aggregation --------------------------------------------------------------------------------
    def aggregate(self, scores: Sequence[float | None]) -> float | None:
        """RaR's weighted normalised sum over the items' 1-5 scores, in [0, 1]; None when less than
        ``min_items_frac`` of the |weight| was scored. An item not scored (None) counts as its
        worst case: a criterion not met (``s = 0``), a pitfall committed (``s = 1``).

        Example:
            >>> c = Checklist((ChecklistItem("a", 3.0), ChecklistItem("b", 1.0), ChecklistItem("p", -1.0)),
            ...               min_items_frac=0.5)
            >>> c.aggregate([5, 5, 1]), c.aggregate([5, None, None]), c.aggregate([None, 5, 1])
            (0.8, 0.4, None)
        """
        total = sum(abs(i.weight) for i in self.items)
        covered = sum(abs(i.weight) for i, s in zip(self.items, scores) if s is not None)
        if not covered or covered < self.min_items_frac * total - 1e-12:
            return None
        worst = [(0.0 if i.weight > 0 else 1.0) if s is None else (s - 1.0) / 4.0 for i, s in zip(self.items, scores)]
        agg = sum(i.weight * s for i, s in zip(self.items, worst)) / total
        return min(max(agg, 0.0), 1.0)

    # -- implicit aggregation ----------------------------------------------------------------------------------
    def implicit_rubric(self) -> Rubric:
        """The whole checklist as one rubric (verbatim text), for one holistic judgment."""
        if self._implicit is None:
            lines = ["[Does the response satisfy the checklist below? Meet the essential and important items; "
                     "avoid every pitfall.]", "Checklist:"]
            for item in self.items:
                kind = (item.category or ("pitfall" if item.weight < 0 else "criterion")).capitalize()
                lines.append(f"- ({kind}, weight {item.weight:g}) {item.criterion}")
            lines += [
                "Score 1: The response misses the essential items or commits serious pitfalls.",
                "Score 2: The response meets few of the items and misses essential ones, or commits a pitfall.",
                "Score 3: The response meets the essential items only partly, or meets them but commits a pitfall.",
                "Score 4: The response meets the essential items and most important ones, and commits no pitfall.",
                "Score 5: The response meets every essential and important item and commits no pitfall.",
            ]
            text = "\n".join(lines)
            object.__setattr__(self, "_implicit", Rubric(text.split("\n", 1)[0], None, text=text,
                                                          name=self.name and f"{self.name}_implicit"))
        return self._implicit  # type: ignore[return-value]

    # -- constructors ----------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Sequence[Any], name: str | None = None) -> "Checklist":
        """From ``{"items": [...]}`` (or ``{"checklist": [...]}``, with optional ``name``,
        ``aggregation``, ``min_items_frac``) or a bare list of items (texts or mappings)."""
        if isinstance(data, Mapping):
            raw = data.get("items", data.get("checklist"))
            options = {k: data[k] for k in ("aggregation", "min_items_frac") if data.get(k) is not None}
            name = data.get("name") or name
        else:
            raw, options = data, {}
        if not isinstance(raw, (list, tuple)):
            raise ValueError("a checklist needs 'items': a list of criteria")
        items = _dedupe_ids([ChecklistItem.from_dict(item, f"item {k}") for k, item in enumerate(raw)])
        return cls(items, name, **options)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Checklist":
        path = Path(path)
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        try:
            return cls.from_dict(data, name=path.stem)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None


def is_checklist_data(value: Any) -> bool:
    """Whether a mapping or list describes a checklist (rather than a single rubric)."""
    if isinstance(value, Mapping):
        return "items" in value or "checklist" in value
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, (str, Mapping)) for v in value)


def _dedupe_ids(items: Sequence[ChecklistItem]) -> tuple[ChecklistItem, ...]:
    """Unique ids (RaR titles repeat sometimes): a repeated id gets ``_2``, ``_3``..."""
    seen: dict[str, int] = {}
    out = []
    for item in items:
        count = seen.get(item.id, 0) + 1
        seen[item.id] = count
        if count > 1:
            item = ChecklistItem(item.criterion, item.weight, item.category, item.descriptions, f"{item.id}_{count}")
        out.append(item)
    return tuple(out)


def coerce_criteria(value: Any) -> Rubric | Checklist:
    """Whatever a user may pass as a rubric, checklists included: a Rubric or Checklist, a mapping
    or list describing either, a YAML/JSON file holding either, a preset name, or rubric text."""
    if isinstance(value, (Rubric, Checklist)):
        return value
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if is_checklist_data(value):
        return Checklist.from_dict(value)
    if isinstance(value, str) and value.strip().endswith((".yaml", ".yml", ".json")) and "\n" not in value:
        path = Path(value.strip())
        if path.is_file():
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError):
                data = None  # not a checklist: Rubric.coerce reports what is wrong with the file
            if is_checklist_data(data):
                return Checklist.from_yaml(path)
    return Rubric.coerce(value)
