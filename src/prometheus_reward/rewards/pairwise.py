"""Relative grading as a reward: the judge compares two responses in both orders and the reward
is a win probability. Two layouts, two classes:

- :class:`OnlineDPOPairwiseReward` (``layout="online_dpo"``): TRL's OnlineDPOTrainer calls the
  reward with 2B rows, the first half sample A and the second half sample B of the same prompts;
  rewards are p(A beats B) for the first half and 1 - p for the second.
- :class:`GroupPairwiseReward` (``layout="group"``, GRPO / RLOO): groups are found by prompt
  identity (not position: a group may be split across ranks). Each completion is compared with
  an anchor of its group and rewarded with its win probability: the row's reference answer
  (``anchor="reference"``), a designated completion of the group (``"group"``: the one with the
  smallest content hash, so the choice does not depend on order; it gets 0.5, a tie with itself),
  or the reference when the row has one, else the group completion (``"auto"``). Or, with
  ``anchor="tournament"``, the completions of a group are compared with each other and ranked by
  a Bradley-Terry fit (see :class:`GroupPairwiseReward`).

``PairwiseReward(judge, rubric, layout=...)`` builds the class of the layout.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections import defaultdict
from typing import Any, Literal, Mapping, Sequence

from ..config import JudgingConfig, RewardConfig
from ..grades import Preference
from ..rows import JudgeInputs, group_key
from ..scoring import pairwise_reward
from ..tournament import tournament_pairs, tournament_strengths
from .base import JudgeCall, JudgedReward, Steps, _config_field, config_options, failure_cause, finite, unjudgeable
from .contract import GROUPS, PAIRS, ROWS, RewardBatch, TournamentRecord

Layout = Literal["online_dpo", "group"]
Anchor = Literal["auto", "reference", "group", "tournament"]


class PairwiseReward(JudgedReward):
    """Pairwise (A vs B) judgments as a reward; see the module for the layouts.

    Args:
        judge, rubric, reference_answer, mode, fallback, name, **options: as in
            :class:`~prometheus_reward.rewards.RubricReward` (``samples``, ``sampling``, ``timeout``,
            ``rubric_column``, ``reference_column``, ``log_feedback``...).
        layout: ``online_dpo`` (:class:`OnlineDPOPairwiseReward`, the default) or ``group``
            (:class:`GroupPairwiseReward`).
        anchor: group layout: ``auto``, ``reference``, ``group`` or ``tournament``.
        pairs_per_completion: tournament: comparisons per completion (None: all pairs); see
            :func:`prometheus_reward.tournament.tournament_pairs`.
        transform: ``prob`` (p), ``symmetric`` (2p - 1) or ``logit`` (log-odds).

    Example:
        >>> reward = PairwiseReward(judge, rubric="helpfulness", layout="group")         # doctest: +SKIP
        >>> reward(prompts=["Hi?", "Hi?"], completions=["Hello!", "Go away."])            # doctest: +SKIP
        [0.5, 0.09]
    """

    _default_prefix = "prometheus_pairwise"
    shape = "pairwise"
    value_name = "win_prob"
    layout: str = "online_dpo"

    def __new__(cls, *args: Any, layout: Layout | None = None, **kwargs: Any) -> "PairwiseReward":
        if cls is PairwiseReward:
            layout = layout or (args[3] if len(args) > 3 else "online_dpo")
            if layout not in _LAYOUTS:
                raise ValueError(f"unknown layout {layout!r}; choose 'online_dpo' or 'group'")
            cls = _LAYOUTS[layout]
        return super().__new__(cls)

    def __init__(
        self,
        judge: Any,
        rubric: Any = None,
        reference_answer: str | None = None,
        layout: Layout | None = None,
        anchor: Anchor = RewardConfig.pairwise_anchor,  # type: ignore[assignment]
        mode: str = JudgingConfig.mode,
        transform: str = RewardConfig.pairwise_transform,
        fallback: float | None = None,
        name: str | None = None,
        **options: Any,
    ):
        if layout is not None and layout != self.layout:
            raise ValueError(f"{type(self).__name__} has layout {self.layout!r}, not {layout!r}")
        super().__init__(judge, rubric=rubric, reference_answer=reference_answer, pairwise_anchor=anchor, mode=mode,
                         pairwise_transform=transform, fallback=fallback, name=name, **options)
        if self.anchor == "tournament" and self.layout != "group":
            raise ValueError("anchor='tournament' ranks the completions of a group: use layout='group'")
        self.last_preferences: list[Preference | None] = []

    def _shape_of(self, options: Mapping[str, Any]) -> str:
        return "tournament" if options.get("pairwise_anchor") == "tournament" else "pairwise"

    anchor = _config_field("pairwise_anchor", "which anchor each completion is compared with (group layout)")
    transform = _config_field("pairwise_transform", "how a win probability becomes a reward")
    pairs_per_completion = _config_field("pairs_per_completion", "tournament: comparisons per completion")

    @property
    def neutral_reward(self) -> float:
        """The reward of an even match (p = 0.5)."""
        return float(pairwise_reward(0.5, self.transform))  # type: ignore[arg-type]

    def floor_reward(self, key: str = "") -> float:
        """The reward of a certain loss (p = 0: 0 under ``prob``, -1 under ``symmetric``, the
        clipped log-odds under ``logit``): what a ``response``-caused unscorable row gets."""
        return float(pairwise_reward(0.0, self.transform))  # type: ignore[arg-type]

    @property
    def needs(self) -> str:
        return PAIRS

    def __getnewargs_ex__(self) -> tuple[tuple, dict[str, Any]]:
        return (), {"layout": self.layout}

    # -- pairing: what each layout judges -------------------------------------------------------------------
    def _pairs(self, rows: JudgeInputs) -> tuple[list[str | None], list[int], list[str], list[int]]:
        """(per-row errors, rows judged, their anchor texts, rows that tie with their anchor)."""
        raise NotImplementedError

    def _mirror(self, probs: list[float | None], prefs: list[Preference | None], errors: list[str | None],
                causes: list[str | None], rows: JudgeInputs, judged: Sequence[int], ties: Sequence[int]) -> None:
        """Fill the rows that read another row's judgment (online DPO's second half), and settle
        the rows whose value depends on others' judgments (the group anchor's tie)."""

    # -- one implementation for sync and async ---------------------------------------------------------------
    def _steps(self, prompts: Sequence[Any] | None, completions: Sequence[Any], kwargs: Mapping[str, Any]) -> Steps:
        start = time.perf_counter()
        rows = self._read_rows(prompts, completions, kwargs)
        errors, judged, anchors, ties = self._pairs(rows)
        prefs: list[Preference] | None = None
        failure = None
        blame = "judge"
        if judged:
            result = yield JudgeCall("compare", (
                [rows.instructions[i] for i in judged], [rows.responses[i] for i in judged], anchors,
                [rows.rubrics[i] for i in judged],
            ), {"reference_answers": [rows.references[i] for i in judged], **self._judge_kwargs(), "swap": True})
            if isinstance(result, BaseException):
                failure = self._failure(result, len(judged))
                blame = failure_cause(result)
            else:
                prefs = result
        return self._finish(rows, errors, judged, ties, prefs, failure, time.perf_counter() - start, kwargs,
                            anchors, blame)

    def _finish(self, rows: JudgeInputs, errors: list[str | None], judged: list[int], ties: list[int],
                prefs: list[Preference] | None, failure: str | None, seconds: float,
                kwargs: Mapping[str, Any], anchors: Sequence[str] = (), failure_blame: str = "judge") -> RewardBatch:
        n = len(errors)
        probs: list[float | None] = [None] * n
        row_prefs: list[Preference | None] = [None] * n
        causes: list[str | None] = list(rows.causes) if len(rows.causes) == n else [None] * n  # input problems
        errors = list(errors)
        anchor_of = dict(zip(judged, anchors))
        if prefs is not None and len(prefs) == len(judged):
            for i, pref in zip(judged, prefs):
                row_prefs[i] = pref
                probs[i] = finite(pref.prob_a)
                if probs[i] is None:
                    errors[i] = pref.error or "no usable preference"
                    against_reference = anchor_of.get(i) is not None and anchor_of.get(i) == rows.references[i]
                    causes[i] = side_cause(pref.cause, rows.responses[i], None if against_reference else anchor_of.get(i))
        else:
            for i in judged:
                errors[i] = failure or "the judge returned the wrong number of preferences"
                causes[i] = failure_blame
        for i in ties:
            probs[i] = 0.5
        self._mirror(probs, row_prefs, errors, causes, rows, judged, ties)
        judged_rewards = [None if p is None else pairwise_reward(p, self.transform) for p in probs]  # type: ignore[arg-type]
        lengths = self._lengths(rows)
        rewards, before, floors = self._settle(judged_rewards, causes, rows, lengths, penalise=False)
        self.last_preferences = row_prefs
        self._warn_unscorable([e if p is None else None for e, p in zip(errors, probs)], n)
        judged_prefs = [row_prefs[i] for i in judged if row_prefs[i] is not None and row_prefs[i].prob_a is not None]
        scored = [p for p in probs if p is not None]
        extras: dict[str, list[Any]] = {"win_prob": probs}
        tied = set(ties)
        if self.log_feedback:
            extras["feedback"] = [
                (row_prefs[i].feedback if row_prefs[i] is not None and probs[i] is not None else
                 ("[tie with the anchor]" if i in tied and probs[i] is not None else f"[unscorable] {errors[i]}"))
                for i in range(n)
            ]
        extras["cause"] = causes
        extras["judge_floor"] = [float(f) for f in floors]
        stats = self._log(kwargs, extras, {
            **self._blame_metrics(causes, probs),
            "win_prob_mean": sum(scored) / len(scored) if scored else None,
            "consistent_frac": sum(p.consistent for p in judged_prefs) / len(judged_prefs) if judged_prefs else None,
            "truncated_frac": sum(bool(p and p.truncated) for p in row_prefs) / n if n else 0.0,
            "judge_seconds": seconds,
            **self._monitors(before, lengths, row_prefs),
        })
        scored_rows = self._scored_rows(
            rows, rewards, probs, errors, row_prefs,
            [bool(p is not None and p.truncated) for p in row_prefs],
            ["tie" if i in tied and probs[i] is not None else getattr(row_prefs[i], "source", None) for i in range(n)],
            causes, floors)
        return RewardBatch(rewards, scored_rows, self.value_name, failure, len(judged), stats)


def side_cause(cause: str | None, response: str | None, other: str | None) -> str | None:
    """Who a failed comparison of ``response`` with ``other`` (another policy completion; None: a
    trusted reference) blames for ``response``'s row. A ``response``-caused failure against a
    reference is the row's own; between two completions the judge does not say which side, so the
    side the defences find unjudgeable is blamed (both when neither or both are found: each is the
    policy's own output, and it must not gain by it); the other side's row counts as ``judge``.

    Example:
        >>> side_cause("response", "Fine.", "<think>never closed"), side_cause("response", "<think>x", "Fine.")
        ('judge', 'response')
        >>> side_cause("transport", "Fine.", None)
        'transport'
    """
    if cause != "response" or other is None:
        return cause
    mine, theirs = unjudgeable(response), unjudgeable(other)
    return "judge" if theirs and not mine else "response"


def _groups(rows: JudgeInputs, errors: Sequence[str | None]) -> dict[str, list[int]]:
    """The usable rows by prompt identity (a group may be split across ranks: positions say nothing)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i in range(len(rows)):
        if errors[i] is None:
            groups[group_key(rows.prompts[i])].append(i)
    return groups


class OnlineDPOPairwiseReward(PairwiseReward):
    """TRL's OnlineDPOTrainer layout: rows i and i + B are two samples of one prompt; one judgment
    (both orders) per pair gives p(A beats B) to row i and 1 - p to row i + B."""

    layout = "online_dpo"

    def _pairs(self, rows: JudgeInputs) -> tuple[list[str | None], list[int], list[str], list[int]]:
        n = len(rows)
        errors = list(rows.errors)
        if n % 2:
            return [f"row {i}: online_dpo layout needs an even number of rows, got {n}" for i in range(n)], [], [], []
        half = n // 2
        judged, anchors, ties = [], [], []
        for i in range(half):
            j = i + half
            if group_key(rows.prompts[i]) != group_key(rows.prompts[j]):
                message = f"row {i}: field 'prompt' differs from row {j}'s (online_dpo pairs row i with row i + {half})"
                errors[i] = errors[i] or message
                errors[j] = errors[j] or message
            elif errors[i] or errors[j]:
                errors[i] = errors[i] or errors[j]
                errors[j] = errors[j] or errors[i]
            elif rows.responses[j] == rows.responses[i]:
                ties.append(i)  # a response against itself: a tie, no judge call needed
            else:
                judged.append(i)
                anchors.append(rows.responses[j])  # type: ignore[arg-type]
        return errors, judged, anchors, ties

    def _mirror(self, probs: list[float | None], prefs: list[Preference | None], errors: list[str | None],
                causes: list[str | None], rows: JudgeInputs, judged: Sequence[int], ties: Sequence[int]) -> None:
        half = len(probs) // 2
        for i in range(half):
            j = i + half
            probs[j] = None if probs[i] is None else 1.0 - probs[i]
            prefs[j] = prefs[i]
            if probs[i] is None and errors[i]:
                errors[j] = errors[j] or errors[i]
            if probs[i] is None and prefs[i] is not None:  # the judged pair failed: blame each side
                causes[j] = side_cause(prefs[i].cause, rows.responses[j], rows.responses[i])
            elif probs[i] is None:
                causes[j] = causes[j] or causes[i]


class GroupPairwiseReward(PairwiseReward):
    """GRPO / RLOO layout: each completion against an anchor of its prompt group (see the module).
    Its ``async`` twin is :class:`AsyncPairwiseReward`."""

    layout = "group"

    @property
    def needs(self) -> str:
        """``anchor="reference"`` and ``"auto"`` judge each row against its reference: rows; the
        group anchor and the tournament need whole groups."""
        return ROWS if self.anchor in ("reference", "auto") else GROUPS

    def _pairs(self, rows: JudgeInputs) -> tuple[list[str | None], list[int], list[str], list[int]]:
        errors = list(rows.errors)
        groups = _groups(rows, errors)
        judged, anchors, ties = [], [], []
        # an engine that delivers single rows (PPO) has no group to fall back on under "auto"
        rows_only = self._engine_delivers is not None and GROUPS not in self._engine_delivers
        for members in groups.values():
            pick = min(members, key=lambda j: (hashlib.sha256((rows.responses[j] or "").encode()).hexdigest(), j))
            for i in members:
                reference = rows.references[i]
                if self.anchor == "reference" and reference is None:
                    errors[i] = f"row {i}: field '{self.reference_column}' is empty and anchor='reference' needs it"
                    continue
                if rows_only and reference is None:
                    errors[i] = (f"row {i}: field '{self.reference_column}' is empty, and anchor='auto' has no other "
                                 "completion of the prompt to compare with in an engine that scores rows one by one")
                    continue
                anchor = reference if reference is not None and self.anchor in ("reference", "auto") else rows.responses[pick]
                if anchor == rows.responses[i]:
                    ties.append(i)
                else:
                    judged.append(i)
                    anchors.append(anchor)  # type: ignore[arg-type]
        return errors, judged, anchors, ties

    def _mirror(self, probs: list[float | None], prefs: list[Preference | None], errors: list[str | None],
                causes: list[str | None], rows: JudgeInputs, judged: Sequence[int], ties: Sequence[int]) -> None:
        """The group anchor's tie with itself (0.5) is a reward only when some comparison of its
        group with it was judged: when every one failed, the anchor is unscorable too."""
        def on_group_anchor(i: int) -> bool:
            return not (rows.references[i] is not None and self.anchor in ("reference", "auto"))

        peers: dict[str, list[int]] = defaultdict(list)
        for i in judged:
            if on_group_anchor(i):
                peers[group_key(rows.prompts[i])].append(i)
        for i in ties:
            mine = peers.get(group_key(rows.prompts[i]), [])
            if not on_group_anchor(i) or not mine or any(probs[j] is not None for j in mine):
                continue
            probs[i] = None
            errors[i] = f"every comparison of its group with this anchor failed (first: {errors[mine[0]]})"
            blamed = [causes[j] for j in mine if causes[j] in ("judge", "transport")]
            causes[i] = "response" if unjudgeable(rows.responses[i]) else (blamed[0] if blamed else "judge")


    # -- the tournament: completions against each other, ranked by Bradley-Terry ----------------------------
    def _steps(self, prompts: Sequence[Any] | None, completions: Sequence[Any], kwargs: Mapping[str, Any]) -> Steps:
        if self.anchor != "tournament":
            return (yield from super()._steps(prompts, completions, kwargs))
        start = time.perf_counter()
        rows = self._read_rows(prompts, completions, kwargs)
        n = len(rows)
        errors = list(rows.errors)
        groups = _groups(rows, errors)
        matches = [pair for key, members in groups.items() for pair in tournament_pairs(members, self.pairs_per_completion, key)]
        prefs: list[Preference] | None = None
        failure = None
        blame = "judge"
        if matches:
            result = yield JudgeCall("compare", (
                [rows.instructions[i] for i, _ in matches], [rows.responses[i] for i, _ in matches],
                [rows.responses[j] for _, j in matches], [rows.rubrics[i] for i, _ in matches],
            ), {"reference_answers": [rows.references[i] for i, _ in matches], **self._judge_kwargs(), "swap": True})
            if isinstance(result, BaseException):
                failure = self._failure(result, len(matches))
                blame = failure_cause(result)
            elif len(result) == len(matches):
                prefs = result
            else:
                failure = "the judge returned the wrong number of preferences"
        probs, played, consistent = tournament_strengths(groups.values(), matches, prefs or [None] * len(matches), n)
        causes: list[str | None] = list(rows.causes)  # input problems (a non-text completion: the policy's)
        for i in range(n):
            if errors[i] is None and probs[i] is None:
                size = len(groups[group_key(rows.prompts[i])])
                errors[i] = failure or ("no other completion of this prompt to compare with" if size < 2 else
                                        "none of this completion's comparisons could be judged" if not played[i] else
                                        "its scored comparisons do not connect it to the largest part of its group "
                                        "(failed comparisons split the group)")
                causes[i] = blame if failure else self._match_cause(i, rows, matches, prefs)
        lengths = self._lengths(rows)
        judged_rewards = [None if p is None else pairwise_reward(p, self.transform) for p in probs]  # type: ignore[arg-type]
        rewards, before, floors = self._settle(judged_rewards, causes, rows, lengths, penalise=False)
        self.last_preferences = list(prefs or [])
        self._warn_unscorable([e if p is None else None for e, p in zip(errors, probs)], n)
        scored_probs = [p for p in probs if p is not None]
        extras: dict[str, list[Any]] = {"strength": probs}
        if self.log_feedback:
            extras["feedback"] = [f"[tournament] won {probs[i]:.2f} of its expected matches over {played[i]} comparisons"
                                  if probs[i] is not None else f"[unscorable] {errors[i]}" for i in range(n)]
        extras["cause"] = causes
        extras["judge_floor"] = [float(f) for f in floors]
        stats = self._log(kwargs, extras, {
            **self._blame_metrics(causes, probs),
            "strength_mean": sum(scored_probs) / len(scored_probs) if scored_probs else None,
            "consistent_frac": sum(consistent) / len(consistent) if consistent else None,
            "judgments_per_group": 2 * len(matches) / len(groups) if groups else None,
            "judge_seconds": time.perf_counter() - start,
            **self._monitors(before, lengths, list(prefs or [])),
        })
        records = [TournamentRecord(probs[i], played[i]) for i in range(n)]
        for (i, j), pref in zip(matches, prefs or [None] * len(matches)):
            for me, other in ((i, j), (j, i)):
                records[me].opponents.append(other)
                records[me].preferences.append(pref)
        scored_rows = self._scored_rows(
            rows, rewards, probs, errors, records,
            [any(bool(p is not None and p.truncated) for p in r.preferences) for r in records], ["tournament"] * n,
            causes, floors)
        return RewardBatch(rewards, scored_rows, "strength", failure, len(matches), stats)

    @staticmethod
    def _match_cause(i: int, rows: JudgeInputs, matches: Sequence[tuple[int, int]],
                     prefs: Sequence[Preference] | None) -> str:
        """Why row ``i`` of a tournament got no strength: ``response`` when a failed match of its
        blames it (:func:`side_cause`), else ``transport`` when one failed in transport, else
        ``judge`` (its matches failed, or it lies outside the largest connected part)."""
        found: list[str] = []
        for (a, b), pref in zip(matches, prefs or []):
            if i not in (a, b) or pref is None or finite(pref.prob_a) is not None:
                continue
            other = b if i == a else a
            found.append(side_cause(pref.cause, rows.responses[i], rows.responses[other]) or "judge")
        for cause in ("response", "transport"):
            if cause in found:
                return cause
        return "judge"


class AsyncPairwiseReward(GroupPairwiseReward):
    """:class:`GroupPairwiseReward` with ``async def __call__`` (GRPO/RLOO; OnlineDPO calls rewards
    synchronously, so use :class:`PairwiseReward` there). It awaits ``judge.acompare``."""

    async def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (),  # type: ignore[override]
                       completion_ids: Any = None, **kwargs: Any) -> list[float | None]:
        return (await self.ascore_batch(prompts, completions, **kwargs)).rewards


_LAYOUTS: dict[str, type[PairwiseReward]] = {"online_dpo": OnlineDPOPairwiseReward, "group": GroupPairwiseReward}


def build_pairwise_reward(judge: Any, judging: JudgingConfig, reward: RewardConfig,
                          layout: Layout = "group") -> PairwiseReward:
    """The ``pairwise`` reward shape: ``layout`` picks the class (``group``: GRPO/RLOO, async with
    ``async_reward``; ``online_dpo``: OnlineDPOTrainer); ``pairwise_anchor`` the anchor (old
    configs rank a group with ``pairwise_anchor: tournament``). A pairwise judgment weighs a
    checklist as a whole, so ``checklist_aggregation`` is not passed on."""
    options = config_options(judging, reward, "pairwise_anchor", "pairwise_transform", "checklist_aggregation")
    common = dict(anchor=reward.pairwise_anchor, transform=reward.pairwise_transform, **options)
    if reward.async_reward and layout == "group":
        return AsyncPairwiseReward(judge, **common)
    return PairwiseReward(judge, layout=layout, **common)


def build_tournament_reward(judge: Any, judging: JudgingConfig, reward: RewardConfig,
                            layout: Layout = "group") -> PairwiseReward:
    """The ``tournament`` reward shape: the completions of each prompt group compared with each
    other (``pairs_per_completion`` each) and rewarded by their Bradley-Terry strength."""
    return build_pairwise_reward(judge, judging, dataclasses.replace(reward, pairwise_anchor="tournament"), layout)
