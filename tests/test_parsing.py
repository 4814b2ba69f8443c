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
    (" So the score is {n} out of 5.", "n"),
    (" Overall: {n}/5", "n"),
    ("\n\nScore: {n}", "n"),
    (" ({n})", "n"),
    (" [RESULT] {n}<eos>", "n"),
    (" [RESULT] {n}<end_of_turn>\n", "n"),
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
