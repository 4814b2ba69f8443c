"""Fast unit tests of the logic around the judge (pairing, labeling verdicts, reranking, the one
multi-turn policy) on a scripted evaluator whose judgments the test controls (conftest's
``QualityBackend``: a response declaring 'q4' deserves a 4). The tiny-model tests elsewhere stay
the contract tests on real models."""

from __future__ import annotations

import pytest

from prometheus_reward import Judge
from prometheus_reward.io import iter_jsonl
from prometheus_reward.labeling import label_preferences, skipped_path
from prometheus_reward.rerank import judge_calls, rerank
from prometheus_reward.rewards import PairwiseReward, RubricReward
from prometheus_reward.rows import prompt_text

from conftest import QualityBackend, ScriptedBackend, section  # noqa: E402  (same folder)

CONVERSATION = [
    {"role": "system", "content": "Answer in one word."},
    {"role": "user", "content": "Name a fruit."},
    {"role": "assistant", "content": "Apple."},
    {"role": "user", "content": [{"type": "text", "text": "Its colour?"}]},
]


def _instructions(prompts: list[str]) -> set[str]:
    return {section(p, "###The instruction to evaluate:\n") if "###The instruction" in p else section(p, "###Instruction:\n")
            for p in prompts}


def test_one_multi_turn_policy_across_rewards_labeling_and_best_of_n(tiny_model_dir, tmp_path):
    expected = prompt_text(CONVERSATION)
    assert expected.startswith("Conversation so far:\nuser: Name a fruit.\nassistant: Apple.") and expected.endswith("Its colour?")

    reward_backend = QualityBackend()
    RubricReward(Judge(reward_backend), rubric="helpfulness", mode="generate")(
        prompts=[CONVERSATION], completions=[[{"role": "assistant", "content": "q4 Red."}]])
    assert _instructions(reward_backend.prompts) == {expected}

    label_backend = QualityBackend()
    label_preferences([{"prompt": CONVERSATION, "chosen": "q4 Red.", "rejected": "q2 Blue."}], Judge(label_backend),
                      "helpfulness", output=tmp_path / "prefs.jsonl", mode="generate", progress=False)
    assert _instructions(label_backend.prompts) == {expected}

    from prometheus_reward.config import JudgingConfig
    from prometheus_reward.best_of_n import best_of_n, load_policy

    policy, tokenizer = load_policy(str(tiny_model_dir), dtype="float32")
    bon_backend = QualityBackend()
    best_of_n(policy, tokenizer, [CONVERSATION], 2, Judge(bon_backend), "helpfulness",
              judging=JudgingConfig(mode="generate"), max_new_tokens=3)
    assert _instructions(bon_backend.prompts) == {expected}


@pytest.mark.parametrize("strategy,tournament", [("absolute", "round-robin"), ("pairwise", "round-robin"),
                                                 ("pairwise", "knockout")])
def test_rerank_follows_the_judgments_and_counts_calls(strategy, tournament):
    backend = QualityBackend()
    candidates = [["q2 a", "q5 b", "q1 c", "q4 d"], ["q3 x", "q1 y"]]
    results = rerank(["p0", "p1"], candidates, Judge(backend), "helpfulness", strategy, tournament=tournament,
                     mode="expected")
    assert [r.best for r in results] == [1, 0]
    if tournament == "round-robin" or strategy == "absolute":
        assert results[0].order == [1, 3, 0, 2]
    assert backend.calls == sum(judge_calls(len(c), strategy, tournament) for c in candidates)
    assert [r.judge_calls for r in results] == [judge_calls(len(c), strategy, tournament) for c in candidates]


def test_labeling_verdicts_ties_and_inconsistent_orders(tmp_path):
    rows = [
        {"id": "better_b", "prompt": "q", "response_a": "q2 short", "response_b": "q5 complete"},
        {"id": "tie", "prompt": "q", "response_a": "q3 one", "response_b": "q3 other"},
    ]
    summary = label_preferences(rows, Judge(QualityBackend()), "helpfulness", output=tmp_path / "p.jsonl",
                                mode="expected", progress=False)
    kept = list(iter_jsonl(tmp_path / "p.jsonl"))
    skipped = list(iter_jsonl(skipped_path(tmp_path / "p.jsonl")))
    assert [r["id"] for r in kept] == ["better_b"] and kept[0]["chosen"] == "q5 complete"
    assert kept[0]["score_chosen"] == pytest.approx(0.9) and kept[0]["consistent"] is True
    assert [(r["id"], r["skip_reason"]) for r in skipped] == [("tie", "tie")]
    assert summary.kept_rows == 1 and summary.skipped["tie"] == 1

    # a position-biased evaluator (always "A", more or less sure): its two orders disagree
    def first_shown(prefix, choices):
        p = 0.8 if section(prefix, "###Response A:\n").startswith("q2") else 0.6
        return [p, 1 - p]

    biased = Judge(ScriptedBackend(lambda p, i: "Hm. [RESULT] A", first_shown))
    label_preferences(rows[:1], biased, "helpfulness", output=tmp_path / "b.jsonl", mode="expected",
                      inconsistent="skip", progress=False)
    assert [r["skip_reason"] for r in iter_jsonl(skipped_path(tmp_path / "b.jsonl"))] == ["inconsistent"]


def test_pairwise_layouts_reward_the_preferred_completion():
    online = PairwiseReward(Judge(QualityBackend()), rubric="helpfulness", layout="online_dpo")
    rewards = online(prompts=["p", "r", "p", "r"], completions=["q5 good", "q1 bad", "q2 meh", "q4 fine"])
    assert rewards == pytest.approx([0.9, 0.1, 0.1, 0.9])

    group = PairwiseReward(Judge(QualityBackend()), rubric="helpfulness", layout="group", anchor="reference")
    rewards = group(prompts=["p", "p", "p"], completions=["q5 a", "q3 b", "q1 c"], reference_answer=["q3 ref"] * 3)
    assert rewards == pytest.approx([0.9, 0.5, 0.1])
