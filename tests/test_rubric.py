from __future__ import annotations

import json
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


# -- coercion rules: a rubric argument cannot be mistaken for another kind -----------------------------------------
def test_coerce_single_word_must_be_a_preset_with_a_suggestion():
    from prometheus_reward.rubric import RubricError

    with pytest.raises(RubricError, match=r"^unknown rubric preset 'helpfulnes'; did you mean 'helpfulness'\? \(presets: "):
        Rubric.coerce("helpfulnes")
    with pytest.raises(RubricError, match=r"did you mean 'factual_validity'\?"):
        Rubric.coerce("factual-validty")
    with pytest.raises(RubricError, match=r"^unknown rubric preset 'xyzzy' \(presets: helpfulness, .*rubric text has spaces"):
        Rubric.coerce("xyzzy")  # nothing close: no suggestion, the choices and the rules instead
    with pytest.raises(RubricError, match="did you mean 'honesty'"):
        Rubric.preset("honsety")
    assert issubclass(RubricError, ValueError)  # callers catching ValueError keep working


def test_coerce_path_like_strings_must_exist(tmp_path, monkeypatch):
    from prometheus_reward.rubric import RubricError, looks_like_path

    monkeypatch.chdir(tmp_path)
    for text in ("my_rubric.yaml", "my_rubric.YML", "rubric.json", "rubrics/kindness", "rubrics\\kindness",
                 "configs/rubrics/my rubric.yaml"):
        assert looks_like_path(text)
        with pytest.raises(RubricError, match=r"^no such rubric file: .* \(relative to "):
            Rubric.coerce(text)
    with pytest.raises(RubricError, match=rf"^no such rubric file: {tmp_path}/absent.yaml$"):
        Rubric.coerce(str(tmp_path / "absent.yaml"))
    # text with spaces and a slash is text, not a path; so is multi-line text ending in .json
    for text in ("Is the answer kind and/or fair?", "Score the reply.\nPrefer valid .json"):
        assert not looks_like_path(text)
        assert Rubric.coerce(text).text == text
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    with pytest.raises(RubricError, match="is a folder"):
        Rubric.coerce("dir.yaml")


def test_coerce_reads_an_existing_relative_file(tmp_path, monkeypatch):
    (tmp_path / "kind.json").write_text(json.dumps({"criteria": "Kind?", "scores": {str(i): f"s{i}" for i in range(1, 6)}}))
    monkeypatch.chdir(tmp_path)
    rubric = Rubric.coerce("kind.json")
    assert rubric.name == "kind" and rubric.descriptions == ("s1", "s2", "s3", "s4", "s5")


@pytest.mark.parametrize("content, message", [
    ("criteria: Short?\nscore1_description: a\n",
     "{path}: rubric is missing score2_description, score3_description, score4_description, score5_description"),
    ("criteria: Short?\nscore1_description: a\nscore2_description: b\nscore3_description:\nscore4_description: d\n"
     "score5_description: ''\n", "{path}: rubric fields score3_description, score5_description are empty"),
    ("score1_description: a\n", "{path}: rubric needs a 'criteria' field"),
    ("criteria: Short?\ndescriptions: [a, b]\n", "{path}: rubric 'descriptions' must list five score descriptions"),
    ("criteria: [unclosed\n", "{path} line 2: invalid YAML"),
    ("- a\n- b\n", "{path}: a rubric file must hold a mapping"),
    ("", "{path}: a rubric file must hold a mapping with criteria and score1_description to score5_description, got nothing"),
])
def test_broken_rubric_files_name_the_file_and_field(content, message, tmp_path):
    from prometheus_reward.rubric import RubricError

    path = tmp_path / "broken.yaml"
    path.write_text(content)
    with pytest.raises(RubricError) as info:
        Rubric.coerce(str(path))
    assert str(info.value).startswith(message.format(path=path))


def test_empty_description_is_never_the_text_none():
    """A YAML key with no value used to become the description "None"."""
    with pytest.raises(ValueError, match="score2_description is empty"):
        Rubric.from_dict({"criteria": "c", "score1_description": "a", "score2_description": None,
                          "score3_description": "c", "score4_description": "d", "score5_description": "e"})


def test_per_row_rubric_cells_follow_the_same_rules():
    from prometheus_reward.rows import RowError, RubricColumn

    rubrics = RubricColumn("helpfulness")
    assert rubrics.resolve("Is it polite?", 0).text == "Is it polite?"
    with pytest.raises(RowError, match=r"^row 3: field 'rubric' is invalid: unknown rubric preset 'honsty'; did you mean 'honesty'\?"):
        rubrics.resolve("honsty", 3)
    with pytest.raises(RowError, match=r"^row 4: field 'rubric' is invalid: no such rubric file: missing/r.yaml"):
        rubrics.resolve("missing/r.yaml", 4)


def test_rewards_apply_the_rules_at_construction():
    from prometheus_reward import Judge, RubricReward
    from prometheus_reward.rubric import RubricError

    from conftest import ScriptedBackend

    judge = Judge(ScriptedBackend())
    with pytest.raises(RubricError, match="did you mean 'helpfulness'"):
        RubricReward(judge, rubric="helpfulnes")
    with pytest.raises(RubricError, match="no such rubric file: rubric.yaml"):
        RubricReward(judge, rubric="rubric.yaml")
    assert RubricReward(judge, rubric="Is the reply kind?").rubric.text == "Is the reply kind?"
