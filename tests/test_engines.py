"""Engines come from the registry (``JudgeConfig.engine``), and the Judge's frozen config is its
one truth: engine selection from Python, the command line, the recipes and the environment; a new
engine as one file plus one registration line; a judge that cannot be changed in place but can be
replaced, rebuilt from its pickled config, and keyed in the cache by that config."""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
from pathlib import Path

import pytest
from conftest import ScriptedBackend

from prometheus_reward import Judge
from prometheus_reward.cached import CachedJudge, judge_identity, judgment_key, sampling_identity
from prometheus_reward.config import (
    ConfigError,
    JudgeConfig,
    from_env,
    from_mapping,
    from_object,
    option,
    options,
    split_flat,
)
from prometheus_reward.registry import ENGINES

TOY_ENGINE = '''
"""A toy engine: a whole new engine is this file plus ``ENGINES.register("toy", "toy_engine:ToyBackend")``."""
from conftest import ScriptedBackend


class ToyBackend(ScriptedBackend):
    built_from = []

    @classmethod
    def from_config(cls, config):
        cls.built_from.append(config)
        backend = cls(lambda prompt, i: "Toy feedback. [RESULT] 4")
        backend.model_id = config.model
        return backend
'''


@pytest.fixture
def toy_engine(tmp_path, monkeypatch):
    """The toy engine written to its own module and registered lazily, by path, like the built-in ones."""
    (tmp_path / "toy_engine.py").write_text(TOY_ENGINE)
    monkeypatch.syspath_prepend(str(tmp_path))
    ENGINES.register("toy", "toy_engine:ToyBackend", help="a scripted evaluator (tests)")
    yield
    ENGINES.unregister("toy")  # registrations are process-wide: leave none behind


# -- engine selection ----------------------------------------------------------------------------------------------
def test_engine_auto_follows_base_urls_and_contradictions_are_config_errors():
    assert JudgeConfig().engine == "auto" and JudgeConfig().engine_name == "transformers"
    assert JudgeConfig(base_urls=["http://a:1"]).engine_name == "openai"
    assert JudgeConfig(engine="vllm").engine_name == "vllm" and not JudgeConfig(engine="vllm").is_remote
    assert JudgeConfig(engine="openai", base_urls="http://a:1").is_remote
    with pytest.raises(ConfigError, match="engine 'transformers' does not use base_urls"):
        JudgeConfig(engine="transformers", base_urls=["http://a:1"])
    with pytest.raises(ConfigError, match="engine 'vllm' does not use base_urls"):
        JudgeConfig(engine="vllm", base_urls=["http://a:1"])
    with pytest.raises(ConfigError, match="engine 'openai' needs base_urls"):
        JudgeConfig(engine="openai")
    with pytest.raises(ConfigError, match="unknown engine 'tpu'; choose one of auto, transformers, openai, vllm"):
        JudgeConfig(engine="tpu")


def test_engine_from_the_command_line_the_recipes_and_the_environment():
    from prometheus_reward.cli.common import UserError, add_judge_options, config_from
    from prometheus_reward.rewards.build import RewardArguments

    parser = argparse.ArgumentParser()
    add_judge_options(parser)
    config = config_from(JudgeConfig, parser.parse_args(["--engine", "openai", "--openai-base-url", "http://a:1"]))
    assert config.engine == "openai" and config.base_urls == ("http://a:1",)
    assert config_from(JudgeConfig, parser.parse_args(["--engine", "vllm"])).engine_name == "vllm"
    with pytest.raises(SystemExit):
        parser.parse_args(["--engine", "tpu"])
    with pytest.raises(UserError, match="^--engine 'openai' needs base_urls"):
        config_from(JudgeConfig, parser.parse_args(["--engine", "openai"]))
    # recipes (flat judge_ names, read by TrlParser) and verl reward_kwargs
    from trl import TrlParser

    (recipe,) = TrlParser((RewardArguments,)).parse_args_and_config(
        ["--judge_engine", "openai", "--judge_base_urls", "http://a:1", "http://b:2"])
    recipe_config = from_object(JudgeConfig, recipe, flat=True)
    assert recipe_config.engine_name == "openai" and recipe_config.base_urls == ("http://a:1", "http://b:2")
    assert RewardArguments(judge_engine="vllm").judge_engine == "vllm"
    assert split_flat({"judge_engine": "vllm"})[JudgeConfig] == {"engine": "vllm"}
    # the environment
    env = from_env({"PROMETHEUS_REWARD_ENGINE": "openai", "PROMETHEUS_REWARD_BASE_URLS": "http://a:1"})
    assert env["judge"] == {"engine": "openai", "base_urls": ["http://a:1"]}
    assert from_mapping(JudgeConfig, env["judge"]).engine_name == "openai"
    assert {o.env_name for o in options(JudgeConfig)} >= {"PROMETHEUS_REWARD_ENGINE"}


def test_judge_from_config_asks_the_registry_for_the_openai_backend(monkeypatch):
    from prometheus_reward.backends.openai import OpenAIBackend

    monkeypatch.setenv("MY_JUDGE_KEY", "s3cret")
    judge = Judge.from_config({"model": "served", "base_urls": ["http://127.0.0.1:9"], "tokenizer": "none",
                               "api_key_env": "MY_JUDGE_KEY", "max_attempts": 2, "model_kwargs": {"cooldown": 1.5}})
    backend = judge.backend
    assert isinstance(backend, OpenAIBackend) and backend.api_key == "s3cret" and backend.model_id == "served"
    assert backend.max_attempts == 2 and backend.cooldown == 1.5 and backend.tokenizer is None
    assert judge.config.engine_name == "openai" and judge.rebuild_config is judge.config
    assert ENGINES.get("openai") is OpenAIBackend
    backend.close()


def test_every_built_in_engine_builds_its_backend_from_a_config():
    from prometheus_reward.backends.base import Backend

    for name in ("transformers", "openai"):
        engine = ENGINES.get(name)
        assert issubclass(engine, Backend) and engine.from_config.__func__ is not Backend.from_config.__func__
    with pytest.raises(NotImplementedError, match="ScriptedBackend has no from_config"):
        ScriptedBackend.from_config(JudgeConfig())


# -- a new engine is one file plus its registration --------------------------------------------------------------
def test_a_registered_toy_engine_builds_judges_everywhere_engines_are_named(toy_engine, tmp_path):
    judge = Judge.from_config({"engine": "toy", "model": "toy-judge", "max_retries": 0})
    from toy_engine import ToyBackend

    assert isinstance(judge.backend, ToyBackend) and judge.model_id == "toy-judge"
    assert ToyBackend.built_from[-1] is judge.config and judge.config.engine_name == "toy"
    assert judge.grade(["q"], ["r"], "helpfulness", mode="generate")[0].score == 4
    # the registration is a choice of every front end at once
    assert "toy" in dict((o.name, o.choices) for o in options(JudgeConfig))["engine"]
    assert from_env({"PROMETHEUS_REWARD_ENGINE": "toy"})["judge"] == {"engine": "toy"}
    # and the command line runs it end to end
    from prometheus_reward.cli import main

    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"instruction": "Say hi.", "response": "Hello!"}) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["grade", str(data), "-o", str(out), "--engine", "toy", "--model", "toy-judge", "--rubric",
                 "helpfulness", "--mode", "generate"]) == 0
    assert json.loads(out.read_text())["score"] == 4


def test_an_engine_that_cannot_be_imported_is_a_user_error_naming_the_flag(monkeypatch):
    from prometheus_reward.cli.common import UserError, check_engine

    ENGINES.register("absent", "no_such_engine_module:Backend")
    try:
        with pytest.raises(UserError, match="^--engine absent: its backend cannot be imported"):
            check_engine(JudgeConfig(engine="absent"))
    finally:
        ENGINES.unregister("absent")


# -- the frozen config is the judge's one truth ---------------------------------------------------------------
def test_config_is_frozen_and_its_lists_are_tuples():
    config = JudgeConfig(base_urls=["http://a:1"], model_kwargs={"revision": "main"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.min_score_mass = 0.0  # type: ignore[misc]
    assert config.base_urls == ("http://a:1",)
    with pytest.raises(TypeError, match="cannot be changed"):
        config.model_kwargs["revision"] = "dev"  # type: ignore[index]
    again = pickle.loads(pickle.dumps(config))
    assert again == config and again.model_kwargs == {"revision": "main"}


def test_a_live_judge_cannot_be_changed_only_replaced():
    backend = ScriptedBackend(lambda p, i: "Fine. [RESULT] 3")
    judge = Judge(backend, min_score_mass=0.2, seed=5)
    assert judge.config.model == "scripted" and judge.rebuild_config is None  # a hand-made backend
    assert judge.min_score_mass == 0.2 and judge.sampling.seed == 5
    for name, value in [("min_score_mass", 0.0), ("allow_forced", False), ("strip_reasoning", False),
                        ("neutralize_markers", False), ("max_input_tokens", 10), ("max_retries", 0),
                        ("relative_variant", "prometheus-eval-0.1.20"), ("seed", 1), ("config", JudgeConfig())]:
        with pytest.raises(AttributeError):
            setattr(judge, name, value)
    lenient = judge.replace(min_score_mass=0.0, max_retries=0)
    assert lenient.backend is backend and lenient.min_score_mass == 0.0 and lenient.max_retries == 0
    assert judge.min_score_mass == 0.2 and judge.max_retries == 2 and lenient.rebuild_config is None
    with pytest.raises(TypeError, match="dtype describes how the backend is loaded"):
        judge.replace(dtype="float32")
    with pytest.raises(TypeError, match="unknown judging option.*min_mass"):
        Judge(backend, min_mass=0.0)
    with pytest.raises(TypeError, match="sampling follows its config"):
        Judge(backend, sampling=judge.sampling)
    built = Judge(backend, config={"model": "m", "max_retries": 1}, min_score_mass=0.0)
    assert built.rebuild_config is built.config and built.config.max_retries == 1 and built.min_score_mass == 0.0


def test_no_judge_attribute_is_kept_beside_its_config():
    judge = Judge(ScriptedBackend(), min_score_mass=0.3)
    assert set(vars(judge)) == {"backend", "_config", "_rebuildable"}


def test_judge_rebuilt_from_its_pickled_config_judges_identically(tiny_model_dir):
    judge = Judge.from_pretrained(str(tiny_model_dir), dtype="float32", seed=3, min_score_mass=0.0, max_input_tokens=900,
                                  allow_forced=False, max_retries=0)
    clone = Judge.from_config(pickle.loads(pickle.dumps(judge.rebuild_config)))
    assert clone.config == judge.config and clone.backend is not judge.backend
    rows = (["Say hi.", "Name a colour."], ["Hello!", "Blue."], "helpfulness")
    for mode, extra in [("direct", {}), ("expected", {"max_new_tokens": 6})]:
        mine, theirs = judge.grade(*rows, mode=mode, **extra), clone.grade(*rows, mode=mode, **extra)
        assert [g.to_dict() for g in mine] == [g.to_dict() for g in theirs]


# -- the cache identity derives from the config ---------------------------------------------------------------
def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value / 2 if isinstance(value, float) else value + 1
    if value is None:
        return 7
    return "prometheus-eval-0.1.20" if value == "prometheus-2" else value + "x"


def test_cache_identity_is_every_judging_rule_plus_the_backend():
    judge = Judge(ScriptedBackend())
    ident = judge_identity(judge)
    rules = judge.config.judging_rules()
    assert {"model_id", "revision", "family", "evaluator"} | set(rules) == set(ident)
    backend_fields = {f.name for f in dataclasses.fields(JudgeConfig) if f.metadata["backend"]}
    assert backend_fields | set(rules) == {f.name for f in dataclasses.fields(JudgeConfig)}
    sampling = sampling_identity(judge, {})
    base = judgment_key(ident, "absolute", "direct", 1, sampling, {"instruction": "q"})
    keys = {base}
    for name, value in rules.items():
        other = judge.replace(**{name: _changed(value)})
        keys.add(judgment_key(judge_identity(other), "absolute", "direct", 1, sampling_identity(other, {}),
                              {"instruction": "q"}))
    assert len(keys) == len(rules) + 1  # each rule changes the key
    # fields that say how the backend is loaded or reached do not (the backend's own id does)
    placed = Judge(judge.backend, config=JudgeConfig(model="scripted", batching="padded", max_concurrency=3,
                                                     device_map="cpu", max_batch_tokens=100))
    assert judge_identity(placed) == ident


def test_a_new_judging_rule_joins_the_cache_key_without_a_list_to_update():
    extended = dataclasses.make_dataclass("ExtendedConfig", [("new_rule", float, option(0.5, "a future rule"))],
                                          bases=(JudgeConfig,), frozen=True)
    assert extended().judging_rules()["new_rule"] == 0.5
    judge = Judge(ScriptedBackend(), config=extended(model="scripted"))
    assert judge_identity(judge)["new_rule"] == 0.5


def test_replaced_judge_misses_the_cache_and_the_original_hits(tmp_path):
    backend = ScriptedBackend(lambda p, i: "Fine. [RESULT] 3")
    judge = CachedJudge(Judge(backend), tmp_path / "j.sqlite")
    judge.grade(["q"], ["r"], "helpfulness", mode="generate")
    judge.grade(["q"], ["r"], "helpfulness", mode="generate")
    assert backend.calls == 1
    other = judge.replace(strip_reasoning=False)
    assert isinstance(other, CachedJudge) and other.cache is judge.cache and not other.judge.strip_reasoning
    other.grade(["q"], ["r"], "helpfulness", mode="generate")
    assert backend.calls == 2
    judge.grade(["q"], ["r"], "helpfulness", mode="generate")
    assert backend.calls == 2 and judge.stats()["hits"] == 2


# -- docs ---------------------------------------------------------------------------------------------------------
def test_engine_option_is_documented():
    text = (Path(__file__).resolve().parents[1] / "docs" / "options.md").read_text()
    assert "JudgeConfig.engine" in text and "`--engine`" in text and "`PROMETHEUS_REWARD_ENGINE`" in text
