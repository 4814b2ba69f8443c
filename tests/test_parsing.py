"""Parser: the last result, end-anchored, tolerant of real output forms, never fooled by echoes."""

from __future__ import annotations

import json
import random
import re

import pytest

from prometheus_reward.parsing import parse_absolute, parse_absolute_output, parse_relative, parse_relative_output

# (suffix written after the feedback, expected score)
SUFFIXES = [
    (" [RESULT] {n}", "n"),
    (" [RESULT]{n}", "n"),
    ("\n[RESULT] {n}</s>", "n"),
    (" [RESULT] {n}.", "n"),
    (" [RESULT] ({n})", "n"),
    (" [RESULT]: {n}", "n"),
    (" [RESULT] {n}/5", "n"),
    (" [RESULT] Score: {n}", "n"),
    (" [RESULT] **{n}**  \n", "n"),
    ("\n\nScore: {n}", "n"),
    ("\n**Score:** {n}/5", "n"),
    (" [RESULT] {n}<eos>", "n"),
    (" [RESULT] {n}<end_of_turn>\n", "n"),
]

# Prose that ends in a number is not a verdict: generate mode must sample again, not guess.
NOT_VERDICTS = [
    " So the score is {n} out of 5.",
    " Overall: {n}/5",
    " ({n})",
    " as described in footnote ({n}).",
    " The result {n}",
    " Rating: {n}",
    " I would say {n}/5",
]

ECHOES = [
    ' [RESULT] (an integer number between 1 and 5)',
    '\n3. The output format should look as follows: "(write a feedback for criteria) [RESULT] (an integer number between 1 and 5)"',
    "\nScore 5: The model consistently offers highly relevant and useful responses.",
    " [RESULT]",
    " [RESULT] 6",
    " [RESULT] 0",
    " [RESULT] 4.5",
    " [RESULT] 10/5",
    " [RESULT] 4\nActually, on reflection the response is",
]


def _feedback_corpus(benchmark_data, limit: int | None = None) -> list[tuple[str, int]]:
    """GPT-4 feedbacks with their scores: 200 each from Vicuna and MT-Bench, every one that
    mentions a score among them (tests/fixtures/benchmarks/README.md)."""
    lines = (benchmark_data / "gpt4_feedback_corpus.jsonl").read_text(encoding="utf-8").splitlines()
    corpus = [(row["feedback"], row["score"]) for row in map(json.loads, lines)]
    random.Random(0).shuffle(corpus)
    return corpus[:limit]


def test_feedback_corpus_is_the_hard_kind(benchmark_data):
    """The corpus must keep texts that tempt a parser: digits and score talk in the body."""
    corpus = _feedback_corpus(benchmark_data)
    assert len(corpus) == 400 and {gold for _, gold in corpus} == {1, 2, 3, 4, 5}
    assert sum(bool(re.search(r"\d", f)) for f, _ in corpus) >= 150
    assert sum("score" in f.lower() for f, _ in corpus) >= 100


def test_gpt4_feedback_with_every_result_form(benchmark_data):
    rng = random.Random(1)
    corpus = _feedback_corpus(benchmark_data)
    assert len(corpus) == 400
    for feedback, gold in corpus:
        suffix, _ = rng.choice(SUFFIXES)
        text = feedback + suffix.format(n=gold)
        parsed = parse_absolute_output(text)
        assert parsed.result == gold, text[-120:]
        assert text[parsed.value_start] == str(gold)
        assert parsed.feedback and feedback.strip().startswith(parsed.feedback[:40])


def test_gpt4_feedback_alone_never_invents_a_score(benchmark_data):
    """The feedback bodies mention scores and digits; without a final result the parser must
    return None (or, where the text itself ends by stating the score, that very score)."""
    for feedback, gold in _feedback_corpus(benchmark_data):
        assert parse_absolute(feedback) in (None, gold), feedback[-120:]


@pytest.mark.parametrize("prose", NOT_VERDICTS)
def test_prose_ending_in_a_number_is_not_a_verdict(benchmark_data, prose):
    for feedback, gold in _feedback_corpus(benchmark_data, limit=30):
        text = feedback.rstrip() + prose.format(n=gold)
        assert parse_absolute(text) is None, text[-100:]


def test_verdict_offsets_point_at_the_marker_and_the_value():
    text = "Clear and kind. [RESULT] 4"
    parsed = parse_absolute_output(text)
    assert text[parsed.marker_start:parsed.value_start] == "[RESULT] " and text[parsed.value_start] == "4"
    text = "Clear.\n**Score:** 3/5"
    parsed = parse_absolute_output(text)
    assert text[parsed.marker_start:].startswith("**Score:**") and text[parsed.value_start] == "3"
    rel = parse_relative_output("B is better. [RESULT] B")
    assert rel.marker_start == len("B is better. ")


@pytest.mark.parametrize("echo", ECHOES)
def test_echoed_template_and_out_of_range_give_none(benchmark_data, echo):
    for feedback, _ in _feedback_corpus(benchmark_data, limit=30):
        assert parse_absolute(feedback + echo) is None, (feedback + echo)[-100:]


def test_last_result_wins_and_feedback_is_cleaned():
    text = "Feedback: The first draft said [RESULT] 2 but the final answer is better. [RESULT] 5"
    parsed = parse_absolute_output(text)
    assert parsed.result == 5
    assert parsed.feedback == "The first draft said [RESULT] 2 but the final answer is better."


def test_non_text_inputs():
    assert parse_absolute(None) is None
    assert parse_absolute("") is None
    assert parse_relative(None) is None
    assert parse_absolute("5") is None  # a bare digit is not a result


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Response A is concise. [RESULT] A", "A"),
        ("Both fine. [RESULT] B</s>", "B"),
        ("[RESULT]: (B).", "B"),
        ("[RESULT] Response A", "A"),
        ("Feedback: B is better.\n[RESULT] b", "B"),
        ("Winner: Response B", "B"),
        ("So overall the result: A", None),
        ("Response B is better than Response A", None),
        ('format: "(write a feedback for criteria) [RESULT] (Either "A" or "B")"', None),
        ("[RESULT] (A or B)", None),
        ("[RESULT] A\nBut on second thought", None),
        ("[RESULT] AB", None),
        ("[RESULT] A ... [RESULT] B", "B"),
    ],
)
def test_relative(text, expected):
    assert parse_relative(text) == expected


def test_relative_feedback():
    parsed = parse_relative_output("Feedback: A cites the source; B does not. [RESULT] A")
    assert parsed.result == "A"
    assert parsed.feedback == "A cites the source; B does not."
