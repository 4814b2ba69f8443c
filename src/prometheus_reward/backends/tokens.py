"""Tokenizer rules every backend shares: the BOS rule, truncation, context sizes, vocabulary
pieces as text, and where the answer token sits after a lead such as ``"[RESULT] "``.

The local backend reads answer probabilities from token ids and the HTTP backend from the text
of the top logprobs, but both must agree on these rules, or the same evaluator would be read at
different positions depending on how it is served.

Example:
    >>> normalize_piece("\\u25814"), normalize_piece("\\u0120B"), normalize_piece(" 3 ")
    ('4', 'B', '3')
    >>> default_context_length("prometheus-2")
    4096
"""

from __future__ import annotations

from typing import Any, Collection, Literal, Sequence

from ..templates import format_chat

# Prometheus 1 (Llama-2 13B) and Prometheus 2 (Mistral 7B) were trained with 4096-token contexts.
FAMILY_CONTEXT = {"prometheus-1": 4096, "prometheus-2": 4096}
FALLBACK_CONTEXT = 4096
# Tokenised in front of continuations so that they tokenise as mid-text (no leading-space
# special case at the start of a sequence).
PROBE = "Answer:\n"

AnswerTokens = tuple[list[int], list[int], list[list[int]]]


def normalize_piece(piece: str) -> str:
    """A vocabulary piece as plain text: sentencepiece's ``▁`` and byte-level BPE's ``Ġ`` become
    spaces, then surrounding whitespace goes, so ``"▁4"``, ``"Ġ4"`` and ``" 4"`` all read ``"4"``.

    >>> normalize_piece("\\u2581A")
    'A'
    """
    return piece.replace("\u2581", " ").replace("\u0120", " ").strip()


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a chat-formatted prompt: BOS is added unless the chat template already wrote
    it (a template that writes ``<bos>`` and a tokenizer that adds one would give two).

    >>> from transformers import AutoTokenizer                           # doctest: +SKIP
    >>> encode_prompt(AutoTokenizer.from_pretrained("gpt2"), "Hi")[:1]     # doctest: +SKIP
    [17250]
    """
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (bos and text.startswith(bos))
    return tokenizer(text, add_special_tokens=add_special)["input_ids"]


def truncate_text(tokenizer: Any, text: str, max_tokens: int, keep: Literal["head", "tail"] = "head") -> str:
    """``text`` cut to at most ``max_tokens`` tokens (no special tokens added), keeping its head or
    tail; unchanged when it fits.

    >>> from transformers import AutoTokenizer                                    # doctest: +SKIP
    >>> truncate_text(AutoTokenizer.from_pretrained("gpt2"), "one two three", 2)  # doctest: +SKIP
    'one two'
    """
    max_tokens = max(max_tokens, 0)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return text
    kept = ids[:max_tokens] if keep == "head" else ids[len(ids) - max_tokens :]
    return tokenizer.decode(kept, skip_special_tokens=False)


def default_context_length(family: str, config: Any = None, tokenizer: Any = None) -> int:
    """The evaluator's context window: the Prometheus families' trained context, else the model
    config's position limit, else the tokenizer's ``model_max_length`` (when it is a real number,
    not the "unlimited" sentinel), else 4096.

    >>> default_context_length("raw")
    4096
    """
    if family in FAMILY_CONTEXT:
        return FAMILY_CONTEXT[family]
    if config is not None:
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(config, attr, None)
            if isinstance(value, int) and value > 0:
                return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 10**7 else FALLBACK_CONTEXT


def choice_sequences(tokenizer: Any, choices: Sequence[str], lead: str, strict: bool = True
                     ) -> tuple[list[list[int]], int]:
    """The token ids of ``lead + choice`` for each choice (tokenised mid-text) and the length of
    their common token prefix: the lead as the evaluator sees it. For sentencepiece vocabularies
    "[RESULT] " then ends in a lone space token; for byte-level BPE the space belongs to the
    choice (" 4" is one token), so the lead stops before it.

    With ``strict``, raises ValueError when the choices are not distinguishable after the lead."""
    probe = tokenizer(PROBE, add_special_tokens=False)["input_ids"]
    sequences = []
    for choice in choices:
        ids = tokenizer(PROBE + lead + choice, add_special_tokens=False)["input_ids"]
        sequences.append(ids[len(probe) :] if ids[: len(probe)] == probe else ids)
    common = 0
    while all(len(s) > common for s in sequences) and len({s[common] for s in sequences}) == 1:
        common += 1
    if strict and not all(len(s) > common for s in sequences):
        raise ValueError(f"choices {tuple(choices)} are not distinguishable after {lead!r} for this tokenizer")
    return sequences, common


def lead_text(tokenizer: Any, choices: Sequence[str], lead: str = "[RESULT] ") -> str:
    """The part of ``lead`` that ends on a token boundary before every choice (the text a server
    must be sent so that its next token is the answer). Without a tokenizer, or when decoding does
    not round-trip to a prefix of ``lead``, it is ``lead`` itself.

    >>> lead_text(None, "12345")
    '[RESULT] '
    """
    if tokenizer is None:
        return lead
    sequences, common = choice_sequences(tokenizer, choices, lead, strict=False)
    text = tokenizer.decode(sequences[0][:common], skip_special_tokens=False)
    return text if lead.startswith(text) else lead


def plan_answer_tokens(tokenizer: Any, choices: Sequence[str], lead: str = "[RESULT] ") -> AnswerTokens:
    """How to read ``choices`` after ``lead`` with this tokenizer.

    Returns (lead token ids, all answer-token ids, per choice the positions of its variants in
    that list). The lead is the common token prefix of ``lead + choice`` over all choices (see
    :func:`choice_sequences`); the variants of a choice are every vocabulary token that reads as
    the choice ("4", "\\u25814", "\\u01204"), so the probability does not depend on how the model
    spaces its answer.

    >>> from transformers import AutoTokenizer                       # doctest: +SKIP
    >>> lead, ids, groups = plan_answer_tokens(AutoTokenizer.from_pretrained("gpt2"), "12345")  # doctest: +SKIP
    """
    sequences, common = choice_sequences(tokenizer, choices, lead)
    lead_ids = sequences[0][:common]
    first = [s[common] for s in sequences]
    if len(set(first)) != len(first):
        raise ValueError(f"choices {tuple(choices)} do not start with distinct tokens for this tokenizer")
    variants: dict[str, set[int]] = {c: {tid} for c, tid in zip(choices, first)}
    for piece, tid in tokenizer.get_vocab().items():
        normalized = normalize_piece(piece)
        if normalized in variants:
            variants[normalized].add(tid)
    all_ids: list[int] = []
    groups: list[list[int]] = []
    for choice in choices:
        ids = sorted(variants[choice])
        groups.append(list(range(len(all_ids), len(all_ids) + len(ids))))
        all_ids.extend(ids)
    return lead_ids, all_ids, groups


def cut_at_eos(ids: Sequence[int], eos: Collection[int]) -> list[int]:
    """The ids before the first end-of-sequence token (what follows is padding or not text).

    >>> cut_at_eos([5, 6, 1, 7], {1})
    [5, 6]
    """
    ids = list(ids)
    return ids[:next((i for i, t in enumerate(ids) if t in eos), len(ids))]


def answer_step(tokenizer: Any, ids: Sequence[int], offset: int, answer_ids: Collection[int]) -> int | None:
    """The generation step that wrote the answer: the last answer token (not a special one) that
    starts at or before character ``offset`` of the decoded text (where the parser located the
    verdict's value). Every local engine reads the answer distribution at this step."""
    special = set(tokenizer.all_special_ids)
    for t in range(len(ids) - 1, -1, -1):
        if ids[t] not in answer_ids or ids[t] in special:
            continue
        if len(tokenizer.decode(list(ids[:t]), skip_special_tokens=True)) <= offset:
            return t
    return None


class LocalTokenizerText:
    """The text side of a backend that holds its evaluator's tokenizer (``self.tokenizer``,
    ``self.family``): chat formatting, the BOS rule, token counts, truncation and the answer-token
    plans, one copy for every local engine."""

    tokenizer: Any
    family: str
    _plans: dict

    def format(self, system: str, user: str) -> str:
        return format_chat(system, user, self.family, self.tokenizer)  # type: ignore[arg-type]

    def encode(self, text: str) -> list[int]:
        """Token ids of a formatted prompt: BOS is added unless the chat template wrote it."""
        return encode_prompt(self.tokenizer, text)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(self.encode(t)) for t in texts]

    def truncate(self, text: str, max_tokens: int, keep: Literal["head", "tail"] = "head") -> str:
        return truncate_text(self.tokenizer, text, max_tokens, keep)

    def _choice_plan(self, choices: tuple[str, ...], lead: str) -> AnswerTokens:
        key = (choices, lead)
        if key not in self._plans:
            self._plans[key] = self._check_plan(plan_answer_tokens(self.tokenizer, choices, lead), choices)
        return self._plans[key]

    def _check_plan(self, plan: AnswerTokens, choices: tuple[str, ...]) -> AnswerTokens:
        """An engine's limits on a plan (none here)."""
        return plan
