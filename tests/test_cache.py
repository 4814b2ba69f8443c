"""The sqlite judgment cache: keys, WAL mode, durability across a killed process, and cached
CachedJudge sending only misses to a real (tiny random) judge."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import pytest

from prometheus_reward import Rubric
from prometheus_reward.cached import (
    CachedJudge,
    JudgmentCache,
    default_cache_path,
    judge_identity,
    judgment_key,
    sampling_identity,
)


class CountingJudge:
    """A real judge that records how many rows reach grade/compare."""

    def __init__(self, judge):
        self._judge = judge
        self.graded: list[int] = []
        self.compared: list[int] = []

    def __getattr__(self, name):
        return getattr(self._judge, name)

    def grade(self, instructions, *args, **kwargs):
        self.graded.append(len(instructions))
        return self._judge.grade(instructions, *args, **kwargs)

    def compare(self, instructions, *args, **kwargs):
        self.compared.append(len(instructions))
        return self._judge.compare(instructions, *args, **kwargs)


def test_key_depends_on_every_ingredient(tiny_judge):
    ident = judge_identity(tiny_judge)
    sampling = sampling_identity(tiny_judge, {})
    inputs = {"instruction": "q", "response": "r", "rubric": "x", "reference_answer": None}
    base = judgment_key(ident, "absolute", "direct", 1, sampling, inputs)
    assert base == judgment_key(dict(ident), "absolute", "direct", 1, dict(sampling), dict(inputs))
    variants = [
        judgment_key({**ident, "revision": "other"}, "absolute", "direct", 1, sampling, inputs),
        judgment_key({**ident, "relative_variant": "prometheus-eval-0.1.20"}, "absolute", "direct", 1, sampling, inputs),
        judgment_key(ident, "relative+swap", "direct", 1, sampling, inputs),
        judgment_key(ident, "absolute", "expected", 1, sampling, inputs),
        judgment_key(ident, "absolute", "direct", 3, sampling, inputs),
        judgment_key(ident, "absolute", "direct", 1, sampling_identity(tiny_judge, {"max_new_tokens": 8}), inputs),
        judgment_key(ident, "absolute", "direct", 1, sampling, {**inputs, "response": "r2"}),
        judgment_key(ident, "absolute", "direct", 1, sampling, {**inputs, "reference_answer": "ref"}),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_wal_mode_env_default_and_roundtrip(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_REWARD_CACHE", str(tmp_path / "env" / "j.sqlite"))
    assert default_cache_path() == tmp_path / "env" / "j.sqlite"
    with JudgmentCache() as cache:
        assert cache.path == str(tmp_path / "env" / "j.sqlite")
        cache.put_many({"k": {"score": 3, "feedback": "ok"}}, kind="absolute")
        assert cache.get_many(["k", "missing"]) == {"k": {"score": 3, "feedback": "ok"}}
        assert cache.stats() == {"hits": 1, "misses": 1, "writes": 1}
        assert "k" in cache and len(cache) == 1
    conn = sqlite3.connect(tmp_path / "env" / "j.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_committed_judgments_survive_kill_9_of_the_writer(tmp_path):
    path = tmp_path / "j.sqlite"
    script = textwrap.dedent(f"""
        import os, signal
        from prometheus_reward.cached import JudgmentCache
        cache = JudgmentCache({str(path)!r})
        cache.put_many({{"a": {{"score": 1}}, "b": {{"score": 2}}}})
        cache._conn.execute("BEGIN IMMEDIATE")
        cache._conn.execute("INSERT INTO judgments VALUES ('torn', '', '{{}}', 0)")
        os.kill(os.getpid(), signal.SIGKILL)  # dies holding an open, uncommitted transaction
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    with JudgmentCache(path) as cache:
        assert cache.get_many(["a", "b", "torn"]) == {"a": {"score": 1}, "b": {"score": 2}}
        cache.put_many({"c": {"score": 3}})  # the lock the dead process held is free again
        assert len(cache) == 3


def test_cached_grade_sends_only_misses(tiny_judge, tmp_path):
    judge = CountingJudge(tiny_judge)
    cache = JudgmentCache(tmp_path / "j.sqlite")
    instructions = ["Say hi.", "Say hi.", "Name a colour."]
    responses = ["Hello!", "Hello!", "Red."]
    first = CachedJudge(judge, cache).grade(instructions, responses, "helpfulness", mode="direct")
    assert judge.graded == [2]  # the duplicate row is judged once
    assert first[0].to_dict() == first[1].to_dict() and first[0].expected is not None
    # a preset name and the Rubric it names share keys; one new row is the only miss
    again = CachedJudge(judge, cache).grade(instructions + ["Count to 3."], responses + ["1 2 3"],
                         Rubric.preset("helpfulness"), mode="direct")
    assert judge.graded == [2, 1]
    assert [g.to_dict() for g in again[:3]] == [g.to_dict() for g in first]
    # another mode is another judgment
    CachedJudge(judge, cache).grade(instructions[:1], responses[:1], "helpfulness", mode="expected", max_new_tokens=4)
    assert judge.graded == [2, 1, 1]
    cache.close()


def test_unusable_judgments_are_not_stored(tiny_judge, tmp_path):
    judge = CountingJudge(tiny_judge)
    cache = JudgmentCache(tmp_path / "j.sqlite")
    grades = CachedJudge(judge, cache).grade(["Say hi.", "Say hi."], ["Hello!", None], "helpfulness", mode="direct",
                                          errors="return")
    assert grades[0].error is None
    assert grades[1].error == "row 1: field 'response' must be a string, got None"
    CachedJudge(judge, cache).grade(["Say hi.", "Say hi."], ["Hello!", None], "helpfulness", mode="direct", errors="return")
    assert judge.graded == [2, 1]  # the bad row is retried (and fails again), the good one is a hit
    assert len(cache) == 1
    cache.close()


def test_cached_compare_round_trip(tiny_judge, tmp_path):
    judge = CountingJudge(tiny_judge)
    path = tmp_path / "j.sqlite"
    args = (["Say hi.", "Name a colour."], ["Hello!", "Red."], ["Go away.", "Loud."], "helpfulness")
    with JudgmentCache(path) as cache:
        first = CachedJudge(judge, cache).compare(*args, mode="direct")
    with JudgmentCache(path) as cache:  # a fresh connection, as a rerun would open
        second = CachedJudge(judge, cache).compare(*args, mode="direct")
        assert cache.stats()["hits"] == 2
        no_swap = CachedJudge(judge, cache).compare(*args, mode="direct", swap=False)
    assert judge.compared == [2, 2]
    assert [p.to_dict() for p in second] == [p.to_dict() for p in first]
    assert all(p.prob_a is not None and len(p.votes) == 0 for p in first)
    assert all(p.feedback_swapped == "" for p in no_swap)


def test_cache_rejects_wrong_lengths(tiny_judge, tmp_path):
    with JudgmentCache(tmp_path / "j.sqlite") as cache, pytest.raises(ValueError, match="2 instructions but 1 responses"):
        CachedJudge(tiny_judge, cache).grade(["a", "b"], ["x"], "helpfulness", mode="direct")
