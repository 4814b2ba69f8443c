"""Prompts must be byte-identical to prometheus-eval 0.1.20 for the same inputs."""

from __future__ import annotations

import pytest

from prometheus_reward.rubric import PRESETS, Rubric
from prometheus_reward.templates import (
    ABS_SYSTEM_PROMPT,
    PROMETHEUS_1_SYSTEM_PROMPT,
    REL_SYSTEM_PROMPT,
    absolute_prompt,
    detect_family,
    format_chat,
    relative_prompt,
)

TRICKY = [
    ("Explain {braces} and {0} and {{double}}.", "Use {response} literally: {}", "ref {reference_answer}"),
    ("Ünïcödé — 日本語 🚀", "Réponse: ça va ✓", "参考答案"),
    ("", "", ""),
    ("Multi\nline\n\ninstruction", "  leading and trailing spaces  ", "\n"),
]


@pytest.mark.parametrize("instruction,response,reference", TRICKY)
@pytest.mark.parametrize("preset", PRESETS)
def test_absolute_prompt_matches_wheel(prometheus_eval_prompts, instruction, response, reference, preset):
    ref = prometheus_eval_prompts
    rubric_text = ref.load_rubric(preset, "absolute")
    expected_wo = ref.ABSOLUTE_PROMPT_WO_REF.format(instruction=instruction, response=response, rubric=rubric_text)
    expected_ref = ref.ABSOLUTE_PROMPT.format(
        instruction=instruction, response=response, rubric=rubric_text, reference_answer=reference
    )
    assert absolute_prompt(instruction, response, preset) == expected_wo
    assert absolute_prompt(instruction, response, Rubric.preset(preset)) == expected_wo
    assert absolute_prompt(instruction, response, preset, reference) == expected_ref


@pytest.mark.parametrize("instruction,response,reference", TRICKY)
def test_relative_prompt_matches_wheel_variant(prometheus_eval_prompts, instruction, response, reference):
    ref = prometheus_eval_prompts
    for preset in PRESETS:
        rubric_text = ref.load_rubric(preset, "relative")
        expected_wo = ref.RELATIVE_PROMPT_WO_REF.format(
            instruction=instruction, response_A=response, response_B=reference, rubric=rubric_text
        )
        expected_ref = ref.RELATIVE_PROMPT.format(
            instruction=instruction, response_A=response, response_B=reference, rubric=rubric_text,
            reference_answer=instruction,
        )
        variant = "prometheus-eval-0.1.20"
        assert relative_prompt(instruction, response, reference, preset, variant=variant) == expected_wo
        assert relative_prompt(instruction, response, reference, preset, instruction, variant=variant) == expected_ref


def test_custom_rubric_text_and_fields_match_wheel(prometheus_eval_prompts):
    ref = prometheus_eval_prompts
    fields = {
        "criteria": "Is it {short}?",
        "score1_description": "No.",
        "score2_description": "Hardly.",
        "score3_description": "Somewhat.",
        "score4_description": "Mostly.",
        "score5_description": "Yes — très court.",
    }
    rendered = ref.SCORE_RUBRIC_TEMPLATE.format(**fields)
    assert Rubric.from_dict(fields).render() == rendered
    assert Rubric.from_text(rendered).render() == rendered  # parsed back into fields
    free_text = "Grade politeness from 1 (rude) to 5 (gracious)."
    expected = ref.ABSOLUTE_PROMPT_WO_REF.format(instruction="q", response="r", rubric=free_text)
    assert absolute_prompt("q", "r", free_text) == expected


def test_presets_render_exactly_as_wheel(prometheus_eval_prompts):
    for preset in PRESETS:
        assert Rubric.preset(preset).render() == prometheus_eval_prompts.load_rubric(preset, "absolute")
        assert Rubric.preset(preset).render_relative() == prometheus_eval_prompts.load_rubric(preset, "relative")
    assert ABS_SYSTEM_PROMPT == prometheus_eval_prompts.ABS_SYSTEM_PROMPT
    assert REL_SYSTEM_PROMPT == prometheus_eval_prompts.REL_SYSTEM_PROMPT


def test_default_relative_variant_is_prometheus2_wording():
    text = relative_prompt("q", "a", "b", "helpfulness")
    assert "two responses to evaluate (denoted as Response A and Response B)" in text
    assert '[RESULT] (Either "A" or "B")' in text
    assert "###Reference Answer:" not in text
    with_ref = relative_prompt("q", "a", "b", "helpfulness", "gold")
    assert "###Reference Answer:\ngold\n\n###Score Rubric:" in with_ref
    with pytest.raises(ValueError, match="variant"):
        relative_prompt("q", "a", "b", "helpfulness", variant="nope")  # type: ignore[arg-type]


def test_detect_family():
    assert detect_family("prometheus-eval/prometheus-7b-v2.0") == "prometheus-2"
    assert detect_family("prometheus-eval/prometheus-8x7b-v2.0") == "prometheus-2"
    assert detect_family("prometheus-eval/prometheus-13b-v1.0") == "prometheus-1"
    assert detect_family("Qwen/Qwen2.5-7B-Instruct") == "auto"
    assert detect_family("/root/.cache/prometheus_reward/tiny-random-gemma3-s0") == "auto"
    assert detect_family("/models/prometheus-7b-v2.0/") == "prometheus-2"


class _TemplateTokenizer:
    """A real Jinja chat template through transformers' own renderer."""

    def __init__(self, template: str):
        from transformers import PreTrainedTokenizerFast
        from tokenizers import Tokenizer, models

        self._tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>")))
        self._tok.chat_template = template
        self.chat_template = template

    def apply_chat_template(self, *args, **kwargs):
        return self._tok.apply_chat_template(*args, **kwargs)


MISTRAL_LIKE = (
    "{{ '<s>' }}{% for m in messages %}{% if m['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% elif m['role'] == 'user' %}"
    "{{ '[INST] ' + m['content'] + ' [/INST]' }}{% else %}{{ m['content'] + '</s>' }}{% endif %}{% endfor %}"
)
CHATML_LIKE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def test_chat_formats():
    mistral = _TemplateTokenizer(MISTRAL_LIKE)
    assert format_chat("SYS", "USER", "prometheus-2", mistral) == "<s>[INST] SYS\n\nUSER [/INST]"
    assert format_chat("SYS", "USER", "prometheus-2") == "[INST] SYS\n\nUSER [/INST]"
    # "auto" with a template that refuses a system role falls back to merging it into the user turn
    assert format_chat("SYS", "USER", "auto", mistral) == "<s>[INST] SYS\n\nUSER [/INST]"
    chatml = _TemplateTokenizer(CHATML_LIKE)
    assert format_chat("SYS", "USER", "auto", chatml) == (
        "<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nUSER<|im_end|>\n<|im_start|>assistant\n"
    )
    llama2 = format_chat("ignored", "USER", "prometheus-1")
    assert llama2 == f"[INST] <<SYS>>\n{PROMETHEUS_1_SYSTEM_PROMPT}\n<</SYS>>\n\nUSER [/INST]"
    assert format_chat("SYS", "USER", "auto", None) == "SYS\n\nUSER"
    assert format_chat("SYS", "USER", "raw", chatml) == "SYS\n\nUSER"
