"""Evaluator training data: which schema a file or hub dataset is in, and its rows as
:class:`EvaluatorExample` (the judge's inputs plus the feedback and result to learn).

Schemas (detected from the column names, or named with ``schema=``):

=========================  =================================================================================
``feedback_collection``    ``orig_instruction``, ``orig_response``, ``orig_criteria``,
                           ``orig_score1_description`` .. ``orig_score5_description``, ``orig_feedback``,
                           ``orig_score``; optional ``orig_reference_answer``
                           (``prometheus-eval/Feedback-Collection``)
``preference_collection``  ``orig_instruction``, ``orig_response_A``, ``orig_response_B``, ``orig_criteria``,
                           ``orig_feedback``, ``orig_preference`` (A or B); optional
                           ``orig_reference_answer`` and score descriptions
                           (``prometheus-eval/Preference-Collection``)
``absolute``               this library's graded rows (``prometheus-reward grade`` output, or your own
                           labels): ``instruction``/``prompt``/``question``, ``response``/``completion``/
                           ``answer`` (text or chat messages), ``feedback``, ``score``; optional ``rubric``
                           (else the default rubric) and ``reference_answer``
``relative``               this library's compared rows (``prometheus-reward compare`` output, or your own
                           labels): the instruction, ``response_a`` / ``chosen``, ``response_b`` /
                           ``rejected``, ``feedback``,
                           ``winner`` (A or B); optional ``feedback_swapped`` (the feedback written with
                           B shown first), ``consistent``, ``rubric``, ``reference_answer``
``rendered``               fully rendered absolute prompts, as the meta-evaluation sets hold them:
                           ``instruction`` (or ``prompt``, ending in ``###Feedback: ``) and ``output``
                           (``feedback [RESULT] N``) or ``feedback`` + ``score``
=========================  =================================================================================

The two collections' own ``instruction``/``output`` columns are not used: the prompt is rendered
again from the ``orig_*`` fields through :mod:`prometheus_reward.templates`, so that training sees
the bytes :class:`~prometheus_reward.judge.Judge` sends for the same row. The target is always
``feedback + " [RESULT] " + result`` (the Prometheus output format).

**Presentation order (pairwise).** A row trains the order it is given in. Its feedback names
"Response A" and "Response B" in prose, so a swapped copy cannot be made by swapping the responses;
when the row carries a feedback written for the swapped order (``feedback_swapped``, as
``compare`` writes it), that order is trained as well, unless ``consistent`` says the two
orders disagreed (then only the given order is kept).

**Bad rows** raise a :class:`~prometheus_reward.rows.RowError` naming the source, row and field
(``on_bad_row="raise"``), or are skipped, counted per reason in :class:`DataReport` and
logged (``"skip"``, the default); nothing is dropped silently.

Example:
    >>> detect_schema(["instruction", "response", "feedback", "score"])
    'absolute'
    >>> examples, report = read_examples([{"prompt": "Say hi.", "response": "Hello!", "rubric": "helpfulness",
    ...                                     "feedback": "Friendly and on point.", "score": 5}])
    >>> examples[0].target
    'Friendly and on point. [RESULT] 5'
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ..parsing import parse_absolute_output
from ..rows import RowError, RubricColumn, describe, reference_for, require_prompt, require_response
from ..rubric import Rubric

logger = logging.getLogger(__name__)

SCHEMAS: tuple[str, ...] = ("feedback_collection", "preference_collection", "absolute", "relative", "rendered")
BAD_ROW_POLICIES: tuple[str, ...] = ("skip", "raise")
DEFAULT_DATASETS: tuple[str, ...] = ("prometheus-eval/Feedback-Collection", "prometheus-eval/Preference-Collection")

_SCORE_DESCRIPTIONS = tuple(f"orig_score{k}_description" for k in range(1, 6))
_FEEDBACK_COLLECTION = ("orig_instruction", "orig_response", "orig_criteria", *_SCORE_DESCRIPTIONS,
                        "orig_feedback", "orig_score")
_PREFERENCE_COLLECTION = ("orig_instruction", "orig_response_A", "orig_response_B", "orig_criteria",
                          "orig_feedback", "orig_preference")
_INSTRUCTION = ("instruction", "prompt", "question")
_RESPONSE = ("response", "completion", "answer")
# the column names `grade` and `compare` read, in their order
_RESPONSE_A = ("response_a", "response_A", "chosen", "response 1")
_RESPONSE_B = ("response_b", "response_B", "rejected", "response 2")
_RESULT_MARKER = "[RESULT]"
_ROW_PREFIX = re.compile(r"^.*?\brow \d+: ")


@dataclass
class EvaluatorExample:
    """One training example: what the judge reads and what it should write.

    ``kind`` is ``absolute`` (instruction, response, rubric, reference -> feedback, score 1-5),
    ``relative`` (instruction, response_a, response_b, rubric, reference -> feedback, "A"/"B") or
    ``rendered`` (an already rendered absolute user turn in ``rendered`` -> feedback, score).
    """

    kind: str
    feedback: str
    result: int | str
    instruction: str | None = None
    response: str | None = None
    response_a: str | None = None
    response_b: str | None = None
    rubric: Rubric | None = None
    reference_answer: str | None = None
    rendered: str | None = None
    source: str = ""
    row: int = 0
    swapped: bool = False

    @property
    def target(self) -> str:
        """What the evaluator is trained to write: ``feedback [RESULT] result``."""
        return f"{self.feedback} {_RESULT_MARKER} {self.result}"


@dataclass
class DataReport:
    """What reading the data did: rows read, examples made (per kind), rows skipped per reason."""

    rows: int = 0
    examples: Counter = field(default_factory=Counter)
    schemas: dict[str, str] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    swapped_added: int = 0
    swapped_skipped_inconsistent: int = 0
    truncated: int = 0
    max_problems: int = 20

    def skip(self, err: RowError) -> None:
        message = str(err)
        # count by the message without its source and row number, so reasons aggregate
        reason = _ROW_PREFIX.sub("", message, count=1)
        self.skipped[reason] += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(message)

    @property
    def skipped_rows(self) -> int:
        return sum(self.skipped.values())

    def merge(self, other: "DataReport") -> None:
        self.rows += other.rows
        self.examples.update(other.examples)
        self.schemas.update(other.schemas)
        self.skipped.update(other.skipped)
        self.problems.extend(other.problems[: max(0, self.max_problems - len(self.problems))])
        self.swapped_added += other.swapped_added
        self.swapped_skipped_inconsistent += other.swapped_skipped_inconsistent
        self.truncated += other.truncated

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "examples": dict(self.examples), "schemas": dict(self.schemas),
                "skipped_rows": self.skipped_rows, "skipped": dict(self.skipped), "problems": list(self.problems),
                "swapped_added": self.swapped_added,
                "swapped_skipped_inconsistent": self.swapped_skipped_inconsistent, "truncated": self.truncated}


# -- schema detection -------------------------------------------------------------------------------------
def _first(columns: Iterable[str], names: Sequence[str]) -> str | None:
    cols = set(columns)
    return next((n for n in names if n in cols), None)


def detect_schema(columns: Iterable[str]) -> str:
    """The schema a set of column names is in (see the module docstring); a ValueError names the
    columns each schema needs when none fits.

    Example:
        >>> detect_schema(["orig_instruction", "orig_response_A", "orig_response_B", "orig_criteria",
        ...                "orig_feedback", "orig_preference", "instruction", "output"])
        'preference_collection'
    """
    cols = set(columns)
    if cols.issuperset(_FEEDBACK_COLLECTION):
        return "feedback_collection"
    if cols.issuperset(_PREFERENCE_COLLECTION):
        return "preference_collection"
    has_instruction = _first(cols, _INSTRUCTION) is not None
    if has_instruction and _first(cols, _RESPONSE_A) and _first(cols, _RESPONSE_B) and {"feedback", "winner"} <= cols:
        return "relative"
    if has_instruction and _first(cols, _RESPONSE) and {"feedback", "score"} <= cols:
        return "absolute"
    if has_instruction and not _first(cols, _RESPONSE) and ("output" in cols or {"feedback", "score"} <= cols):
        return "rendered"
    if {"chosen", "rejected"} <= cols:  # and no feedback + winner, or it would be compared rows
        raise ValueError(
            "columns look like a preference (DPO) file (chosen, rejected): it has no feedback per presentation "
            "order to learn from; train on compare's output (response_a, response_b, winner, feedback) instead")
    raise ValueError(
        f"no evaluator training schema fits the columns {', '.join(sorted(cols))}; expected one of: "
        "Feedback Collection (orig_instruction, orig_response, orig_criteria, orig_score1..5_description, "
        "orig_feedback, orig_score), Preference Collection (orig_instruction, orig_response_A, orig_response_B, "
        "orig_criteria, orig_feedback, orig_preference), graded rows (instruction, response, feedback, score), "
        "compared rows (instruction, response_a, response_b, feedback, winner), rendered prompts "
        "(instruction, output)")


# -- cell readers -------------------------------------------------------------------------------------------
def _text(row: Mapping[str, Any], index: int, name: str, where: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        raise RowError(f"{where}row {index}: field '{name}' must be non-empty text, got "
                       f"{'an empty string' if isinstance(value, str) else describe(value)}")
    return value


def _feedback(row: Mapping[str, Any], index: int, name: str, where: str) -> str:
    text = _text(row, index, name, where).strip()
    if _RESULT_MARKER in text:
        # the target appends its own result; a second one would teach two verdicts
        raise RowError(f"{where}row {index}: field '{name}' already contains {_RESULT_MARKER}; give the feedback alone")
    return text


def _score(value: Any, index: int, name: str, where: str) -> int:
    score = None
    if isinstance(value, bool):
        score = None
    elif isinstance(value, int):
        score = value
    elif isinstance(value, float) and value.is_integer():
        score = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        score = int(value.strip())
    if score is None or not 1 <= score <= 5:
        raise RowError(f"{where}row {index}: field '{name}' must be an integer score from 1 to 5, got {value!r}")
    return score


def _winner(value: Any, index: int, name: str, where: str) -> str:
    letter = value.strip().upper() if isinstance(value, str) else None
    if letter not in ("A", "B"):
        raise RowError(f"{where}row {index}: field '{name}' must be 'A' or 'B', got {value!r}")
    return letter


def _criteria(text: str) -> str:
    # Rubric renders "[criteria]"; a criteria cell already in brackets would render doubled
    text = text.strip()
    return text[1:-1].strip() if text.startswith("[") and text.endswith("]") else text


def _collection_rubric(row: Mapping[str, Any], index: int, where: str, required: bool) -> Rubric:
    criteria = _criteria(_text(row, index, "orig_criteria", where))
    present = [row.get(name) for name in _SCORE_DESCRIPTIONS]
    if required or any(isinstance(d, str) and d.strip() for d in present):
        descriptions = tuple(_text(row, index, name, where) for name in _SCORE_DESCRIPTIONS)
        return Rubric(criteria, descriptions)  # type: ignore[arg-type]
    # the relative prompt shows only "[criteria]", which a verbatim rubric reproduces
    return Rubric(criteria, text=f"[{criteria}]")


# -- converters -----------------------------------------------------------------------------------------------
class _Reader:
    def __init__(self, schema: str, columns: Sequence[str], rubric: Any, swapped_feedback: bool, source: str,
                 report: DataReport):
        self.schema = schema
        self.where = f"{source}: " if source else ""
        self.source = source
        self.report = report
        self.swapped_feedback = swapped_feedback
        try:
            self.rubrics = RubricColumn(rubric)
        except (ValueError, TypeError, OSError) as err:
            raise ValueError(f"default rubric: {err}") from None
        self.instruction = _first(columns, _INSTRUCTION)
        self.response = _first(columns, _RESPONSE)
        self.response_a = _first(columns, _RESPONSE_A)
        self.response_b = _first(columns, _RESPONSE_B)
        if schema in ("absolute", "relative") and rubric is None and "rubric" not in columns:
            raise ValueError(f"{self.where}the rows have no 'rubric' column: give a default rubric "
                             "(a preset name, a YAML file or rubric text)")

    def __call__(self, row: Mapping[str, Any], index: int) -> list[EvaluatorExample]:
        try:
            return getattr(self, "_" + self.schema)(row, index)
        except RowError as err:
            # the shared row readers name the row and field; the source goes in front
            if self.where and not str(err).startswith(self.where):
                raise RowError(f"{self.where}{err}") from None
            raise

    def _reference(self, row: Mapping[str, Any], index: int, name: str) -> str | None:
        return reference_for(row.get(name), None, index, name)

    def _feedback_collection(self, row, index):
        w = self.where
        return [EvaluatorExample(
            "absolute", _feedback(row, index, "orig_feedback", w), _score(row.get("orig_score"), index, "orig_score", w),
            instruction=_text(row, index, "orig_instruction", w), response=_text(row, index, "orig_response", w),
            rubric=_collection_rubric(row, index, w, required=True),
            reference_answer=self._reference(row, index, "orig_reference_answer"), source=self.source, row=index)]

    def _preference_collection(self, row, index):
        w = self.where
        return [EvaluatorExample(
            "relative", _feedback(row, index, "orig_feedback", w),
            _winner(row.get("orig_preference"), index, "orig_preference", w),
            instruction=_text(row, index, "orig_instruction", w), response_a=_text(row, index, "orig_response_A", w),
            response_b=_text(row, index, "orig_response_B", w), rubric=_collection_rubric(row, index, w, required=False),
            reference_answer=self._reference(row, index, "orig_reference_answer"), source=self.source, row=index)]

    def _row_rubric(self, row, index) -> Rubric:
        return self.rubrics.resolve(row.get("rubric"), index)

    def _absolute(self, row, index):
        w = self.where
        instruction = require_prompt(row.get(self.instruction), index, self.instruction)
        response = require_response(row.get(self.response), index, self.response)
        return [EvaluatorExample(
            "absolute", _feedback(row, index, "feedback", w), _score(row.get("score"), index, "score", w),
            instruction=instruction, response=response, rubric=self._row_rubric(row, index),
            reference_answer=self._reference(row, index, "reference_answer"), source=self.source, row=index)]

    def _relative(self, row, index):
        w = self.where
        instruction = require_prompt(row.get(self.instruction), index, self.instruction)
        a = require_response(row.get(self.response_a), index, self.response_a)
        b = require_response(row.get(self.response_b), index, self.response_b)
        winner = _winner(row.get("winner"), index, "winner", w)
        common = dict(instruction=instruction, rubric=self._row_rubric(row, index),
                      reference_answer=self._reference(row, index, "reference_answer"), source=self.source, row=index)
        out = [EvaluatorExample("relative", _feedback(row, index, "feedback", w), winner, response_a=a, response_b=b,
                                **common)]
        swapped = row.get("feedback_swapped")
        if self.swapped_feedback and isinstance(swapped, str) and swapped.strip():
            if row.get("consistent") is False:
                # the two orders disagreed: the swapped feedback argues for the other side
                self.report.swapped_skipped_inconsistent += 1
            else:
                flipped = "B" if winner == "A" else "A"
                out.append(EvaluatorExample("relative", _feedback(row, index, "feedback_swapped", w), flipped,
                                            response_a=b, response_b=a, swapped=True, **common))
                self.report.swapped_added += 1
        return out

    def _rendered(self, row, index):
        from ..metaeval.data import split_absolute_prompt

        w = self.where
        prompt = _text(row, index, self.instruction, w)
        try:
            split_absolute_prompt(prompt)
        except ValueError as err:
            raise RowError(f"{w}row {index}: field '{self.instruction}' is not a rendered absolute prompt: {err}") from None
        if row.get("output") is not None:
            output = _text(row, index, "output", w)
            parsed = parse_absolute_output(output)
            if parsed.result is None:
                raise RowError(f"{w}row {index}: field 'output' has no final '[RESULT] N' (N from 1 to 5)")
            if not parsed.feedback:
                raise RowError(f"{w}row {index}: field 'output' has no feedback before its result")
            feedback, score = parsed.feedback, int(parsed.result)
        else:
            feedback, score = _feedback(row, index, "feedback", w), _score(row.get("score"), index, "score", w)
        return [EvaluatorExample("rendered", feedback, score, rendered=prompt, source=self.source, row=index)]


def read_examples(rows: Iterable[Mapping[str, Any]], schema: str = "auto", rubric: Any = None, *,
                  columns: Sequence[str] | None = None, on_bad_row: str = "skip", swapped_feedback: bool = True,
                  source: str = "", report: DataReport | None = None) -> tuple[list[EvaluatorExample], DataReport]:
    """Rows in one of the :data:`SCHEMAS` -> evaluator examples, and what was skipped.

    Args:
        rows: the rows (dicts); ``columns`` names their columns (default: the first row's keys).
        schema: one of :data:`SCHEMAS`, or ``auto`` (detected from the columns).
        rubric: the default rubric of graded / compared rows without a ``rubric`` cell (a preset
            name, a dict, a YAML file or rubric text).
        on_bad_row: ``skip`` (count, log, go on) or ``raise`` (a RowError naming source, row, field).
        swapped_feedback: also train the swapped order of compared rows that carry ``feedback_swapped``.
        source: a name for messages (the file or hub id).

    Example:
        >>> rows = [{"instruction": "2+2?", "response_a": "4", "response_b": "5", "rubric": "Is it correct?",
        ...          "feedback": "Response A is right.", "winner": "A",
        ...          "feedback_swapped": "Response B is right.", "consistent": True}]
        >>> [(e.response_a, e.result) for e in read_examples(rows)[0]]
        [('4', 'A'), ('5', 'B')]
    """
    if on_bad_row not in BAD_ROW_POLICIES:
        raise ValueError(f"unknown on_bad_row {on_bad_row!r}; choose one of {', '.join(BAD_ROW_POLICIES)}")
    report = report if report is not None else DataReport()
    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        raise ValueError(f"{source or 'the data'} has no rows")
    columns = list(columns) if columns is not None else list(first)
    if schema == "auto":
        try:
            schema = detect_schema(columns)
        except ValueError as err:
            raise ValueError(f"{source}: {err}" if source else str(err)) from None
    elif schema not in SCHEMAS:
        raise ValueError(f"unknown schema {schema!r}; choose one of auto, {', '.join(SCHEMAS)}")
    report.schemas[source or "data"] = schema
    reader = _Reader(schema, columns, rubric, swapped_feedback, source, report)
    examples: list[EvaluatorExample] = []

    def take(row: Mapping[str, Any], index: int) -> None:
        report.rows += 1
        try:
            made = reader(row, index)
        except RowError as err:
            if on_bad_row == "raise":
                raise
            report.skip(err)
            return
        for example in made:
            report.examples[example.kind] += 1
        examples.extend(made)

    take(first, 0)
    for index, row in enumerate(iterator, start=1):
        take(row, index)
    if report.skipped:
        logger.warning("%s: skipped %d of %d rows (%s); first: %s", source or "data", sum(report.skipped.values()),
                       report.rows, "; ".join(f"{n} x {r}" for r, n in report.skipped.most_common(5)),
                       report.problems[0] if report.problems else "")
    return examples, report


def load_examples(name: str, config: str | None = None, split: str = "train", schema: str = "auto",
                  rubric: Any = None, *, limit: int | None = None, on_bad_row: str = "skip",
                  swapped_feedback: bool = True, report: DataReport | None = None
                  ) -> tuple[list[EvaluatorExample], DataReport]:
    """:func:`read_examples` over a local file (JSONL, JSON, CSV, Parquet) or a hub dataset id
    (``prometheus-eval/Feedback-Collection``); ``limit`` keeps the first rows.

    Example:
        >>> examples, report = load_examples("prometheus-eval/Feedback-Collection", limit=1000)  # doctest: +SKIP
    """
    from ..io import is_data_file, load_train_dataset, read_rows

    if is_data_file(name):
        # read_rows reads a JSONL whose cells mix types (text and chat messages) row by row
        rows = read_rows(name, limit)
        columns: list[str] = sorted({key for row in rows for key in row})
        return read_examples(rows, schema, rubric, columns=columns, on_bad_row=on_bad_row,
                             swapped_feedback=swapped_feedback, source=name, report=report)
    dataset = load_train_dataset(name, config, split, required=())
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return read_examples(iter(dataset), schema, rubric, columns=dataset.column_names, on_bad_row=on_bad_row,
                         swapped_feedback=swapped_feedback, source=name, report=report)
