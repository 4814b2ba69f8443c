"""Reading answer distributions from the logprobs an OpenAI-compatible server returns: the
positions of a generation (either logprobs shape) and the probability of each answer choice at
one of them, in one of two modes (:data:`LOGPROB_MODES`):

- ``exact``: the server returns the logprobs of the token ids asked for at every position (vLLM's
  ``logprob_token_ids``, with ``return_tokens_as_token_ids`` so tokens come back as
  ``"token_id:N"``): every spelling of each answer token is read over the full vocabulary, as the
  local backends read it, and the mass is the full-vocabulary probability on the answers.
- ``top-k``: the top logprobs only. Answer tokens are matched after normalising (spaces, ``▁``,
  ``Ġ`` stripped), and their summed probability is the distribution's ``mass`` (over the returned
  top logprobs only: spellings outside them are missed).

Example:
    >>> d = distribution_from_top({"▁4": math.log(0.75), "5": math.log(0.25)}, "12345")
    >>> [round(p, 2) for p in d.probs]
    [0.0, 0.0, 0.0, 0.75, 0.25]
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Collection, Sequence

import httpx

from .base import AnswerDistribution, Locator
from .tokens import AnswerTokens, normalize_piece, plan_answer_tokens

logger = logging.getLogger(__name__)

LOGPROB_MODES = ("exact", "top-k")
# what vLLM writes for a token when ``return_tokens_as_token_ids`` is on
TOKEN_ID_PREFIX = "token_id:"
# vLLM returns the logprobs of at most this many requested ids per position (MAX_LOGPROB_TOKEN_IDS)
MAX_EXACT_IDS = 128


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


def top_answer(text: str, choice: dict[str, Any], choices: Sequence[str], top_logprobs: int = 20) -> AnswerDistribution:
    """The distribution read after a lead from the top logprobs of a reply (``top-k`` mode): the
    first position, or the next one when the model first writes a bare space. A server that sent
    no logprobs: its greedy answer, parsed, as a one-hot distribution with no mass (the server
    said nothing about the other choices).

    >>> top_answer("5", {"text": "5"}, "12345").probs, top_answer("5", {"text": "5"}, "12345").mass
    ([0.0, 0.0, 0.0, 0.0, 1.0], None)
    """
    positions = extract_positions(choice)
    if positions:
        for position in positions[:2]:
            dist = distribution_from_top(position.top, choices)
            if dist is not None:
                return dist
            if normalize_token(position.token):
                break
        return AnswerDistribution(None, 0.0, f"no answer token among the server's top {top_logprobs} logprobs")
    first = text.strip().split()[0] if text.strip() else ""
    first = first.strip(".:)([]\"'*")
    if first in choices:
        return AnswerDistribution.from_masses([1.0 if c == first else 0.0 for c in choices], measured=False)
    return AnswerDistribution.failed(f"the server returned no logprobs and its answer {text.strip()[:20]!r} is not a choice",
                                     transport=True)


def top_answer_at(text: str, choice: dict[str, Any], choices: Sequence[str], locate: Locator) -> AnswerDistribution | None:
    """The distribution at the result of a generation from its top logprobs (``top-k`` mode): the
    answer token covering ``locate(text)``; None when there is none or no logprobs."""
    offset = locate(text)
    positions = extract_positions(choice)
    if offset is None or not positions:
        return None
    for position in reversed(positions):
        end = position.start + len(position.token)
        if position.start <= offset < max(end, position.start + 1) and normalize_token(position.token) in choices:
            return distribution_from_top(position.top, choices)
    return None


# -- exact mode: logprobs of requested token ids ------------------------------------------------------
def exact_fields(answer_ids: Sequence[int], api: str) -> dict[str, Any]:
    """The request fields that ask a vLLM server for the logprobs of ``answer_ids`` at every
    generated position, tokens named by id (both APIs need ``logprobs`` on; vLLM then returns the
    requested ids, in raw log-softmax, plus the sampled token).

    >>> exact_fields([7, 9], "completions")
    {'logprobs': 1, 'logprob_token_ids': [7, 9], 'return_tokens_as_token_ids': True}
    """
    return {"logprobs": True if api == "chat" else 1, "logprob_token_ids": [int(t) for t in answer_ids],
            "return_tokens_as_token_ids": True}


def token_id_of(token: str | None) -> int | None:
    """The id in a ``"token_id:N"`` token name, else None.

    >>> token_id_of("token_id:236770"), token_id_of("4")
    (236770, None)
    """
    if not isinstance(token, str) or not token.startswith(TOKEN_ID_PREFIX):
        return None
    try:
        return int(token[len(TOKEN_ID_PREFIX):])
    except ValueError:
        return None


def exact_steps(choice: dict[str, Any]) -> tuple[list[int], list[dict[int, float]]] | None:
    """(generated token ids, per position {token id: logprob}) of a response whose tokens are
    named by id; None when its logprobs are missing or not by id (a server that ignored
    ``return_tokens_as_token_ids``).

    >>> exact_steps({"logprobs": {"tokens": ["token_id:5"], "token_logprobs": [-0.1],
    ...                           "top_logprobs": [{"token_id:5": -0.1, "token_id:7": -3.0}]}})
    ([5], [{5: -0.1, 7: -3.0}])
    """
    positions = extract_positions(choice)
    if not positions:
        return None
    ids: list[int] = []
    steps: list[dict[int, float]] = []
    for position in positions:
        token = token_id_of(position.token)
        step = {token_id_of(t): lp for t, lp in position.top.items()}
        if token is None or None in step:
            return None
        ids.append(token)
        steps.append(step)  # type: ignore[arg-type]
    return ids, steps


def distribution_from_ids(step: dict[int, float] | None, all_ids: Sequence[int],
                          groups: Sequence[Sequence[int]]) -> AnswerDistribution:
    """The answer distribution at one position from ``{token id: logprob}`` over the full
    vocabulary: each choice's mass is the sum of its spellings (``groups`` index ``all_ids``);
    their total is the mass. A requested id missing from the step is an error, never a zero.

    >>> d = distribution_from_ids({7: math.log(0.2), 8: math.log(0.1), 9: math.log(0.1)}, [7, 8, 9], [[0, 1], [2]])
    >>> [round(p, 2) for p in d.probs], round(d.mass, 2)
    ([0.75, 0.25], 0.4)
    """
    if not step:
        return AnswerDistribution.failed("the server returned no logprobs at the answer position", transport=True)
    missing = [tid for tid in all_ids if step.get(tid) is None]
    if missing:
        return AnswerDistribution.failed(f"the server returned no logprobs for answer token id(s) {missing[:5]}", transport=True)
    # vLLM sends -inf as -9999.0 (JSON has no infinity): exp() of either is 0
    weights = [math.exp(step[tid]) if step[tid] > -math.inf else 0.0 for tid in all_ids]
    return AnswerDistribution.from_masses([sum(weights[i] for i in group) for group in groups])


def exact_answer_at(ids: Sequence[int], steps: Sequence[dict[int, float]], all_ids: Sequence[int],
                    groups: Sequence[Sequence[int]], offset: int | None, decode: Any,
                    skip: Collection[int] = ()) -> AnswerDistribution | None:
    """The distribution at the last answer token of a generation that starts at or before
    character ``offset`` of its text (``decode(ids[:t])`` gives the text before token t), as the
    local backends read it; None when there is no such token. ``skip``: ids never read (specials).

    >>> decode = lambda ids: "".join({1: "ok ", 5: "4"}[i] for i in ids)
    >>> exact_answer_at([1, 5], [{1: 0.0}, {5: math.log(0.5), 6: math.log(0.5)}], [5, 6], [[0], [1]], 3, decode).probs
    [0.5, 0.5]
    """
    if offset is None:
        return None
    answer_ids = set(all_ids)
    for t in range(min(len(ids), len(steps)) - 1, -1, -1):
        if ids[t] not in answer_ids or ids[t] in skip:
            continue
        if len(decode(list(ids[:t]))) <= offset:
            return distribution_from_ids(steps[t], all_ids, groups)
    return None


def shows_exact(response: Any, answer_ids: Sequence[int]) -> bool:
    """Whether a probe response carries, at its first position, the logprob of every requested id
    (the server honours ``logprob_token_ids`` and ``return_tokens_as_token_ids``).

    >>> shows_exact({"choices": [{"logprobs": {"tokens": ["token_id:1"], "top_logprobs": [{"token_id:1": -1.0}]}}]}, [1])
    True
    >>> shows_exact({"choices": [{"logprobs": {"tokens": ["1"], "top_logprobs": [{"1": -1.0}]}}]}, [1])
    False
    """
    choices = response.get("choices") if isinstance(response, dict) else None
    if not choices or not isinstance(choices[0], dict):
        return False
    read = exact_steps(choices[0])
    return bool(read and read[1]) and all(read[1][0].get(t) is not None for t in answer_ids)  # type: ignore[index]


def exact_answer_in(text: str, choice: dict[str, Any], plan: AnswerTokens, locate: Locator,
                    tokenizer: Any) -> AnswerDistribution | None:
    """The exact distribution at the result of one generated ``choice`` (tokens named by id) whose
    text is ``text``; None when it cannot be located (see :func:`exact_answer_at`)."""
    read = exact_steps(choice)
    if read is None:
        return None
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
    return exact_answer_at(read[0], read[1], plan[1], plan[2], locate(text), decode,
                           skip=set(tokenizer.all_special_ids))


class ExactReads:
    """Which servers read score distributions exactly (probed once per URL) and, per choice set,
    the token ids to ask for (every spelling of each choice, from the evaluator's tokenizer).

    Example:
        >>> reads = ExactReads(None)
        >>> reads.unknown(["http://a"]), reads.mode(["http://a"])
        (['http://a'], None)
    """

    def __init__(self, tokenizer: Any, top_logprobs: int = 20) -> None:
        self.tokenizer = tokenizer
        self.top_logprobs = top_logprobs
        self.modes: dict[str, str] = {}  # URL -> "exact" | "top-k"
        self._plans: dict[tuple[tuple[str, ...], str], AnswerTokens | None] = {}

    def unknown(self, urls: Sequence[str]) -> list[str]:
        return [url for url in urls if url not in self.modes]

    def mode(self, urls: Sequence[str]) -> str | None:
        """``exact`` when every URL is, ``top-k`` when any is, None while one is unknown."""
        modes = {self.modes.get(url) for url in urls}
        return "top-k" if "top-k" in modes else None if None in modes else "exact"

    def probe_ids(self) -> list[int]:
        return self.tokenizer("Answer: 1 2", add_special_tokens=False)["input_ids"][-2:]

    def plan(self, choices: Sequence[str], lead: str) -> AnswerTokens | None:
        """The answer tokens for ``choices`` after ``lead``; None when they cannot be asked for by
        id (indistinct after the lead, or more spellings than vLLM returns per position)."""
        key = (tuple(choices), lead)
        if key not in self._plans:
            try:
                plan: AnswerTokens | None = plan_answer_tokens(self.tokenizer, choices, lead)
            except ValueError:
                plan = None
            self._plans[key] = plan if plan and len(plan[1]) <= MAX_EXACT_IDS else None
        return self._plans[key]

    async def probe_all(self, client: Callable[[], httpx.AsyncClient], urls: Sequence[str], path: str,
                        payload: dict[str, Any], ids: Sequence[int]) -> None:
        """:meth:`probe` each URL at once (``client`` makes the HTTP client, on the running loop)."""
        http = client()
        await asyncio.gather(*(self.probe(http, url, path, payload, ids) for url in urls))

    async def probe(self, client: httpx.AsyncClient, url: str, path: str, payload: dict[str, Any],
                    ids: Sequence[int]) -> None:
        """One small request asking for ``ids``' logprobs by id: ``exact`` when the reply carries
        them, ``top-k`` when the server answers without them or refuses the fields; left unknown
        (probed again at the next read) when the server cannot be reached or fails otherwise."""
        try:
            response = await client.post(url + path, json=payload)
        except (httpx.TimeoutException, httpx.TransportError):
            return
        if response.status_code == 200:
            try:
                body = response.json()
            except ValueError:
                return
            self.modes[url] = "exact" if shows_exact(body, ids) else "top-k"
        elif response.status_code in (400, 422) and any(
                name in response.text for name in ("logprob_token_ids", "return_tokens_as_token_ids")):
            self.modes[url] = "top-k"
        else:
            return
        logger.info("%s: score distributions are read %s", url, "exactly (logprob_token_ids)"
                    if self.modes[url] == "exact" else f"from the top {self.top_logprobs} logprobs")
