"""Real TRL trainer runs (2 CPU steps each) through the recipes and their smoke configs, with
the tiny random policy and judge."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from prometheus_reward.rewards import PairwiseReward, RubricReward

from conftest import with_chat_template  # noqa: E402  (same folder)

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", REPO / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parse(module, config: str, tmp_path: Path, *extra: str):
    return module.make_parser().parse_args_and_config(
        args=["--config", str(REPO / "configs" / config), "--output_dir", str(tmp_path / "out"),
              "--dataset_name", str(REPO / "examples" / "prompts_smoke.jsonl"), *extra]
    )


# A Gemma-style chat template for the tiny policy (its GGUF-converted tokenizer ships none).
_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{{ m['content'] }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@pytest.fixture(scope="module")
def chat_policy_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny random policy with a chat template: the same files, linked, plus the template."""
    return with_chat_template(tiny_model_dir, tmp_path_factory.mktemp("chat-policy"), _CHAT_TEMPLATE)


def _logged(trainer, key: str) -> list[float]:
    return [entry[key] for entry in trainer.state.log_history if key in entry]


HUGE_RUBRIC = "Judge every single word with great care. " * 700  # far past the judge's 4096-token context


def _with_failing_rows(rows: list[dict], path: Path) -> tuple[Path, set[str]]:
    """Every second row gets a rubric too long for the judge's context: a real per-row judge
    failure (the prompt cannot be fitted), unlike a bad input the reward could reject itself."""
    out, bad = [], set()
    for i, row in enumerate(rows):
        row = dict(row)
        if i % 2 == 1:
            row["rubric"] = HUGE_RUBRIC
            bad.add(row["prompt"] if isinstance(row["prompt"], str) else row["prompt"][-1]["content"])
        out.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in out))
    return path, bad


def _check_trainer_run(trainer, bad_prompts: set[str]) -> None:
    """What a GRPO/RLOO run must show: the reward's metrics, rewards that differ across
    completions, and None (NaN in the trainer) for exactly the rows the judge failed on."""
    reward = trainer.reward_funcs[0]
    assert isinstance(reward, RubricReward)
    name = reward.__name__
    assert len(_logged(trainer, f"rewards/{name}/mean")) == 2
    assert all(0.0 < f < 1.0 for f in _logged(trainer, f"rewards/{name}/unscorable_frac"))
    assert all(1.0 <= v <= 5.0 for v in _logged(trainer, f"rewards/{name}/raw_score_mean"))
    assert len(_logged(trainer, f"rewards/{name}/judge_seconds")) == 2
    prompts = list(trainer._logs["prompt"])
    rewards = list(trainer._logs["rewards"][name])
    feedback = list(trainer._logs["extra"][f"{name}/feedback"])
    raw = list(trainer._logs["extra"][f"{name}/raw_score"])
    assert len(prompts) == len(rewards) == len(feedback) == len(raw) > 0
    for prompt, value, note, score in zip(prompts, rewards, feedback, raw):
        text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
        if text in bad_prompts:
            assert math.isnan(value) and note.startswith("[unscorable]") and score is None
        else:
            assert math.isfinite(value) and not note.startswith("[unscorable]") and 1.0 <= score <= 5.0
    finite = [v for v in rewards if math.isfinite(v)]
    assert finite and len(finite) < len(rewards)
    assert len(set(finite)) > 1  # rewards differ across completions


def test_grpo_smoke_recipe(tiny_model_dir, tmp_path):
    recipe = _recipe("grpo")
    rows = [json.loads(line) for line in (REPO / "examples" / "prompts_smoke.jsonl").read_text().splitlines()]
    data, bad = _with_failing_rows(rows, tmp_path / "prompts.jsonl")
    script_args, training_args, model_args, reward_args = _parse(
        recipe, "grpo_smoke.yaml", tmp_path, "--dataset_name", str(data), "--shuffle_dataset", "false"
    )
    assert reward_args.judge_model == "embedded:tiny-random" and training_args.max_steps == 2
    training_args.per_device_train_batch_size = 8  # 4 prompts x 2 completions a step: 4 scored rows
    trainer = recipe.main(script_args, training_args, model_args, reward_args)
    _check_trainer_run(trainer, bad)
    assert (tmp_path / "out" / "config.json").is_file()
    # the integrity monitors: the random judge writes no [RESULT] (every scored row is forced) and
    # puts almost no mass on the digits (the smoke config lowers the floor to 0 to get rewards at all)
    name = trainer.reward_funcs[0].__name__
    assert _logged(trainer, f"rewards/{name}/forced_frac") == [0.5, 0.5]  # the other half: unscorable rows
    assert all(0.0 < m < 1e-3 for m in _logged(trainer, f"rewards/{name}/score_mass_mean"))
    assert _logged(trainer, f"rewards/{name}/flagged_frac") == [0.0, 0.0]
    corr = _logged(trainer, f"rewards/{name}/length_reward_corr")
    assert len(corr) == 2 and all(-1.0 <= c <= 1.0 for c in corr)


def test_rloo_smoke_recipe_with_conversational_rows(chat_policy_dir, tmp_path):
    rows = [
        {"prompt": [{"role": "user", "content": f"Question number {i}: name a colour."}],
         "rubric": "honesty" if i % 4 == 0 else None, "reference_answer": "Blue." if i == 0 else None}
        for i in range(8)
    ]
    data, bad = _with_failing_rows(rows, tmp_path / "chat_prompts.jsonl")
    recipe = _recipe("rloo")
    script_args, training_args, model_args, reward_args = _parse(
        recipe, "rloo_smoke.yaml", tmp_path, "--dataset_name", str(data), "--shuffle_dataset", "false",
        "--model_name_or_path", str(chat_policy_dir),
    )
    trainer = recipe.main(script_args, training_args, model_args, reward_args)
    _check_trainer_run(trainer, bad)


def test_online_dpo_smoke_recipe_with_pairwise_reward(tiny_model_dir, tmp_path, monkeypatch):
    recipe = _recipe("online_dpo")
    seen: list[tuple[list, list[str]]] = []

    real_build = recipe.build_reward

    def build(args, layout="group"):
        reward = real_build(args, layout=layout)

        class Recording(type(reward)):  # the layout's class (OnlineDPOPairwiseReward), recording its calls
            def __call__(self, prompts=None, completions=(), completion_ids=None, **kwargs):
                seen.append((list(prompts), sorted(kwargs)))
                return super().__call__(prompts, completions, completion_ids, **kwargs)

        reward.__class__ = Recording
        return reward

    monkeypatch.setattr(recipe, "build_reward", build)
    script_args, training_args, model_args, reward_args = _parse(recipe, "online_dpo_smoke.yaml", tmp_path)
    trainer = recipe.main(script_args, training_args, model_args, reward_args)
    reward = trainer.reward_funcs[0]
    assert isinstance(reward, PairwiseReward) and reward.layout == "online_dpo"
    assert len(seen) == 2
    for prompts, columns in seen:
        half = len(prompts) // 2
        assert len(prompts) == 2 * training_args.per_device_train_batch_size and prompts[:half] == prompts[half:]
        assert "rubric" in columns and "trainer_state" in columns
    assert len(_logged(trainer, "objective/scores_margin")) == 2
    prefs = reward.last_preferences
    assert len(prefs) == 4 and all(p is not None and len(p.votes) == 2 for p in prefs)
    assert reward.last_stats["unscorable_frac"] == 0.0


@pytest.mark.parametrize("recipe_name,config", [("grpo", "grpo_gpu.yaml"), ("rloo", "rloo_gpu.yaml"), ("online_dpo", "online_dpo_gpu.yaml")])
def test_gpu_configs_parse_into_the_recipe_dataclasses(recipe_name, config):
    """The GPU configs cannot run here, but every key must be a field the recipe knows."""
    recipe = _recipe(recipe_name)
    script_args, training_args, model_args, reward_args = recipe.make_parser().parse_args_and_config(
        args=["--config", str(REPO / "configs" / config), "--bf16", "false"]  # no bf16 device here
    )
    assert model_args.model_name_or_path == "Qwen/Qwen2.5-1.5B-Instruct"
    assert reward_args.judge_model == "prometheus-eval/prometheus-7b-v2.0" and reward_args.judge_device_map == "cuda:1"
