"""The vLLM engine's tests: a real ``vllm.LLM`` on the embedded Gemma-3-270M, one engine per session.

They run in the vLLM test environment (``.venv-vllm``, built by ``scripts/setup.sh --test`` and run
by ``make test`` with ``PROMETHEUS_REWARD_VLLM_TESTS=1``). The main suite does not enter this folder
(``norecursedirs`` in pyproject.toml); run by hand without the variable it collects nothing, and with
the variable set and vLLM missing the run fails instead of skipping. (The folder is not named
``vllm``: pytest puts ``tests/`` on ``sys.path``, where such a folder would pass for the vllm package.)
"""

from __future__ import annotations

import importlib.util
import os

import pytest

RUN_VLLM_TESTS = os.environ.get("PROMETHEUS_REWARD_VLLM_TESTS") == "1"
if not RUN_VLLM_TESTS:
    collect_ignore_glob = ["test_*.py"]
elif importlib.util.find_spec("vllm") is None:
    raise pytest.UsageError("PROMETHEUS_REWARD_VLLM_TESTS=1 but vllm is not installed in this Python "
                            "(run the vLLM tests with .venv-vllm: scripts/setup.sh --test builds it)")

# a small CPU KV cache (GiB): the machine is shared; 2048-token prompts need far less
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
# engine options beyond JudgeConfig's fields travel in model_kwargs; LoRA is on so that the adapter
# test shares this engine (a second engine start costs about a minute here)
ENGINE_KWARGS = dict(max_model_len=2048, in_process=True, enforce_eager=True, enable_lora=True, max_lora_rank=8)


@pytest.fixture(scope="session")
def vllm_backend(embedded_dir):
    from prometheus_reward.backends.vllm import VLLMBackend
    from prometheus_reward.config import JudgeConfig

    backend = VLLMBackend.from_config(JudgeConfig(model="embedded", dtype="float32", seed=0, model_kwargs=ENGINE_KWARGS))
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def hf_backend(embedded_dir):
    """The transformers backend on the same model: the reference the vLLM engine must agree with."""
    from prometheus_reward.backends.transformers import TransformersBackend

    return TransformersBackend.from_pretrained("embedded", dtype="float32", batching="padded")


@pytest.fixture(scope="session")
def vllm_server(embedded_dir, tmp_path_factory):
    """A real ``vllm serve`` on loopback serving the embedded model as ``embedded`` (see vllm_server.py)."""
    from vllm_server import VLLMServe

    server = VLLMServe(embedded_dir, tmp_path_factory.mktemp("vllm-serve")).start()
    yield server
    server.stop()
