"""The sqlite judgment cache: keys, WAL mode, durability across a killed process, and cached
CachedJudge sending only misses to a real (tiny random) judge."""

from __future__ import annotations

import json
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


# -- the evaluator's identity (issue 19, section 4) ------------------------------------------------------------
def _judge_folder(source, folder, shift: float | None = None):
    """A copy of the tiny judge in ``folder``; with ``shift``, a "fine-tune": every weight moved."""
    import shutil

    from safetensors.torch import load_file, save_file

    folder.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        shutil.copy(item, folder / item.name)  # over an older judge in place: a retrain
    if shift is not None:
        tensors = {name: tensor + shift for name, tensor in load_file(source / "model.safetensors").items()}
        save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def _load_judge(folder):
    from prometheus_reward import Judge

    return Judge.from_pretrained(str(folder), dtype="float32", seed=0, min_score_mass=0.0)


ROWS = (["Say hi.", "Name a colour."], ["Hello!", "Red."], "helpfulness")


def test_fine_tunes_in_folders_of_one_name_do_not_share_keys_nor_a_cache(tiny_model_dir, tmp_path):
    from prometheus_reward.cached import CacheIdentityError, evaluator_identity

    first = _load_judge(_judge_folder(tiny_model_dir, tmp_path / "runs" / "a" / "final"))
    second = _load_judge(_judge_folder(tiny_model_dir, tmp_path / "runs" / "b" / "final", shift=1e-3))
    # what identified a local judge before: its folder's name and a hash of its config, the same here
    assert first.model_id == second.model_id == "final" and first.backend.revision == second.backend.revision
    assert judge_identity(first) != judge_identity(second)
    ident_a, ident_b = evaluator_identity(first.backend), evaluator_identity(second.backend)
    assert ident_a["weights"] != ident_b["weights"] and ident_a["tokenizer"] == ident_b["tokenizer"]
    assert judge_identity(_load_judge(tmp_path / "runs" / "a" / "final")) == judge_identity(first)  # reruns hit
    path = tmp_path / "j.sqlite"
    CachedJudge(first, path).grade(*ROWS, mode="direct")
    with pytest.raises(CacheIdentityError, match=r"j.sqlite holds the judgments of another evaluator \(.*weights"):
        CachedJudge(second, path)
    counting = CountingJudge(second)
    shared = CachedJudge(counting, path, share=True)
    grades = shared.grade(*ROWS, mode="direct")
    assert counting.graded == [2] and shared.stats()["hits"] == 0 and all(g.error is None for g in grades)
    owner = json.loads(sqlite3.connect(path).execute("SELECT value FROM meta WHERE name = 'evaluator'").fetchone()[0])
    assert owner == json.loads(json.dumps(ident_a))  # the file records the evaluator that wrote it first


def test_a_judge_retrained_in_place_or_in_this_process_gets_new_keys(tiny_model_dir, tmp_path):
    import torch

    from prometheus_reward.cached import CacheIdentityError

    folder = _judge_folder(tiny_model_dir, tmp_path / "judge" / "final")
    before = _load_judge(folder)
    _judge_folder(tiny_model_dir, folder, shift=1e-3)  # retrained, saved over the old weights
    after = _load_judge(folder)
    assert judge_identity(after) != judge_identity(before)
    # trained in this process: the identity follows the weights, and the cache refuses to mix them
    cached = CachedJudge(before, tmp_path / "j.sqlite")
    ident = judge_identity(before)
    cached.grade(*ROWS, mode="direct")
    with torch.no_grad():
        before.backend.model.model.layers[0].mlp.down_proj.weight[0, 0] += 0.5  # one weight of one tensor
    assert judge_identity(before)["evaluator"]["weights"] != ident["evaluator"]["weights"]
    with pytest.raises(CacheIdentityError, match="another evaluator"):
        cached.grade(*ROWS, mode="direct")


def test_context_length_tokenizer_and_http_settings_are_part_of_the_identity(tiny_judge):
    from prometheus_reward.backends.openai import OpenAIBackend
    from prometheus_reward.backends.transformers import TransformersBackend
    from prometheus_reward.cached import evaluator_identity

    backend = tiny_judge.backend
    base = evaluator_identity(backend)
    assert base["context_length"] == backend.context_length and base["engine"] == "TransformersBackend"
    shorter = TransformersBackend(backend.model, backend.tokenizer, model_id=backend.model_id, revision=backend.revision,
                                  context_length=backend.context_length // 2)
    assert evaluator_identity(shorter) == {**base, "context_length": backend.context_length // 2}
    from transformers import AutoTokenizer

    templated = AutoTokenizer.from_pretrained(backend.tokenizer.name_or_path)
    templated.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    other = TransformersBackend(backend.model, templated, model_id=backend.model_id, revision=backend.revision)
    assert evaluator_identity(other)["tokenizer"] != base["tokenizer"]
    assert evaluator_identity(other)["weights"] == base["weights"]

    def http(**kwargs):
        return evaluator_identity(OpenAIBackend("http://127.0.0.1:9", "judge", tokenizer=None, **kwargs))

    settings = [http(), http(api="chat"), http(top_logprobs=5), http(extra_body={"top_k": -1}), http(strip_bos=False),
                http(context_length=2048), http(revision="v2")]
    assert len({json.dumps(s, sort_keys=True) for s in settings}) == len(settings)


class PartialJudge(CountingJudge):
    """A judge allowed to stand on part of its evidence (``min_samples`` below ``samples``, single-order
    preferences): what it returns is flagged partial, as verdicts.py flags it."""

    def grade(self, *args, **kwargs):
        grades = super().grade(*args, **kwargs)
        for grade in grades:
            grade.flags = [*grade.flags, "partial_samples"]
        return grades

    def compare(self, *args, **kwargs):
        prefs = super().compare(*args, **kwargs)
        for pref in prefs:
            pref.flags = [*pref.flags, "single_order"]
        return prefs


def test_partial_judgments_are_returned_but_never_stored(tmp_path):
    from prometheus_reward import Judge
    from prometheus_reward.checklist import Checklist, ChecklistItem

    from conftest import ScriptedBackend

    def replies(prompt, call):
        return "Fine. [RESULT] 4" if "###Response to evaluate:" in prompt else "A is better. [RESULT] A"

    judge = PartialJudge(Judge(ScriptedBackend(replies), max_retries=0))
    cached = CachedJudge(judge, tmp_path / "j.sqlite")
    for _ in range(2):
        grades = cached.grade(["q"], ["a"], "helpfulness", mode="generate", samples=3)
        prefs = cached.compare(["q"], ["a"], ["b"], "helpfulness", mode="generate")
    assert grades[0].value == 4.0 and "partial_samples" in grades[0].flags and prefs[0].prob_a is not None
    assert judge.graded == [1, 1] and judge.compared == [1, 1] and len(cached.cache) == 0
    # a checklist with an item the evaluator never judged (allowed by min_items_frac) is not stored either
    checklist = Checklist((ChecklistItem("Is it correct?", 1.0), ChecklistItem("Is it short?", 1.0)), min_items_frac=0.5)
    counting = CountingJudge(Judge(ScriptedBackend(lambda p, i: "Fine. [RESULT] 4" if "correct" in p else "no verdict"),
                                   max_retries=0))
    cached = CachedJudge(counting, tmp_path / "j.sqlite")
    for _ in range(2):
        grade = cached.grade(["q"], ["a"], checklist, mode="generate", checklist_aggregation="explicit")[0]
    assert grade.error is None and grade.items[1]["error"] and counting.graded == [1, 1] and len(cached.cache) == 0
    whole = cached.grade(["q"], ["a"], "Is it correct?", mode="generate")  # a complete judgment is stored
    assert whole[0].error is None and len(cached.cache) == 1


def test_a_foreign_cache_is_refused_with_a_clear_message_and_shared_on_request(tmp_path):
    from prometheus_reward import Judge
    from prometheus_reward.cached import CacheIdentityError

    from conftest import ScriptedBackend

    class OtherBackend(ScriptedBackend):
        model_id = "other-judge"

    path = tmp_path / "j.sqlite"
    mine = CachedJudge(Judge(ScriptedBackend(lambda p, i: "Fine. [RESULT] 3")), path)
    mine.grade(["q"], ["r"], "helpfulness", mode="generate")
    mine.close()
    with pytest.raises(CacheIdentityError) as refused:
        CachedJudge(Judge(OtherBackend(lambda p, i: "Fine. [RESULT] 5")), path)
    message = str(refused.value)
    assert "model_id 'scripted', not 'other-judge'" in message and "share=True" in message and "--cache-share" in message
    shared = CachedJudge(Judge(OtherBackend(lambda p, i: "Fine. [RESULT] 5")), path, share=True)
    assert shared.grade(["q"], ["r"], "helpfulness", mode="generate")[0].score == 5  # its own judgment, not a hit
    assert len(shared.cache) == 2
    # judging rules are not the evaluator: another rule on the same evaluator keeps using the file
    again = CachedJudge(Judge(ScriptedBackend(lambda p, i: "Fine. [RESULT] 3"), max_retries=0), path)
    assert again.cache.owner()["model_id"] == "scripted"


def test_cli_cache_share_flag(tiny_model_dir, tmp_path):
    import argparse

    from prometheus_reward.cli.common import UserError, add_cache_options, judge_from_args
    from prometheus_reward.config import JudgeConfig

    parser = argparse.ArgumentParser()
    add_cache_options(parser)
    path = str(tmp_path / "j.sqlite")
    CachedJudge(_load_judge(_judge_folder(tiny_model_dir, tmp_path / "a" / "final")), path).close()
    other = JudgeConfig(model=str(_judge_folder(tiny_model_dir, tmp_path / "b" / "final", shift=1e-3)), dtype="float32")
    with pytest.raises(UserError, match="--cache: .*another evaluator.*--cache-share"):
        judge_from_args(parser.parse_args(["--cache", path]), cached=True, config=other)
    judge = judge_from_args(parser.parse_args(["--cache", path, "--cache-share"]), cached=True, config=other)
    assert isinstance(judge, CachedJudge) and judge.share


def test_default_cache_is_one_file_per_evaluator(tiny_judge, tmp_path, monkeypatch):
    from prometheus_reward.cached import evaluator_identity

    monkeypatch.delenv("PROMETHEUS_REWARD_CACHE", raising=False)
    monkeypatch.setenv("PROMETHEUS_REWARD_HOME", str(tmp_path))
    path = default_cache_path(evaluator_identity(tiny_judge.backend))
    assert path.parent.name == "judgments" and path.name.startswith(tiny_judge.model_id)
    judge = CachedJudge(tiny_judge)
    assert judge.cache.path == str(path)
    judge.close()
