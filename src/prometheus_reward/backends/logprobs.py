"""Reading answer distributions from the logprobs an OpenAI-compatible server returns: the
positions of a generation (either logprobs shape) and the probability of each answer choice at
one of them.

Answer tokens are matched after normalising (spaces, ``▁``, ``Ġ`` stripped), and their summed
probability is the distribution's ``mass`` (over the returned top logprobs only).

Example:
    >>> d = distribution_from_top({"▁4": math.log(0.75), "5": math.log(0.25)}, "12345")
    >>> [round(p, 2) for p in d.probs]
    [0.0, 0.0, 0.0, 0.75, 0.25]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from .base import AnswerDistribution
from .tokens import normalize_piece


def normalize_token(piece: str) -> str:
    """A vocabulary piece as plain text (see :func:`prometheus_reward.backends.tokens.normalize_piece`).

    >>> normalize_token("\u25814"), normalize_token("\u0120B"), normalize_token(" 3 ")
    ('4', 'B', '3')
    """
    return normalize_piece(piece)


def distribution_from_top(top: dict[str, float] | None, choices: Sequence[str]) -> AnswerDistribution | None:
    """The answer distribution at one position from its ``{token: logprob}``: every token that
    normalises to a choice adds to it; the mass is their summed probability (over the returned
    top logprobs only). None when no choice is among them.

    >>> d = distribution_from_top({"4": math.log(0.6), " 5": math.log(0.2), "x": math.log(0.1)}, "12345")
    >>> [round(p, 2) for p in d.probs], round(d.mass, 2)
    ([0.0, 0.0, 0.0, 0.75, 0.25], 0.8)
    """
    if not top:
        return None
    mass = {c: 0.0 for c in choices}
    found = False
    for token, logprob in top.items():
        key = normalize_token(token)
        if key in mass and logprob is not None:
            found = True
            mass[key] += math.exp(logprob) if logprob > -math.inf else 0.0
    if not found:
        return None
    return AnswerDistribution.from_masses([mass[c] for c in choices])


@dataclass
class _Position:
    token: str
    start: int  # character offset of the token in the generated text
    top: dict[str, float]


def extract_positions(choice: dict[str, Any]) -> list[_Position] | None:
    """Per generated token: its text, offset and top alternatives, from either logprobs shape.

    Legacy completions (vLLM, SGLang, TGI): ``{"tokens", "token_logprobs", "top_logprobs":
    [{token: logprob}], "text_offset"}``. Chat-style (chat completions, llama.cpp):
    ``{"content": [{"token", "logprob", "top_logprobs": [{"token", "logprob"}]}]}``.
    None when the server sent no logprobs.
    """
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        return None
    positions: list[_Position] = []
    if isinstance(logprobs.get("content"), list):
        offset = 0
        for entry in logprobs["content"]:
            token = entry.get("token", "")
            top = {t["token"]: t.get("logprob") for t in entry.get("top_logprobs") or [] if "token" in t}
            if token not in top and entry.get("logprob") is not None:
                top[token] = entry["logprob"]
            positions.append(_Position(token, offset, top))
            offset += len(token)
        return positions
    tokens = logprobs.get("tokens")
    if not isinstance(tokens, list):
        return None
    tops = logprobs.get("top_logprobs") or [None] * len(tokens)
    chosen = logprobs.get("token_logprobs") or [None] * len(tokens)
    offsets = logprobs.get("text_offset")
    base = offsets[0] if offsets else 0
    running = 0
    for k, token in enumerate(tokens):
        top = dict(tops[k]) if k < len(tops) and isinstance(tops[k], dict) else {}
        if token not in top and k < len(chosen) and chosen[k] is not None:
            top[token] = chosen[k]
        # vLLM's text_offset counts from the start of the prompt when echo is on, else the
        # completion; subtract the first offset so both read as offsets in the completion.
        start = offsets[k] - base if offsets and k < len(offsets) else running
        positions.append(_Position(token, start, top))
        running += len(token)
    return positions
