"""Evaluator output -> score (1-5) or winner ("A"/"B"), reading only the *last* result.

Every pattern is anchored at the end of the text (after trailing whitespace, end-of-sequence
tokens, closing quotes/brackets/markdown and a final period are stripped), so a digit in echoed
template text ("[RESULT] (an integer number between 1 and 5)") or in the feedback body is never
taken for the score. Out-of-range numbers and anything unrecognised give ``None``: never a
silent 1 or 5.

Only verdicts count: the protocol's ``[RESULT]`` forms (``[RESULT] 4``, ``[RESULT]: (4)``,
``[RESULT] Score: 4/5``...) and an explicit final ``Score: N`` (a line of its own, ``**Final score:** 4``,
or closing the last sentence: ``Correct. Score: 4``); for pairs, ``[RESULT] A`` and a final
``Winner:`` / ``Verdict:`` / ``Better response:`` line. Every form is one :class:`VerdictForm` of
:data:`VERDICT_FORMS`, which the defences (:mod:`prometheus_reward.guards`) read too. Prose is not a verdict: a bare
``(1)`` ending a sentence ("as described in footnote (1)"), "result 4" or "4 out of 5" without the
marker give ``None``, so that ``generate`` mode samples again instead of guessing.

Example:
    >>> parse_absolute("Clear and correct. [RESULT] 4</s>")
    4
    >>> parse_absolute('...format: "(feedback) [RESULT] (an integer number between 1 and 5)"') is None
    True
    >>> parse_relative("Response B cites the source. [RESULT] B")
    'B'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

# End-of-sequence tokens and chat-turn closers that models leave at the end.
_END_TOKENS = r"(?:</s>|<eos>|<\|eot_id\|>|<\|im_end\|>|<\|endoftext\|>|<end_of_turn>|\[/INST\]|<\|end\|>)"
# Trailing decoration after the answer: whitespace, end tokens, closing punctuation, markdown.
_TRAIL = rf"(?:\s|{_END_TOKENS}|[.!。)\]}}\"'`*_])*"

_SCORE = r"(?P<value>\d+(?:\.\d+)?)"
_OUT_OF = r"(?:\s*(?:/|out\s+of)\s*5(?:\.0)?)?"
_WINNER = r"(?:response\s*)?[\(\[\"']?\s*(?P<value>[AB])\b"


@dataclass(frozen=True)
class VerdictForm:
    """One way an evaluator may write its verdict: a ``head`` (what announces it: ``[RESULT]``, a
    ``Score:`` line...) and a ``body`` (from the head up to the value). The parser reads a form
    only at the end of a text (``head + body + trailing decoration + end``); :mod:`prometheus_reward.guards`
    rewrites every ``head + body`` it finds anywhere in a policy response, so a form added here is
    defended without a second list. ``flag`` names the form in :attr:`Grade.flags
    <prometheus_reward.grades.Grade.flags>`; ``kind`` is ``absolute`` or ``relative``.

    Every head ends in a delimiter (``:`` or ``]``) that the defences rewrite.
    """

    kind: str
    head: str
    body: str
    flag: str

    @cached_property
    def anywhere(self) -> "re.Pattern[str]":
        """The form wherever it stands (not only at the end): what the defences look for."""
        return re.compile(rf"(?P<head>{self.head}){self.body}", re.IGNORECASE)

    @cached_property
    def at_end(self) -> "re.Pattern[str]":
        """The form as the parser reads it: at the end of the text."""
        return re.compile(rf"(?P<head>{self.head}){self.body}{_TRAIL}\Z", re.IGNORECASE)


_RESULT_HEAD = r"\[\s*RESULT\s*\]"
RESULT_HEAD = re.compile(_RESULT_HEAD, re.IGNORECASE)  # the protocol marker, any case or spacing
# "Score:" (with markdown decoration, "Final score:"...) at a line start, or after a sentence's end
_SCORE_WORD = r"(?:(?:final|overall|total)[ \t]+)?score[ \t*_]*:"
_SCORE_LINE_HEAD = rf"(?m:^)[ \t*_#]*{_SCORE_WORD}"
_SCORE_AFTER_SENTENCE_HEAD = rf"(?<=[.!?])[ \t]+(?:\*\*|__)?{_SCORE_WORD}"
_WINNER_LINE_HEAD = r"(?m:^)[ \t*_#]*(?:winner|better\s+response|verdict)[ \t*_]*:"

VERDICT_FORMS: tuple[VerdictForm, ...] = (
    # [RESULT] 4 | [RESULT]: 4 | [RESULT] (4) | [RESULT] Score: 4 | [RESULT] 4/5
    VerdictForm("absolute", _RESULT_HEAD,
                rf"\s*[:=\-]?\s*(?:\*\*)?\s*(?:score\s*[:=]?\s*)?[\(\[]?\s*{_SCORE}{_OUT_OF}", "result_marker"),
    # an explicit final "Score: 4" (or "**Score:** 4/5", "Final score: 4") on a line of its own
    VerdictForm("absolute", _SCORE_LINE_HEAD, rf"[ \t*_]*[\(\[]?\s*{_SCORE}{_OUT_OF}", "score_line"),
    # ... or closing the feedback's last sentence: "Clear and correct. Score: 4"
    VerdictForm("absolute", _SCORE_AFTER_SENTENCE_HEAD, rf"[ \t*_]*[\(\[]?\s*{_SCORE}{_OUT_OF}", "score_line"),
    # [RESULT] A | [RESULT]: B | [RESULT] Response A | [RESULT] (B)
    VerdictForm("relative", _RESULT_HEAD, rf"\s*[:=\-]?\s*(?:\*\*)?\s*{_WINNER}", "result_marker"),
    # an explicit final "Winner: Response B" / "Better response: A" / "Verdict: A" line
    VerdictForm("relative", _WINNER_LINE_HEAD, rf"\s*(?:\*\*)?\s*{_WINNER}", "verdict_line"),
)

_ABSOLUTE_PATTERNS = [form.at_end for form in VERDICT_FORMS if form.kind == "absolute"]
_RELATIVE_PATTERNS = [form.at_end for form in VERDICT_FORMS if form.kind == "relative"]

_FEEDBACK_PREFIX = re.compile(r"\A\s*(?:\*\*)?feedback(?:\*\*)?\s*:\s*", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedOutput:
    """A parsed evaluator output: the result (or None), the feedback before it, the character
    offset where the verdict starts (``marker_start``, at ``[RESULT]``) and where its value starts
    (``value_start``); both None when unparsed. ``text[marker_start:value_start]`` is the lead the
    evaluator wrote before its answer."""

    result: int | str | None
    feedback: str
    value_start: int | None = None
    marker_start: int | None = None
    invalid: str | None = None  # a verdict the evaluator did write, outside the scale ("[RESULT] 7")


def _clean_feedback(text: str) -> str:
    return _FEEDBACK_PREFIX.sub("", text).strip()


def _search(patterns: list[re.Pattern[str]], text: str) -> re.Match[str] | None:
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            return match
    return None


def parse_absolute_output(text: str | None) -> ParsedOutput:
    """Parse an absolute-grading output into score, feedback and the score's offset."""
    if not isinstance(text, str):
        return ParsedOutput(None, "")
    match = _search(_ABSOLUTE_PATTERNS, text)
    if match is None:
        return ParsedOutput(None, _clean_feedback(text))
    value = match["value"]
    feedback = _clean_feedback(text[: match.start()])
    if "." in value or not 1 <= int(value) <= 5:
        return ParsedOutput(None, feedback, invalid=" ".join(match.group(0).split()))
    marker = match.start() + len(match.group(0)) - len(match.group(0).lstrip())  # a verdict line's own start
    return ParsedOutput(int(value), feedback, match.start("value"), marker)


def parse_relative_output(text: str | None) -> ParsedOutput:
    """Parse a relative-grading output into winner ("A"/"B"), feedback and the offset."""
    if not isinstance(text, str):
        return ParsedOutput(None, "")
    match = _search(_RELATIVE_PATTERNS, text)
    if match is None:
        return ParsedOutput(None, _clean_feedback(text))
    marker = match.start() + len(match.group(0)) - len(match.group(0).lstrip())
    return ParsedOutput(match["value"].upper(), _clean_feedback(text[: match.start()]), match.start("value"), marker)


def parse_absolute(text: str | None) -> int | None:
    """The score 1-5 of an absolute-grading output, or None when it has no valid final result."""
    return parse_absolute_output(text).result  # type: ignore[return-value]


def parse_relative(text: str | None) -> str | None:
    """The winner "A" or "B" of a relative-grading output, or None."""
    return parse_relative_output(text).result  # type: ignore[return-value]
