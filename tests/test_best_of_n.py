"""Best-of-n: Bradley-Terry, the reranking strategies and their judge-call counts, sampling with a
real (tiny random) policy, the CLI and the recipe."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from prometheus_reward.cached import CachedJudge
from prometheus_reward.best_of_n import best_of_n
from prometheus_reward.rerank import judge_calls, rerank
from prometheus_reward.tournament import bradley_terry
from prometheus_reward.io import iter_jsonl

REPO = Path(__file__).resolve().parents[1]


class CountingJudge:
    """A real judge that records how many rows reach grade/compare."""

    def __init__(self, judge):
        self._judge = judge
        self.graded = 0
        self.compared = 0

    def __getattr__(self, name):
        return getattr(self._judge, name)

    def grade(self, instructions, *args, **kwargs):
        self.graded += len(instructions)
        return self._judge.grade(instructions, *args, **kwargs)

    def compare(self, instructions, *args, **kwargs):
        self.compared += len(instructions)
        return self._judge.compare(instructions, *args, **kwargs)


PROMPTS = ["Say hello politely.", "Explain rain to a child."]
CANDIDATES = [
    ["Hello, nice to meet you!", "What do you want?", "Hi.", "Greetings, friend.", "Hey!"],
    ["Clouds get heavy and drops fall.", "Precipitation from coalescence.", "It just happens.", "Water falls."],
]


def test_bradley_terry_recovers_an_order():
    # 0 beats everyone, 2 loses to everyone
    wins = [[0, 0.9, 0.95], [0.1, 0, 0.7], [0.05, 0.3, 0]]
    strengths = bradley_terry(wins)
    assert strengths[0] > strengths[1] > strengths[2]
    assert sum(strengths) == pytest.approx(0.0, abs=1e-6)
    # a perfect record stays finite thanks to the penalty
    assert all(abs(s) < 50 for s in bradley_terry([[0, 1], [0, 0]]))


def test_judge_call_counts():
    assert judge_calls(5, "absolute") == 5
    assert judge_calls(5, "pairwise", "knockout") == 8
    assert judge_calls(5, "pairwise", "round-robin") == 20
    assert judge_calls(4, "absolute", samples=3) == 12


def test_absolute_rerank(tiny_judge):
    judge = CountingJudge(tiny_judge)
    results = rerank(PROMPTS, CANDIDATES, judge, "helpfulness", mode="direct")
    assert judge.graded == 9
    for cands, r in zip(CANDIDATES, results):
        assert len(r.scores) == len(cands) and all(1 <= s <= 5 for s in r.scores)
        assert r.best == max(range(len(cands)), key=lambda k: (r.scores[k], -k))
        assert sorted(r.order) == list(range(len(cands))) and r.order[0] == r.best
        assert r.judge_calls == len(cands) and r.strategy == "absolute"


@pytest.mark.parametrize("tournament,ranking", [("knockout", "win-rate"), ("round-robin", "win-rate"),
                                                ("round-robin", "bradley-terry")])
def test_pairwise_rerank(tiny_judge, tournament, ranking):
    judge = CountingJudge(tiny_judge)
    results = rerank(PROMPTS, CANDIDATES, judge, "helpfulness", strategy="pairwise", tournament=tournament,
                     ranking=ranking, mode="direct")
    sizes = [len(c) for c in CANDIDATES]
    comparisons = sum((n - 1) if tournament == "knockout" else n * (n - 1) // 2 for n in sizes)
    assert judge.compared == comparisons  # each one judged in both orders inside compare()
    for n, r in zip(sizes, results):
        assert r.judge_calls == judge_calls(n, "pairwise", tournament)
        assert len(r.comparisons) == r.judge_calls // 2
        assert r.best is not None and all(s is None or 0 <= s <= 1 for s in r.scores)
        if tournament == "knockout":
            # the champion won its every match
            assert all(c.winner == r.best for c in r.comparisons if r.best in (c.i, c.j))
        else:
            assert r.best == max(range(n), key=lambda k: (r.scores[k], -k))
            if ranking == "win-rate":  # every match hands out one win in total
                assert sum(r.scores) == pytest.approx(n / 2, rel=1e-6)


def test_unjudgeable_candidates_are_never_picked(tiny_judge):
    r = rerank(["Say hi."], [["Hello!", None, "Hi."]], tiny_judge, "helpfulness", mode="direct")[0]
    assert r.scores[1] is None and "field 'response'" in r.errors[1] and r.best in (0, 2)
    assert r.order[-1] == 1


def test_best_of_n_samples_and_reranks(tiny_model_dir, tiny_judge, tmp_path):
    from prometheus_reward.config import JudgingConfig
    from prometheus_reward.best_of_n import load_policy

    policy, tokenizer = load_policy(str(tiny_model_dir), dtype="float32")
    prompts = ["Write about the sea.", [{"role": "user", "content": "Give a coding tip."}]]
    judge = CachedJudge(tiny_judge, tmp_path / "j.sqlite")
    results = best_of_n(policy, tokenizer, prompts, 3, judge, "helpfulness", judging=JudgingConfig(mode="direct"),
                        max_new_tokens=6, batch_size=2)
    assert len(results) == 2
    for res in results:
        assert len(res.completions) == 3 and all(isinstance(c, str) for c in res.completions)
        assert res.chosen == res.completions[res.best]
    assert judge.stats()["misses"] == 6
    again = rerank(["Write about the sea."], [results[0].completions], judge, "helpfulness", mode="direct")[0]
    assert again.scores == results[0].scores and judge.stats()["hits"] == 3
    judge.close()


@pytest.mark.slow
def test_best_of_n_cli_writes_scores_and_sft_rows(tiny_model_dir, tmp_path):
    from prometheus_reward.cli import main

    out, sft = tmp_path / "bon.jsonl", tmp_path / "sft.jsonl"
    code = main(["best-of-n", str(REPO / "examples" / "best_of_n_prompts_smoke.jsonl"), "-o", str(out), "--sft-output", str(sft),
                 "--policy", "embedded:tiny-random", "--model", "embedded:tiny-random", "--min-score-mass", "0", "--dtype", "float32",
                 "-n", "2", "--policy-max-new-tokens", "5", "--rubric", "helpfulness", "--mode", "direct",
                 "--strategy", "pairwise", "--cache", str(tmp_path / "j.sqlite"), "--seed", "0"])
    assert code == 0
    rows = list(iter_jsonl(out))
    inputs = list(iter_jsonl(REPO / "examples" / "best_of_n_prompts_smoke.jsonl"))
    assert [r["id"] for r in rows] == [r["id"] for r in inputs]
    for row in rows:
        assert len(row["completions"]) == 2 and len(row["scores"]) == 2 and row["judge_calls"] == 2
        assert row["chosen"] == row["completions"][row["best_index"]]
    assert [s["completion"] for s in iter_jsonl(sft)] == [r["chosen"] for r in rows]


@pytest.mark.slow
def test_best_of_n_recipe_smoke(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    sys.path.insert(0, str(REPO / "recipes"))
    try:
        import best_of_n as recipe
    finally:
        sys.path.pop(0)
    args, judge_args = recipe.make_parser().parse_args_and_config([
        "--config", "configs/best_of_n_smoke.yaml", "--output", str(tmp_path / "out.jsonl"),
        "--sft_output", str(tmp_path / "sft.jsonl"), "--cache", str(tmp_path / "j.sqlite"),
    ])
    summary = recipe.main(args, judge_args)
    rows = list(iter_jsonl(tmp_path / "out.jsonl"))
    assert len(rows) == summary.rows == 2
    assert all(len(r["comparisons"]) == 3 and len(r["scores"]) == 3 for r in rows)  # round-robin of 3
    assert len(list(iter_jsonl(tmp_path / "sft.jsonl"))) == 2
    json.dumps(rows)
