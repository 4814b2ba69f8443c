"""Options declared once: the defaults every entry point sees, the flat names of the recipes and
verl, the environment, validation, and the generated options table."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import pytest

from prometheus_reward.config import (
    ConfigError,
    JudgeConfig,
    JudgingConfig,
    RerankConfig,
    RewardConfig,
    defaults_table,
    from_env,
    from_mapping,
    split_flat,
)

REPO = Path(__file__).resolve().parents[1]


def test_one_default_mode_and_tournament_everywhere():
    from prometheus_reward import Judge, RubricReward
    from prometheus_reward.cached import CachedJudge
    from prometheus_reward.cli import build_parser
    from prometheus_reward.labeling import label_preferences
    from prometheus_reward.rerank import judge_calls, rerank
    from prometheus_reward.rewards import PairwiseReward, RewardArguments
    from prometheus_reward.server import ServerConfig

    mode = JudgingConfig().mode
    defaults = lambda f, name: inspect.signature(f).parameters[name].default  # noqa: E731
    for fn in (Judge.grade, Judge.compare, Judge.grade_rendered, CachedJudge.grade, CachedJudge.compare,
               RubricReward.__init__, PairwiseReward.__init__, rerank, label_preferences):
        assert defaults(fn, "mode") == mode, fn
    assert ServerConfig().judging.mode == mode and RewardArguments().judge_mode == mode
    parser = build_parser()
    for command in ("grade", "compare", "label", "best-of-n", "meta-eval", "serve"):
        argv = [command] + {"grade": ["i", "-o", "o"], "compare": ["i", "-o", "o"], "label": ["i", "-o", "o"],
                            "best-of-n": ["i", "-o", "o", "--policy", "p"], "meta-eval": ["--output-dir", "d"],
                            "serve": []}[command]
        assert parser.parse_args(argv).mode == mode, command
    tournament = RerankConfig().tournament
    assert defaults(rerank, "tournament") == defaults(label_preferences, "tournament") == tournament
    assert defaults(judge_calls, "tournament") == tournament
    assert parser.parse_args(["label", "i", "-o", "o"]).tournament == tournament
    assert parser.parse_args(["best-of-n", "i", "-o", "o", "--policy", "p"]).tournament == tournament
    # the server's normalisation and rubric are the rewards'
    assert ServerConfig().normalize == RewardConfig().normalize == defaults(RubricReward.__init__, "normalize")


def test_flat_names_route_each_option_to_its_config():
    parts = split_flat({"judge_model": "m", "judge_dtype": "float32", "judge_max_new_tokens": 8,
                        "judge_mode": "direct", "rubric": "honesty", "normalize": "symmetric"})
    assert parts[JudgeConfig] == {"model": "m", "dtype": "float32"}
    assert parts[JudgingConfig] == {"max_new_tokens": 8, "mode": "direct"}
    assert parts[RewardConfig] == {"rubric": "honesty", "normalize": "symmetric"}
    with pytest.raises(ConfigError, match="unknown option.*judge_max_tokens"):
        split_flat({"judge_max_tokens": 8})


def test_environment_and_mappings():
    config = from_env({"PROMETHEUS_REWARD_MODEL": "m", "PROMETHEUS_REWARD_BASE_URLS": "http://a:1/v1, http://b:2/v1",
                       "PROMETHEUS_REWARD_SAMPLES": "3", "PROMETHEUS_REWARD_TEMPERATURE": "0",
                       "PROMETHEUS_REWARD_ASYNC_REWARD": "yes", "UNRELATED": "x"})
    assert config == {"judge": {"model": "m", "base_urls": ["http://a:1/v1", "http://b:2/v1"]}, "samples": 3,
                      "async_reward": True, "sampling": {"temperature": 0.0}}
    with pytest.raises(ConfigError, match="PROMETHEUS_REWARD_SAMPLES must be a number"):
        from_env({"PROMETHEUS_REWARD_SAMPLES": "three"})
    with pytest.raises(ConfigError, match="judge config: unknown JudgeConfig option.*modle"):
        from_mapping(JudgeConfig, {"modle": "m"}, "judge config")
    with pytest.raises(ConfigError, match="unknown mode 'fast'"):
        JudgingConfig(mode="fast")
    with pytest.raises(ConfigError, match="samples must be positive"):
        JudgingConfig(samples=0)
    with pytest.raises(ConfigError, match="top_p must be in"):
        JudgingConfig(top_p=1.5)
    assert JudgeConfig(base_urls="http://a:1,http://b:2").base_urls == ("http://a:1", "http://b:2")


def test_command_line_options_come_from_the_configs():
    from prometheus_reward.cli.common import add_judge_options, add_judging_options, config_from

    parser = argparse.ArgumentParser()
    add_judge_options(parser)
    add_judging_options(parser)
    args = parser.parse_args(["--model", "m", "--openai-base-url", "http://a:1", "--openai-base-url", "http://b:2",
                              "--mode", "direct", "--max-new-tokens", "9", "--relative-variant", "prometheus-eval-0.1.20"])
    judge = config_from(JudgeConfig, args)
    assert judge.base_urls == ("http://a:1", "http://b:2") and judge.relative_variant == "prometheus-eval-0.1.20"
    judging = config_from(JudgingConfig, args)
    assert judging.mode == "direct" and judging.sampling_overrides() == {"max_new_tokens": 9}
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "fast"])


def test_options_table_in_the_docs_is_current():
    text = (REPO / "docs" / "options.md").read_text(encoding="utf-8")
    assert defaults_table() in text, "run python scripts/write_options_doc.py"
