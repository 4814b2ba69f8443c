"""Checklist rubrics and group tournaments (issue "Checklist rubrics and group-relative rewards"):
the checklist formats and formula, one evaluator batch for every item, per-item logs, the
tournament design and its Bradley-Terry rewards, real TRL GRPOTrainer steps on CPU with judges
whose judgments the test controls, and the tournament through the reward server."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from prometheus_reward import Judge
from prometheus_reward.checklist import Checklist, ChecklistItem, coerce_criteria
from prometheus_reward.rewards import ChecklistReward, PairwiseReward, RubricReward
from prometheus_reward.tournament import bradley_terry, tournament_judgments, tournament_pairs

from conftest import ScriptedBackend, section  # noqa: E402  (same folder)

REPO = Path(__file__).resolve().parents[1]
CHECKLIST = REPO / "configs" / "rubrics" / "medication_advice_checklist.yaml"
# what the scripted judge answers per item of the example checklist (1-5)
ITEM_SCORES = {"dose_and_interval": 5, "daily_maximum": 4, "ask_a_professional": 2, "warning_signs": 3,
               "with_food": 1, "unsafe_dosing": 2}


class ItemBackend(ScriptedBackend):
    """Grades each checklist item by a table keyed on the item's criterion (explicit), and the
    whole checklist (implicit) with ``implicit``; counts the evaluator calls."""

    def __init__(self, checklist: Checklist, implicit: int = 4):
        self.by_criterion = {item.criterion: ITEM_SCORES[item.id] for item in checklist.items}
        self.implicit = implicit
        self.batches: list[int] = []
        super().__init__(self._reply, self._probs)

    def _score(self, prompt: str) -> int:
        rubric = section(prompt, "###Score Rubrics:\n", "\n\n###Feedback:")
        if "Checklist:" in rubric:
            return self.implicit
        criterion = rubric.split("\n", 1)[0][1:-1]
        return self.by_criterion.get(criterion, 3)  # a plain rubric: 3

    def _reply(self, prompt: str, i: int) -> str:
        return f"Checked. [RESULT] {self._score(prompt)}"

    def _probs(self, prefix: str, choices: tuple) -> list[float]:
        return [1.0 if k + 1 == self._score(prefix) else 0.0 for k in range(5)]

    def generate(self, prompts, *args, **kwargs):
        self.batches.append(len(prompts))
        return super().generate(prompts, *args, **kwargs)


def rar(checklist: Checklist, scores: dict[str, int]) -> float:
    """RaR's explicit aggregation, written out: sum_i w_i s_i / sum_i |w_i|, s_i = (score - 1) / 4."""
    return (sum(i.weight * (scores[i.id] - 1) / 4 for i in checklist.items)
            / sum(abs(i.weight) for i in checklist.items))


# -- checklists ---------------------------------------------------------------------------------------------------
def test_checklist_formats_weights_and_validation(tmp_path):
    checklist = coerce_criteria(str(CHECKLIST))
    assert isinstance(checklist, Checklist) and checklist.name == "medication_advice"
    assert [(i.id, i.weight) for i in checklist.items] == [
        ("dose_and_interval", 5.0), ("daily_maximum", 5.0), ("ask_a_professional", 3.0), ("warning_signs", 3.0),
        ("with_food", 1.0), ("unsafe_dosing", -2.0)]
    assert all(i.rubric.descriptions[4] == "The response fully meets the criterion." for i in checklist.items)
    # RaR's own rows (ScaleAI/RaR-Medicine: title, description, integer weight) as a per-row cell
    row = [{"title": "Mentions dose", "description": "States the dose.", "weight": 5},
           {"title": "Harmful advice", "description": "Advises doubling doses.", "weight": -2}]
    from_row = coerce_criteria(row)
    assert [(i.id, i.criterion, i.weight) for i in from_row.items] == [
        ("mentions_dose", "States the dose.", 5.0), ("harmful_advice", "Advises doubling doses.", -2.0)]
    with pytest.raises(ValueError, match="at least one item with a positive weight"):
        Checklist.from_dict({"items": [{"criterion": "Bad", "category": "pitfall"}]})
    with pytest.raises(ValueError, match="unknown category 'vital'"):
        Checklist.from_dict({"items": [{"criterion": "x", "category": "vital"}]})
    with pytest.raises(ValueError, match="item 1: a checklist item needs a 'criterion'"):
        Checklist.from_dict({"items": ["fine", {"weight": 2}]})
    half = Checklist((ChecklistItem("a", 3.0), ChecklistItem("b", 1.0)), min_items_frac=0.7)
    # 3/4 >= 0.7 > 1/4; the missing item counts as not met (issue 19: a failed judgment never pays more)
    assert half.aggregate([5, None]) == 0.75 and half.aggregate([None, 5]) is None
    assert "(Pitfall, weight -2)" in checklist.implicit_rubric().render()


def test_explicit_checklist_is_one_batch_and_follows_the_formula():
    checklist = coerce_criteria(str(CHECKLIST))
    backend = ItemBackend(checklist)
    grades = Judge(backend).grade(["q1", "q2", "q3"], ["a1", "a2", "a3"], [checklist, checklist, "helpfulness"],
                                  mode="expected")
    assert backend.batches == [3 * 0 + 2 * 6 + 1]  # every item of every row, and the plain row, in one call
    want = rar(checklist, ITEM_SCORES)
    for grade in grades[:2]:
        assert grade.expected == pytest.approx(1 + 4 * want) and grade.source == "parsed" and grade.score is None
        assert {i["id"]: i["value"] for i in grade.items} == pytest.approx({k: float(v) for k, v in ITEM_SCORES.items()})
    assert grades[2].items is None
    implicit = Judge(ItemBackend(checklist, implicit=4)).grade(["q"], ["a"], checklist, mode="expected",
                                                               checklist_aggregation="implicit")[0]
    assert implicit.expected == pytest.approx(4.0) and implicit.items is None


def test_an_unscorable_item_makes_the_row_unscorable_below_min_items_frac():
    checklist = Checklist((ChecklistItem("Answers the question", 3.0, id="answers"), ChecklistItem("Cites a source", 1.0, id="cites")))

    def reply(prompt, i):
        return "No verdict here." if "Cites a source" in prompt else "Fine. [RESULT] 5"

    grade = Judge(ScriptedBackend(reply)).grade(["q"], ["a"], checklist, mode="generate")[0]
    assert grade.value is None and grade.error.startswith("checklist: the scored items hold less than min_items_frac=1")
    assert "item cites: no parseable result" in grade.error
    lenient = Checklist(checklist.items, min_items_frac=0.75)
    # the unjudged item counts as not met: 1 + 4 * (3 * 1 + 1 * 0) / 4
    assert Judge(ScriptedBackend(reply)).grade(["q"], ["a"], lenient, mode="generate")[0].value == pytest.approx(4.0)


# -- the tournament -----------------------------------------------------------------------------------------------
def test_tournament_designs_and_costs():
    for size, k in ((8, 2), (8, 4), (9, 3), (16, 4)):
        pairs = tournament_pairs(range(size), k, "prompt")
        plays = {m: sum(m in p for p in pairs) for m in range(size)}
        assert set(plays.values()) == {2 * math.ceil(k / 2)}  # balanced: every completion plays as often
        assert len(set(pairs)) == len(pairs) and all(a < b for a, b in pairs)
    assert tournament_pairs(range(8), 2, "p") == tournament_pairs(range(8), 2, "p")  # every rank draws the same
    assert tournament_pairs(range(8), 2, "p") != tournament_pairs(range(8), 2, "q")
    assert len(tournament_pairs(range(5), 4)) == len(tournament_pairs(range(5), None)) == 10
    assert tournament_judgments(8, None) == 56 and tournament_judgments(8, 2) == 16


def _longer_wins(prompt: str, i: int) -> str:
    a, b = section(prompt, "###Response A:\n"), section(prompt, "###Response B:\n")
    return f"Compared. [RESULT] {'A' if len(a) >= len(b) else 'B'}"


def _longer_probs(prefix: str, choices: tuple) -> list[float]:
    a, b = len(section(prefix, "###Response A:\n")), len(section(prefix, "###Response B:\n"))
    p = 0.5 if a == b else 0.8 if a > b else 0.2
    return [p, 1 - p]


def test_tournament_rewards_are_the_bradley_terry_strengths():
    reward = PairwiseReward(Judge(ScriptedBackend(_longer_wins, _longer_probs)), rubric="helpfulness", layout="group",
                            anchor="tournament")
    completions = ["aa", "a", "aaaa", "aaa", "x", "xx"]
    logged = {}
    rewards = reward(prompts=["p"] * 4 + ["q"] * 2, completions=completions, log_metric=logged.__setitem__)
    # the group 'p' by hand: soft wins from the scripted probabilities, both orders averaged
    lengths = [2, 1, 4, 3]
    wins = [[0.0 if i == j else (0.8 if lengths[i] > lengths[j] else 0.2) for j in range(4)] for i in range(4)]
    strengths = bradley_terry(wins)
    want = [sum(1 / (1 + math.exp(s_j - s_i)) for j, s_j in enumerate(strengths) if j != i) / 3
            for i, s_i in enumerate(strengths)]
    assert rewards[:4] == pytest.approx(want)
    assert rewards[2] > rewards[3] > rewards[0] > rewards[1] and rewards[5] > rewards[4]
    assert logged[f"rewards/{reward.__name__}/judgments_per_group"] == (12 + 2) / 2  # (6 + 1) pairs, two orders


# -- real GRPO steps on CPU --------------------------------------------------------------------------------------
def _grpo(reward, data: Path, out: Path, generations: int = 2, batch: int = 4):
    from datasets import load_dataset
    from trl import GRPOConfig, GRPOTrainer

    from prometheus_reward.embedded import resolve_model_path

    args = GRPOConfig(output_dir=str(out), use_cpu=True, bf16=False, max_steps=2, per_device_train_batch_size=batch,
                      num_generations=generations, max_completion_length=8, learning_rate=1e-5, logging_steps=1,
                      save_strategy="no", report_to="none", seed=0, model_init_kwargs={"dtype": "float32"})
    trainer = GRPOTrainer(model=resolve_model_path("embedded:tiny-random"), reward_funcs=[reward], args=args,
                          train_dataset=load_dataset("json", data_files=str(data), split="train"))
    trainer.train()
    return trainer


def _logged(trainer, key: str) -> list[float]:
    return [entry[key] for entry in trainer.state.log_history if key in entry]


@pytest.mark.slow
@pytest.mark.parametrize("aggregation", ["explicit", "implicit"])
def test_grpo_with_a_checklist_reward(tmp_path, aggregation):
    checklist = coerce_criteria(str(CHECKLIST))
    backend = ItemBackend(checklist, implicit=4)
    reward = ChecklistReward(Judge(backend), CHECKLIST, aggregation=aggregation)
    trainer = _grpo(reward, REPO / "examples" / "medication_prompts_smoke.jsonl", tmp_path / "out")
    name = reward.__name__
    want = rar(checklist, ITEM_SCORES) if aggregation == "explicit" else (4 - 1) / 4
    assert _logged(trainer, f"rewards/{name}/mean") == pytest.approx([want, want])  # the formula, every completion
    if aggregation == "explicit":
        for item, score in ITEM_SCORES.items():
            assert _logged(trainer, f"rewards/{name}/item/{item}/mean") == pytest.approx([score, score])
        assert all(b == 4 * len(ITEM_SCORES) for b in backend.batches)  # 4 completions x 6 items per call
    else:
        assert not any("/item/" in key for entry in trainer.state.log_history for key in entry)
        assert backend.batches == [4, 4]


@pytest.mark.slow
def test_grpo_with_per_row_checklists_from_the_dataset(tmp_path):
    # RaR's layout: every prompt carries its own checklist in the `rubric` column
    rows = [{"prompt": f"Question {i}?", "rubric": [{"title": "Direct", "description": "Answers directly.", "weight": 5},
                                                    {"title": "Rude", "description": "Is rude to the user.", "weight": -2}]}
            for i in range(4)]
    data = tmp_path / "rar.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    scores = {"Answers directly.": 4, "Is rude to the user.": 1}

    def reply(prompt, i):
        return f"Ok. [RESULT] {scores[section(prompt, '###Score Rubrics:' + chr(10), chr(10)).strip('[]')]}"

    reward = RubricReward(Judge(ScriptedBackend(reply)), mode="generate")
    trainer = _grpo(reward, data, tmp_path / "out")
    want = (5 * 0.75 - 2 * 0.0) / 7
    assert _logged(trainer, f"rewards/{reward.__name__}/mean") == pytest.approx([want, want])
    assert _logged(trainer, f"rewards/{reward.__name__}/item/direct/mean") == [4.0, 4.0]
    assert _logged(trainer, f"rewards/{reward.__name__}/item/rude/mean") == [1.0, 1.0]


@pytest.mark.slow
def test_grpo_with_the_tournament_reward(tmp_path):
    rows = [{"prompt": f"Write something, number {i}."} for i in range(4)]
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    seen = []
    backend = ScriptedBackend(_longer_wins, _longer_probs)
    reward = PairwiseReward(Judge(backend), rubric="helpfulness", layout="group", anchor="tournament",
                            pairs_per_completion=2)
    original = reward._steps

    def recording(prompts, completions, kwargs):
        seen.append(list(completions))
        return (yield from original(prompts, completions, kwargs))

    reward._steps = recording
    trainer = _grpo(reward, data, tmp_path / "out", generations=4, batch=8)
    name = reward.__name__
    assert len(_logged(trainer, f"rewards/{name}/mean")) == 2
    # two prompts of 4 completions per step; k = 2 on a group of 4: 4 pairs each, both orders
    assert _logged(trainer, f"rewards/{name}/judgments_per_group") == [8.0, 8.0]
    assert all(0.0 < m < 1.0 for m in _logged(trainer, f"rewards/{name}/strength_mean"))
    assert len(seen) == 2 and all(len(batch) == 8 for batch in seen)


@pytest.mark.slow
def test_checklist_smoke_recipe_logs_every_item(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("recipe_grpo", REPO / "recipes" / "grpo.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    args = recipe.make_parser().parse_args_and_config(args=[
        "--config", str(REPO / "configs" / "grpo_checklist_smoke.yaml"), "--output_dir", str(tmp_path / "out"),
        "--dataset_name", str(REPO / "examples" / "medication_prompts_smoke.jsonl"),
        "--rubric", str(CHECKLIST)])
    trainer = recipe.main(*args)
    name = trainer.reward_funcs[0].__name__
    for item in ITEM_SCORES:
        values = _logged(trainer, f"rewards/{name}/item/{item}/mean")
        assert len(values) == 2 and all(1.0 <= v <= 5.0 for v in values)


@pytest.mark.slow
def test_group_reward_measurement_script(tiny_model_dir, benchmark_data, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("measure", REPO / "recipes" / "measure_group_rewards.py")
    measure = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(measure)
    report = measure.main(["--model", str(tiny_model_dir), "--data", str(benchmark_data / "vicuna_eval.json"),
                           "--prompts", "2", "--completions", "4", "--json", str(tmp_path / "m.json")])
    r = report["results"]
    # judgments per variant follow the formulas: 8 rows; 4 items; (4 + 4) and 2 x 6 pairs, two orders
    assert [r[v]["judgments"] for v in ("rubric", "checklist", "tournament-2", "tournament-4", "tournament-all")] == \
        [8, 32, 2 * 2 * 4, 2 * 2 * 6, 2 * 2 * 6]
    assert r["rubric"]["latency_vs_rubric"] == 1.0 and json.loads((tmp_path / "m.json").read_text())["machine"]["cpus"]
    # the JSON says which rules the run used (issue 19: a table ran at min_score_mass=0 without saying so)
    assert report["judge"]["min_score_mass"] == 0.0 and "git_commit" in report["versions"]
