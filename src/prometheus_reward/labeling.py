"""Preference labeling: turn response pairs (or lists) into a DPO-ready dataset, durably.

Inputs, one format per file, detected from the columns (or named with ``--format``):

- ``pair``: ``prompt``, ``response_a``, ``response_b`` (also ``response 1`` / ``response 2``);
- ``list``: ``prompt``, ``responses`` (a list): best-vs-worst (one pair) or all pairs;
- ``rejudge``: ``prompt``, ``chosen``, ``rejected``: an existing preference dataset judged again.

Prompts are text or a conversation (a list of messages); responses are text or assistant
messages. The judge reads them as every entry point does (:mod:`prometheus_reward.rows`: the
last user turn with the earlier turns as context, the last assistant message); the output
keeps the input's structure, in TRL's preference format: ``{prompt, chosen, rejected}``
(standard or conversational), plus ``score_chosen``, ``score_rejected``, ``margin``,
``feedback``, ``consistent``, ``input_row`` and every other input column (``rejudge`` adds
``flipped``: the judge prefers the input's rejected response; ``list`` adds ``pair`` = the
[chosen, rejected] indices and ``pairs_in_row``).

Rows without a usable preference (a tie, an order-inconsistent pair when ``inconsistent="skip"``,
a judge failure, bad input) go to ``<output stem>.skipped.jsonl`` with ``skip_reason`` and
``reason``; every input row lands in exactly one of the two files. A malformed line of a JSON
Lines input stops the run before any work, unless ``skip_bad_rows=True``: then it goes to the
side file (``skip_reason: unreadable``, with its ``line`` and ``text``) and is never judged; a
resumed run reads such lines again (a line fixed since is judged, one still bad is set aside
again, never twice). Both files are appended and fsynced batch by batch
(:mod:`prometheus_reward.label_files`), so a rerun after a crash (``kill -9`` included) resumes
where the files end: finished rows are skipped; with a :class:`~prometheus_reward.cached.CachedJudge`
(what the ``label`` command uses), judged-but-unwritten rows come from the cache. This module is
the pairing policy: which pairs are judged, and when a pair is a tie, inconsistent or kept.

Scores: ``method="pairwise"`` gives ``score_chosen = p(chosen better)`` (both orders averaged),
``score_rejected = 1 - score_chosen``; ``method="absolute"`` gives the two (expected) 1-5 scores.
``margin = score_chosen - score_rejected``.

Example:
    >>> from prometheus_reward.labeling import label_preferences
    >>> summary = label_preferences("pairs.jsonl", judge, "helpfulness", output="prefs.jsonl", mode="direct")  # doctest: +SKIP
    >>> summary.kept, summary.skipped                                                                          # doctest: +SKIP
    (48, 2)
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

from .config import JudgingConfig, RerankConfig
from .io import ROW_FIELD, UNREADABLE, DataRows, read_data, skipped_path  # skipped_path: the side file's name, for callers
from .label_files import LabelFiles
from .rerank import rerank
from .rows import RowError, RubricColumn, describe, judge_inputs

logger = logging.getLogger(__name__)

InputFormat = Literal["pair", "list", "rejudge"]
Method = Literal["pairwise", "absolute"]
SKIP_KINDS = ("tie", "inconsistent", "judge_error", "bad_input", UNREADABLE)
_PAIR_A = ("response_a", "response_A", "response 1", "response_1")
_PAIR_B = ("response_b", "response_B", "response 2", "response_2")
_PROMPT = ("prompt", "instruction", "question")


def detect_format(columns: Iterable[str]) -> tuple[InputFormat, dict[str, str]]:
    """The input format and its column names, from a row's keys.

    Example:
        >>> detect_format(["id", "prompt", "chosen", "rejected"])
        ('rejudge', {'prompt': 'prompt', 'a': 'chosen', 'b': 'rejected'})
    """
    cols = list(columns)
    prompt = next((c for c in _PROMPT if c in cols), None)
    if prompt is None:
        raise ValueError(f"no prompt column: expected one of {', '.join(_PROMPT)} (columns: {', '.join(cols)})")
    if "chosen" in cols and "rejected" in cols:
        return "rejudge", {"prompt": prompt, "a": "chosen", "b": "rejected"}
    if "responses" in cols:
        return "list", {"prompt": prompt, "responses": "responses"}
    a = next((c for c in _PAIR_A if c in cols), None)
    b = next((c for c in _PAIR_B if c in cols), None)
    if a and b:
        return "pair", {"prompt": prompt, "a": a, "b": b}
    raise ValueError(
        "cannot tell the input format: expected (prompt, response_a, response_b), (prompt, responses) "
        f"or (prompt, chosen, rejected) (columns: {', '.join(cols)})"
    )


def resolve_format(row: Mapping[str, Any], input_format: InputFormat | None = None,
                   columns: Mapping[str, str] | None = None) -> tuple[InputFormat, dict[str, str]]:
    """The input format and its columns for rows like ``row``: detected from its keys, with
    ``input_format`` and ``columns`` (``prompt``, ``a``, ``b``, ``responses``) overriding. A named
    column that is not there, or a format without the columns it needs, is a ValueError.

    Example:
        >>> resolve_format({"q": "?", "x": "1", "y": "2"}, "pair", {"prompt": "q", "a": "x", "b": "y"})
        ('pair', {'prompt': 'q', 'a': 'x', 'b': 'y'})
    """
    keys = list(row)
    columns = dict(columns or {})
    for name, column in columns.items():
        if column not in keys:
            raise ValueError(f"the {name} column {column!r} is not in the data (columns: {', '.join(keys)})")
    try:
        fmt, cols = detect_format(keys)
    except ValueError:
        if input_format is None:
            raise
        fmt, cols = input_format, {}
    if input_format is not None:
        fmt = input_format
    needed = ("prompt", "responses") if fmt == "list" else ("prompt", "a", "b")
    # detected columns of another format are kept where they fit (pair and rejudge share a/b)
    cols = {**{k: v for k, v in cols.items() if k in needed}, **columns}
    missing = [name for name in needed if name not in cols]
    if missing:
        raise ValueError(f"the {fmt} format needs a column for: {', '.join(missing)} (columns: {', '.join(keys)})")
    return fmt, cols


def _as_response(value: Any, conversational: bool) -> Any:
    """The response as the output shows it: as given, except that text under a conversational
    prompt becomes an assistant message (TRL's conversational format)."""
    if conversational and isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    if isinstance(value, Mapping):
        return [dict(value)]
    return value


# -- results ---------------------------------------------------------------------------------------
@dataclass
class LabelSummary:
    """What a labeling run produced (counted over the whole files, resumed parts included).

    Attributes:
        rows: input rows. kept_rows / skipped_rows: rows in each file (they add up to ``rows``).
        pairs: preference rows written (more than kept_rows with all-pairs lists).
        skipped: skipped rows by kind (tie, inconsistent, judge_error, bad_input).
        resumed: rows found finished in the files at the start.
        margins: every written pair's margin.
        cache: hits/misses/writes of this run.
        seconds: wall time of this run; judged_rows / seconds is the throughput.
    """

    output: str
    skipped_output: str
    rows: int = 0
    kept_rows: int = 0
    skipped_rows: int = 0
    pairs: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    inconsistent_kept: int = 0
    resumed: int = 0
    judged_rows: int = 0
    margins: list[float] = field(default_factory=list)
    cache: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def kept(self) -> int:
        return self.kept_rows

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["margin_histogram"] = margin_histogram(self.margins)
        data.pop("margins")
        return data


def margin_histogram(margins: Sequence[float], bins: int = 10) -> list[tuple[float, float, int]]:
    """(low, high, count) bins spanning the margins' range.

    Example:
        >>> margin_histogram([0.1, 0.2, 0.9], bins=2)
        [(0.1, 0.5, 2), (0.5, 0.9, 1)]
    """
    if not margins:
        return []
    import numpy as np

    lo, hi = min(margins), max(margins)
    if lo == hi:
        return [(float(lo), float(hi), len(margins))]
    counts, edges = np.histogram(margins, bins=bins, range=(lo, hi))
    return [(round(float(edges[k]), 6), round(float(edges[k + 1]), 6), int(c)) for k, c in enumerate(counts)]


# -- labeling -----------------------------------------------------------------------------------------
@dataclass
class _Unit:
    """One input row's judging work."""

    index: int
    row: dict[str, Any]
    prompt_text: str | None = None
    texts: list[str] = field(default_factory=list)
    raw: list[Any] = field(default_factory=list)
    rubric: Any = None
    reference: Any = None
    error: str | None = None


@dataclass(frozen=True)
class LabelOptions:
    """How pairs are judged and kept (the policy arguments of :func:`label_preferences`).

    Example:
        >>> LabelOptions(mode="direct", min_margin=0.1).judge_kwargs()
        {'mode': 'direct', 'samples': 1}
    """

    mode: str = JudgingConfig.mode
    method: Method = "pairwise"
    list_pairs: Literal["best-vs-worst", "all"] = "best-vs-worst"
    tournament: Literal["knockout", "round-robin"] = RerankConfig.tournament
    inconsistent: Literal["keep", "skip"] = "keep"
    min_margin: float = 0.0
    samples: int = 1
    overrides: Mapping[str, Any] = field(default_factory=dict)  # the judge's sampling overrides

    def __post_init__(self) -> None:
        if self.method not in ("pairwise", "absolute"):
            raise ValueError(f"unknown method {self.method!r}; choose pairwise or absolute")
        if self.inconsistent not in ("keep", "skip"):
            raise ValueError("inconsistent must be 'keep' or 'skip'")
        if self.list_pairs not in ("best-vs-worst", "all"):
            raise ValueError("list_pairs must be 'best-vs-worst' or 'all'")

    def judge_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of every judge call."""
        return dict(mode=self.mode, samples=self.samples, **self.overrides)


@dataclass(frozen=True)
class Verdict:
    """The judge's word on one pair ``(i, j)``, ``i`` shown as A: who wins, the winner's and the
    loser's scores, the feedback, whether both orders agreed (``None``: absolute grading), whether
    it is an exact tie; or the ``error`` that left no verdict."""

    error: str | None = None
    a_wins: bool = False
    score_win: float = 0.0
    score_lose: float = 0.0
    feedback: str = ""
    consistent: bool | None = None
    tie: bool = False


def _skip(unit: _Unit, kind: str, reason: str) -> dict[str, Any]:
    return {**unit.row, ROW_FIELD: unit.index, "skip_reason": kind, "reason": reason}


def label_preferences(
    data: str | Path | DataRows | Sequence[Mapping[str, Any]],
    judge: Any,
    rubric: Any = None,
    *,
    output: str | Path,
    mode: str = JudgingConfig.mode,
    method: Method = "pairwise",
    list_pairs: Literal["best-vs-worst", "all"] = "best-vs-worst",
    tournament: Literal["knockout", "round-robin"] = RerankConfig.tournament,
    inconsistent: Literal["keep", "skip"] = "keep",
    min_margin: float = 0.0,
    samples: int = 1,
    batch_size: int = 16,
    input_format: InputFormat | None = None,
    columns: Mapping[str, str] | None = None,
    reference_column: str | None = None,
    overwrite: bool = False,
    limit: int | None = None,
    progress: bool = True,
    skip_bad_rows: bool = False,
    **sampling: Any,
) -> LabelSummary:
    """Label preferences and write them in TRL's format, resumably.

    Args:
        data: a data file (JSONL/JSON/CSV/Parquet), what :func:`~prometheus_reward.io.read_data`
            read from one (rows keep their numbers in the file; its malformed lines go to the
            side file), or a list of row dicts.
        judge: a :class:`~prometheus_reward.judge.Judge`, or a
            :class:`~prometheus_reward.cached.CachedJudge` so that a resumed run pays nothing twice.
        rubric: the default rubric (a per-row ``rubric`` column wins).
        output: the JSONL to write; skipped rows go to ``<stem>.skipped.jsonl``. If they exist
            (and not ``overwrite``), the run resumes.
        mode: judge mode: ``generate``, ``expected`` or ``direct``.
        method: ``pairwise`` (one comparison in both orders per pair) or ``absolute`` (grade
            each response; ``consistent`` is then None).
        list_pairs: list inputs: ``best-vs-worst`` (rank with :func:`~prometheus_reward.rerank.rerank`,
            keep the top and bottom) or ``all`` (every pair with a usable preference).
        tournament: how best-vs-worst ranks pairwise (``round-robin`` or ``knockout``).
        inconsistent: pairwise pairs whose two orders disagree: ``keep`` (flagged
            ``consistent: false``) or ``skip``.
        min_margin: pairs with ``|margin| <= min_margin`` are ties.
        samples: judgments per call, averaged.
        batch_size: input rows per judge call and per fsynced write.
        input_format / columns: force the format and its columns (``prompt``, ``a``, ``b``,
            ``responses``); detected from the first row otherwise.
        overwrite: start over instead of resuming.
        limit: only the first ``limit`` rows (records of the file).
        skip_bad_rows: when ``data`` is a file, set its malformed lines aside (side file,
            ``skip_reason: unreadable``) instead of raising
            :class:`~prometheus_reward.io.DataFileError`.
        **sampling: overrides of the judge's sampling (``max_new_tokens``, ``temperature``...).

    Returns:
        A :class:`LabelSummary` over both files.
    """
    from tqdm.auto import tqdm

    options = LabelOptions(mode=mode, method=method, list_pairs=list_pairs, tournament=tournament,
                           inconsistent=inconsistent, min_margin=min_margin, samples=samples, overrides=sampling)
    started = time.perf_counter()
    if isinstance(data, (str, Path)):
        table = read_data(data, limit, skip_bad_rows=skip_bad_rows)
    else:
        table = DataRows.of(data)
        if limit is not None:
            table = DataRows([r for r, n in zip(table.rows, table.numbers) if n < limit],
                             [n for n in table.numbers if n < limit], [b for b in table.bad_lines if b.row < limit],
                             table.path)
    rows = dict(zip(table.numbers, table.rows))  # row number in the file -> row
    files = LabelFiles(output)
    summary = LabelSummary(str(files.output), str(files.skipped), rows=table.records)
    if not table.records:
        raise ValueError("the input has no rows")
    first = table.rows[0] if table.rows else {}
    fmt, cols = resolve_format(first, input_format, columns) if table.rows else ("pair", {})
    ref_col = reference_column or ("reference_answer" if "reference_answer" in first else None)
    if overwrite:
        files.clear()
    done = files.resume() & (set(rows) | {b.row for b in table.bad_lines})
    summary.resumed = len(done)
    todo = [i for i in table.numbers if i not in done]
    unreadable = [b for b in table.bad_lines if b.row not in done]
    rubrics = RubricColumn(rubric)
    with files.appending() as write, \
            tqdm(total=table.records, initial=len(done), desc="labeling", unit="row", disable=not progress) as bar:
        if unreadable:
            write.set_aside(unreadable)
            for line in unreadable:
                logger.warning("set aside: %s", line.reason)
            bar.update(len(unreadable))
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            units = [_prepare(i, rows[i], fmt, cols, rubrics, ref_col) for i in batch]
            kept, skipped = _judge_units(units, fmt, cols, judge, options)
            write.batch(kept, skipped)
            for row in skipped:
                if row["skip_reason"] == "bad_input":
                    logger.warning("%s", row["reason"])
            summary.judged_rows += len(batch)
            bar.update(len(batch))
    if hasattr(judge, "stats") and callable(judge.stats):
        summary.cache = judge.stats()
    summary.seconds = time.perf_counter() - started
    counts = files.count(SKIP_KINDS)
    for name in ("kept_rows", "skipped_rows", "pairs", "inconsistent_kept", "margins", "skipped"):
        setattr(summary, name, getattr(counts, name))
    return summary


def _prepare(index: int, row: dict[str, Any], fmt: str, cols: Mapping[str, str], rubrics: RubricColumn,
             ref_col: str | None) -> _Unit:
    """One input row as a unit to judge: its responses read by :func:`prometheus_reward.rows.judge_inputs`
    (as every entry point reads them), or the row's problem."""
    unit = _Unit(index, row)
    try:
        for name in ([cols["prompt"], cols["responses"]] if fmt == "list" else [cols["prompt"], cols["a"], cols["b"]]):
            if name not in row:
                raise RowError(f"row {index}: field '{name}' is missing")
        if fmt == "list":
            responses = row[cols["responses"]]
            if not isinstance(responses, (list, tuple)):
                raise RowError(f"row {index}: field '{cols['responses']}' must be a list, got {describe(responses)}")
            if len(responses) < 2:
                raise RowError(f"row {index}: field '{cols['responses']}' needs at least 2 responses, got {len(responses)}")
            fields = [f"{cols['responses']}[{k}]" for k in range(len(responses))]
        else:
            responses, fields = [row[cols["a"]], row[cols["b"]]], [cols["a"], cols["b"]]
    except RowError as err:
        unit.error = str(err)
        return unit
    reference_cell = row.get(ref_col) if ref_col else None
    parts = [judge_inputs([row[cols["prompt"]]], [response], [row.get("rubric")], [reference_cell], default_rubric=rubrics,
                          reference_field=ref_col or "reference_answer", prompt_field=cols["prompt"], response_field=field,
                          numbers=[index])
             for response, field in zip(responses, fields)]
    unit.error = next((part.errors[0] for part in parts if part.errors[0]), None)
    if unit.error is None:
        unit.prompt_text, unit.rubric, unit.reference = parts[0].instructions[0], parts[0].rubrics[0], parts[0].references[0]
        unit.raw = list(responses)
        unit.texts = [part.responses[0] for part in parts]
    return unit


def _pair_record(unit: _Unit, cols: Mapping[str, str], fmt: str, win: int, lose: int, score_w: float | None,
                 score_l: float | None, feedback: str, consistent: bool | None, extra: dict[str, Any]) -> dict[str, Any]:
    prompt = unit.row[cols["prompt"]]
    conversational = not isinstance(prompt, str)
    record = {k: v for k, v in unit.row.items() if k not in _consumed(cols, fmt)}
    record.update({
        "prompt": prompt,
        "chosen": _as_response(unit.raw[win], conversational),
        "rejected": _as_response(unit.raw[lose], conversational),
        "score_chosen": score_w,
        "score_rejected": score_l,
        "margin": None if score_w is None or score_l is None else score_w - score_l,
        "feedback": feedback,
        "consistent": consistent,
        ROW_FIELD: unit.index,
        **extra,
    })
    return record


def _consumed(cols: Mapping[str, str], fmt: str) -> set[str]:
    # the columns the preference fields replace; everything else is carried over
    if fmt == "list":
        return {cols["prompt"], cols["responses"]}
    return {cols["prompt"], cols["a"], cols["b"]}


def _judge_units(units: list[_Unit], fmt: str, cols: Mapping[str, str], judge: Any,
                 options: LabelOptions) -> tuple[list[dict], list[dict]]:
    kept: list[dict] = []
    skipped: list[dict] = []
    live = []
    for unit in units:
        if unit.error:
            skipped.append(_skip(unit, "bad_input", unit.error))
        else:
            live.append(unit)
    if not live:
        return kept, skipped
    kw = options.judge_kwargs()
    method, min_margin = options.method, options.min_margin
    # Which pairs to judge: (unit, i, j) with i shown as A.
    if fmt != "list" or options.list_pairs == "all":
        pairs = [(u, i, j) for u in live for i, j in combinations(range(len(u.texts)), 2)]
        verdicts = _judge_pairs(pairs, judge, method, kw)
        by_unit: dict[int, list[tuple[int, int, Verdict]]] = {}
        for (u, i, j), verdict in zip(pairs, verdicts):
            by_unit.setdefault(u.index, []).append((i, j, verdict))
        for unit in live:
            results = by_unit.get(unit.index, [])
            records, reasons = [], []
            for i, j, v in results:
                kind, reason = _verdict_problem(v, min_margin, options.inconsistent, unit.index, (i, j) if fmt == "list" else None)
                if kind:
                    reasons.append((kind, reason))
                    continue
                win, lose = (i, j) if v.a_wins else (j, i)
                extra = {"pair": [win, lose], "pairs_in_row": None} if fmt == "list" else {}
                if fmt == "rejudge":
                    extra["flipped"] = win != 0  # the judge disagrees with the input's chosen
                records.append(_pair_record(unit, cols, fmt, win, lose, v.score_win, v.score_lose,
                                            v.feedback, v.consistent, extra))
            if records:
                if fmt == "list":
                    for r in records:
                        r["pairs_in_row"] = len(records)
                kept.extend(records)
            else:
                kind, reason = _summarise_reasons(reasons)
                skipped.append(_skip(unit, kind, reason))
        return kept, skipped
    # list, best-vs-worst: rank the responses, then keep top vs bottom
    ranked = rerank(
        [u.prompt_text for u in live], [u.texts for u in live], judge, [u.rubric for u in live],
        strategy="absolute" if method == "absolute" else "pairwise", tournament=options.tournament,
        ranking="win-rate", reference_answers=[u.reference for u in live], **kw,
    )
    for unit, r in zip(live, ranked):
        judged = [k for k, s in enumerate(r.scores) if s is not None]
        if len(judged) < 2:
            errors = [e for e in r.errors if e] + [c.error for c in r.comparisons if c.error]
            reason = f"row {unit.index}: fewer than 2 responses could be judged" + (f" ({errors[0]})" if errors else "")
            skipped.append(_skip(unit, "judge_error", reason))
            continue
        best = r.best if r.best is not None else r.order[0]
        worst = min(judged, key=lambda k: (r.scores[k], -k))
        margin = r.scores[best] - r.scores[worst]
        if best == worst or margin <= min_margin:
            skipped.append(_skip(unit, "tie", f"row {unit.index}: best and worst responses tie (margin {margin:.4g})"))
            continue
        direct = next((c for c in r.comparisons if {c.i, c.j} == {best, worst}), None)
        consistent = None if method == "absolute" else (direct.consistent if direct else None)
        if method == "pairwise" and consistent is False and options.inconsistent == "skip":
            skipped.append(_skip(unit, "inconsistent", f"row {unit.index}: the judge's two orders disagree on best vs worst"))
            continue
        feedback = r.feedback[best] if method == "absolute" else (direct.feedback if direct else "")
        kept.append(_pair_record(unit, cols, fmt, best, worst, r.scores[best], r.scores[worst],
                                 feedback, consistent, {"pair": [best, worst], "pairs_in_row": 1}))
    return kept, skipped


def _judge_pairs(pairs: list[tuple[_Unit, int, int]], judge: Any, method: str, kw: dict[str, Any]) -> list[Verdict]:
    """One :class:`Verdict` per ``(unit, i, j)``."""
    if not pairs:
        return []
    verdicts: list[Verdict] = []
    if method == "pairwise":
        prefs = judge.compare(
            [u.prompt_text for u, _, _ in pairs], [u.texts[i] for u, i, _ in pairs],
            [u.texts[j] for u, _, j in pairs], [u.rubric for u, _, _ in pairs],
            [u.reference for u, _, _ in pairs], swap=True, errors="return", **kw,
        )
        for pref in prefs:
            if pref.error or pref.prob_a is None:
                verdicts.append(Verdict(error=pref.error or "no preference"))
                continue
            a_wins = pref.prob_a > 0.5
            p_win = pref.prob_a if a_wins else 1.0 - pref.prob_a
            feedback = pref.feedback if not pref.feedback_swapped else f"{pref.feedback}\n\n[swapped order] {pref.feedback_swapped}"
            verdicts.append(Verdict(None, a_wins, p_win, 1.0 - p_win, feedback, bool(pref.consistent), pref.prob_a == 0.5))
        return verdicts
    # absolute: grade each distinct response once
    flat: dict[tuple[int, int], int] = {}
    jobs = []
    for u, i, j in pairs:
        for k in (i, j):
            if (u.index, k) not in flat:
                flat[(u.index, k)] = len(jobs)
                jobs.append((u, k))
    grades = judge.grade([u.prompt_text for u, _ in jobs], [u.texts[k] for u, k in jobs],
                          [u.rubric for u, _ in jobs], [u.reference for u, _ in jobs], errors="return", **kw)
    for u, i, j in pairs:
        gi, gj = grades[flat[(u.index, i)]], grades[flat[(u.index, j)]]
        if gi.value is None or gj.value is None:
            verdicts.append(Verdict(error=gi.error or gj.error or "no score"))
            continue
        a_wins = gi.value > gj.value
        win, lose = (gi, gj) if a_wins else (gj, gi)
        feedback = f"[chosen] {win.feedback}\n\n[rejected] {lose.feedback}".strip() if (win.feedback or lose.feedback) else ""
        verdicts.append(Verdict(None, a_wins, win.value, lose.value, feedback, None, gi.value == gj.value))
    return verdicts


def _verdict_problem(v: Verdict, min_margin: float, inconsistent: str, row: int,
                     pair: tuple[int, int] | None) -> tuple[str | None, str]:
    where = f"row {row}" + (f" pair {pair[0]}-{pair[1]}" if pair else "")
    if v.error:
        return "judge_error", f"{where}: {v.error}"
    margin = v.score_win - v.score_lose
    if v.tie or margin <= min_margin:
        return "tie", f"{where}: tie (margin {margin:.4g})"
    if v.consistent is False and inconsistent == "skip":
        return "inconsistent", f"{where}: the judge's two orders disagree"
    return None, ""


def _summarise_reasons(reasons: list[tuple[str, str]]) -> tuple[str, str]:
    if not reasons:
        return "judge_error", "no pair could be judged"
    if len(reasons) == 1:
        return reasons[0]
    kinds = Counter(k for k, _ in reasons)
    kind = kinds.most_common(1)[0][0]
    return kind, "; ".join(r for _, r in reasons)
