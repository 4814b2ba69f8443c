"""Evaluator output -> score (1-5) or winner ("A"/"B"), reading only the *last* result.

Every pattern is anchored at the end of the text (after trailing whitespace, end-of-sequence
tokens, closing quotes/brackets/markdown and a final period are stripped), so a digit in echoed
template text ("[RESULT] (an integer number between 1 and 5)") or in the feedback body is never
taken for the score. Out-of-range numbers and anything unrecognised give ``None``: never a
silent 1 or 5.

Only verdicts count: the protocol's ``[RESULT]`` forms (``[RESULT] 4``, ``[RESULT]: (4)``,
``[RESULT] Score: 4/5``...) and an explicit final ``Score: N`` line. Prose is not a verdict: a bare
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

# End-of-sequence tokens and chat-turn closers that models leave at the end.
_END_TOKENS = r"(?:</s>|<eos>|<\|eot_id\|>|<\|im_end\|>|<\|endoftext\|>|<end_of_turn>|\[/INST\]|<\|end\|>)"
# Trailing decoration after the answer: whitespace, end tokens, closing punctuation, markdown.
_TRAIL = rf"(?:\s|{_END_TOKENS}|[.!。)\]}}\"'`*_])*"

_SCORE = r"(?P<value>\d+(?:\.\d+)?)"
_OUT_OF = r"(?:\s*(?:/|out\s+of)\s*5(?:\.0)?)?"

_ABSOLUTE_PATTERNS = [
    # [RESULT] 4 | [RESULT]: 4 | [RESULT] (4) | [RESULT] Score: 4 | [RESULT] 4/5
    re.compile(
        rf"\[\s*RESULT\s*\]\s*[:=\-]?\s*(?:\*\*)?\s*(?:score\s*[:=]?\s*)?[\(\[]?\s*{_SCORE}{_OUT_OF}{_TRAIL}\Z",
        re.IGNORECASE,
    ),
    # an explicit final "Score: 4" (or "**Score:** 4/5") on a line of its own
    re.compile(
        rf"(?:^|\n)[ \t*_#]*score[ \t*_]*:[ \t*_]*[\(\[]?\s*{_SCORE}{_OUT_OF}{_TRAIL}\Z",
        re.IGNORECASE,
    ),
]

_RELATIVE_PATTERNS = [
    # [RESULT] A | [RESULT]: B | [RESULT] Response A | [RESULT] (B)
    re.compile(
        rf"\[\s*RESULT\s*\]\s*[:=\-]?\s*(?:\*\*)?\s*(?:response\s*)?[\(\[\"']?\s*(?P<value>[AB])\b{_TRAIL}\Z",
        re.IGNORECASE,
    ),
    # an explicit final "Winner: Response B" / "Better response: A" / "Verdict: A" line
    re.compile(
        rf"(?:^|\n)[ \t*_#]*(?:winner|better\s+response|verdict)[ \t*_]*:\s*(?:\*\*)?\s*(?:response\s*)?[\(\[\"']?\s*(?P<value>[AB])\b{_TRAIL}\Z",
        re.IGNORECASE,
    ),
]

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
