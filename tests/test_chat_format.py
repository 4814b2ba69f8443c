"""The evaluator's chat format comes from the model (architecture and chat template), not its
name: tiny local models of the Mistral, Llama and Qwen2 architectures, in folders whose names say
nothing (or mislead), loaded the way a judge loads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from prometheus_reward import Judge
from prometheus_reward.templates import ABS_SYSTEM_PROMPT, PROMETHEUS_1_SYSTEM_PROMPT, detect_family

# Chat templates in the style of each family (written for these tests).
MISTRAL_STRICT = (  # Mistral-Instruct v0.2 style: no system role
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% elif m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
    "{% else %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}"
)
MISTRAL_FOLDING = (  # a later Mistral style: a system turn folded in front of the first user turn
    "{{ bos_token }}{% set ns = namespace(sys='') %}{% for m in messages %}{% if m['role'] == 'system' %}"
    "{% set ns.sys = m['content'] + '\\n\\n' %}{% elif m['role'] == 'user' %}{{ '[INST] ' + ns.sys + m['content'] + ' [/INST]' }}"
    "{% set ns.sys = '' %}{% else %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}"
)
CHATML = (  # Qwen2 style, with a system role
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _tiny(tmp_path: Path, tiny_model_dir: Path, name: str, model_type: str, template: str | None) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = template
    size = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                vocab_size=len(tokenizer), max_position_embeddings=4096, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    config = AutoConfig.for_model(model_type, **size)
    torch.manual_seed(0)
    folder = tmp_path / name
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("folder,model_type,template,family", [
    ("my-judge", "mistral", MISTRAL_STRICT, "prometheus-2"),          # not named prometheus: still its format
    ("my-judge-v3", "mistral", MISTRAL_FOLDING, "prometheus-2"),      # a template with system turns: same bytes
    ("prometheus-13b-v1.0", "llama", None, "prometheus-1"),
    ("plain-llama", "llama", None, "prometheus-1"),
    ("m-prometheus-7b", "qwen2", CHATML, "auto"),                     # M-Prometheus is Qwen2.5: its own template
])
def test_format_follows_the_architecture_and_template(tmp_path, tiny_model_dir, folder, model_type, template, family):
    path = _tiny(tmp_path, tiny_model_dir, folder, model_type, template)
    judge = Judge.from_pretrained(str(path), dtype="float32", min_score_mass=0.0)
    assert judge.backend.family == family
    (prompt, _), = judge.absolute_prompts(["Say hi."], ["Hello!"], "helpfulness")
    bos = judge.backend.tokenizer.bos_token
    if family == "prometheus-2":
        # Prometheus 2: the system prompt in front of the user turn, byte for byte, in [INST] ... [/INST]
        assert prompt.startswith(bos + "[INST] " + ABS_SYSTEM_PROMPT + "\n\n###Task Description:")
        assert prompt.endswith("###Feedback:  [/INST]")
    elif family == "prometheus-1":
        assert prompt.startswith(f"[INST] <<SYS>>\n{PROMETHEUS_1_SYSTEM_PROMPT}\n<</SYS>>\n\n###Task Description:")
    else:
        assert prompt.startswith("<|im_start|>system\n" + ABS_SYSTEM_PROMPT + "<|im_end|>\n<|im_start|>user\n###Task")
    # the judge grades with that format end to end
    assert judge.grade(["Say hi."], ["Hello!"], "helpfulness", mode="direct")[0].expected is not None


def test_without_a_model_to_inspect_the_name_is_the_last_resort(tiny_model_dir):
    from transformers import AutoTokenizer

    assert detect_family("prometheus-eval/prometheus-7b-v2.0") == "prometheus-2"
    assert detect_family("prometheus-eval/prometheus-13b-v1.0") == "prometheus-1"
    assert detect_family("/cache/prometheus_reward/my-judge") == "auto"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = MISTRAL_STRICT
    assert detect_family("served-name", tokenizer) == "prometheus-2"  # a template without a system role
    tokenizer.chat_template = CHATML
    assert detect_family("prometheus-eval/prometheus-7b-v2.0", tokenizer) == "auto"  # the tokenizer wins
