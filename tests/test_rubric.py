from __future__ import annotations

from pathlib import Path

import pytest

from prometheus_reward.rubric import PRESETS, Rubric

REPO = Path(__file__).resolve().parents[1]


def test_coerce_preset_names_and_spellings():
    assert Rubric.coerce("helpfulness") == Rubric.preset("helpfulness")
    assert Rubric.coerce("Factual Validity").name == "factual_validity"
    assert Rubric.coerce("factual-validity").name == "factual_validity"
    assert set(PRESETS) == {"helpfulness", "harmlessness", "honesty", "factual_validity", "reasoning"}


def test_from_dict_forms_agree():
    descriptions = ["one", "two", "three", "four", "five"]
    a = Rubric.from_dict({"criteria": "c", "descriptions": descriptions})
    b = Rubric.from_dict({"criteria": "c", "scores": {str(i): d for i, d in enumerate(descriptions, 1)}})
    c = Rubric.from_dict({"criteria": "c", **{f"score{i}_description": d for i, d in enumerate(descriptions, 1)}})
    assert a.render() == b.render() == c.render()
    assert a.render().splitlines() == ["[c]", "Score 1: one", "Score 2: two", "Score 3: three", "Score 4: four", "Score 5: five"]


def test_bad_rubrics_raise_clear_errors():
    with pytest.raises(ValueError, match="score3_description"):
        Rubric.from_dict({"criteria": "c", "score1_description": "x", "score2_description": "x",
                          "score4_description": "x", "score5_description": "x"})
    with pytest.raises(ValueError, match="criteria"):
        Rubric.from_dict({"descriptions": ["a"] * 5})
    with pytest.raises(ValueError, match="five"):
        Rubric("c", ("a", "b"))
    with pytest.raises(ValueError, match="unknown rubric preset"):
        Rubric.preset("kindness")
    with pytest.raises(ValueError, match="empty"):
        Rubric.coerce("   ")
    with pytest.raises(TypeError):
        Rubric.coerce(42)  # type: ignore[arg-type]


def test_yaml_rubric_file_and_path_coercion():
    path = REPO / "configs" / "rubrics" / "child_readability.yaml"
    rubric = Rubric.from_yaml(path)
    assert rubric.name == "child_readability"
    assert rubric.criteria.startswith("Is the response easy for a ten-year-old")
    assert len(rubric.descriptions) == 5
    assert Rubric.coerce(str(path)) == rubric


def test_free_text_is_verbatim():
    text = "Reward answers that cite the policy document.\nPenalise speculation."
    rubric = Rubric.coerce(text)
    assert rubric.render() == text
    assert rubric.render_relative() == text
    assert rubric.descriptions is None
