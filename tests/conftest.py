"""Shared fixtures: real models built or converted once per machine, loaded once per session.

- ``tiny_model_dir`` / ``tiny_judge``: a 2-layer random Gemma3 with Gemma's real tokenizer
  (fast; outputs are noise, which is what the unit tests need).
- ``upstream``: a scripted OpenAI-compatible server on loopback (``test_openai_backend``'s).
- ``gemma_judge``: the real Gemma-3-270M from the PyPI package (converted once and cached
  under $PROMETHEUS_REWARD_HOME; about a minute the first time, a second after).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
BENCHMARK_DATA = REPO / "tests" / "fixtures" / "benchmarks"

# Test-only wheels installed with --no-deps outside the venv (scripts/setup.sh --test), so that
# their conflicting declared dependencies never reach the venv. Appended: the venv's packages win.
TEST_DEPS = REPO / ".test-deps"
TEST_ONLY_MODULES = ("prometheus_eval", "openrlhf", "verl", "pylatexenc", "aiohttp")
if TEST_DEPS.is_dir() and str(TEST_DEPS) not in sys.path:
    sys.path.append(str(TEST_DEPS))
# Set by `make test`: the engine-loader tests must run the engines' own code, never a fallback.
REQUIRE_TEST_DEPS = os.environ.get("PROMETHEUS_REWARD_REQUIRE_TEST_DEPS") == "1"


def pytest_configure(config):
    if REQUIRE_TEST_DEPS:
        missing = [name for name in TEST_ONLY_MODULES if importlib.util.find_spec(name) is None]
        if missing:
            raise pytest.UsageError(
                f"test-only packages missing: {', '.join(missing)} (not in the venv nor in {TEST_DEPS}); "
                "run scripts/setup.sh --test (make test does)")


@pytest.fixture(scope="session")
def weaker_check():
    """Call ``weaker_check(reason)`` where a test is about to fall back to a weaker check because
    an engine's code is not importable: under ``make test`` that fails the test, elsewhere it
    lets the fallback run."""

    def fallback(reason: str) -> None:
        if REQUIRE_TEST_DEPS:
            pytest.fail(f"{reason}; make test requires the engines' own code (scripts/setup.sh --test)")

    return fallback


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

    # random weights put about 2e-5 of their probability on the score tokens: accept any mass here
    return Judge.from_pretrained(str(tiny_model_dir), dtype="float32", seed=0, min_score_mass=0.0)


@pytest.fixture(scope="session")
def gemma_judge(embedded_dir):
    from prometheus_reward import Judge

    return Judge.from_pretrained("embedded", dtype="float32", seed=0)


@pytest.fixture(scope="session")
def prometheus_eval_prompts():
    """prometheus-eval 0.1.20's prompts.py, loaded by file path (its package __init__ imports
    fastchat, which the reference wheel is installed without)."""
    spec = importlib.util.find_spec("prometheus_eval")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the reference wheel prometheus-eval==0.1.20 is missing: run scripts/setup.sh --test "
                    "(it goes to .test-deps with --no-deps)")
    path = Path(list(spec.submodule_search_locations)[0]) / "prompts.py"
    module_spec = importlib.util.spec_from_file_location("prometheus_eval_prompts_ref", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture
def upstream():
    """A scripted OpenAI-compatible server on loopback: (its script, the running server)."""
    from test_openai_backend import Script, ThreadServer, scripted_app  # the fake server lives with its tests

    script = Script()
    server = ThreadServer(scripted_app(script)).start()
    yield script, server
    server.stop()


def with_chat_template(model_dir: Path, target: Path, template: str) -> Path:
    """``target``: the model in ``model_dir`` (its files linked, not copied) with ``template`` as
    its tokenizer's chat template."""
    import json

    for item in Path(model_dir).iterdir():
        if item.name != "tokenizer_config.json":
            (target / item.name).symlink_to(item)
    config = json.loads((Path(model_dir) / "tokenizer_config.json").read_text())
    config["chat_template"] = template
    (target / "tokenizer_config.json").write_text(json.dumps(config))
    return target


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


# -- a scripted evaluator for fast unit tests of the workflows ------------------------------------------------
from prometheus_reward.backends.base import AnswerDistribution, Backend, Generation  # noqa: E402


class ScriptedBackend(Backend):
    """An evaluator backend that answers from a script, for unit tests of the logic around the
    judge (retries, pairing, verdicts, reranking); never proof that a feature works on a model.

    ``replies(prompt, call_index) -> text`` writes the generations; ``probs(prefix, choices) ->
    list | None`` gives the answer distribution after ``prefix`` (``direct`` mode, and the
    ``expected`` mode's reading at the located result). Without ``probs`` there is none."""

    model_id = "scripted"
    context_length = 100_000

    def __init__(self, replies=None, probs=None):
        super().__init__()
        self.replies = replies or (lambda prompt, i: "No verdict.")
        self.probs = probs
        self.calls = 0
        self.prompts: list[str] = []
        self.prefixes: list[str] = []

    def format(self, system, user):
        return f"{system}\n\n{user}"

    def count_tokens(self, texts):
        return [len(t) // 4 for t in texts]

    def truncate(self, text, max_tokens, keep="head"):
        return text[: max_tokens * 4] if keep == "head" else text[-max_tokens * 4 :]

    def generate(self, prompts, sampling, *, choices=None, locate=None, num_samples=1):
        out = []
        for prompt in prompts:
            gens = []
            for _ in range(num_samples):
                self.calls += 1
                self.prompts.append(prompt)
                text = self.replies(prompt, self.calls)
                dist = None
                if choices is not None and locate is not None and self.probs is not None:
                    at = locate(text)
                    if at is not None:
                        dist = self._answer(prompt + text[:at], choices)
                gens.append(Generation(text, dist))
            out.append(gens)
        return out

    def _answer(self, prefix, choices):
        """``probs`` may answer with a list of probabilities (mass 1: a confident evaluator) or an
        AnswerDistribution (to script masses, NaNs...)."""
        value = self.probs(prefix, tuple(choices))
        return value if isinstance(value, AnswerDistribution) or value is None else AnswerDistribution.from_masses(value)

    def read_answers(self, prefixes, choices, lead="[RESULT] "):
        self.prefixes.extend(p + lead for p in prefixes)
        if self.probs is None:
            return [AnswerDistribution.failed("no distribution scripted") for _ in prefixes]
        return [self._answer(p + lead, choices) or AnswerDistribution.failed("none") for p in prefixes]


def quality_of(text: str) -> int:
    """The quality a scripted response declares: 'q4: ...' -> 4 (3 when it declares none)."""
    import re

    found = re.match(r"\s*q([1-5])\b", text)
    return int(found.group(1)) if found else 3


def section(prompt: str, start: str, end: str = "\n\n###") -> str:
    """The text of a rendered template section, e.g. ``###Response A:\\n``."""
    return prompt.split(start, 1)[1].split(end, 1)[0]


class QualityBackend(ScriptedBackend):
    """A scripted evaluator that grades by the quality a response declares ('q1'..'q5'): absolute
    prompts get ``[RESULT] q`` and a distribution peaked at q; relative prompts prefer the higher
    quality (p(A) = 0.9 / 0.1, 0.5 on a tie, whatever the order). For fast unit tests."""

    def __init__(self):
        super().__init__(self._reply, self._probs)

    @staticmethod
    def _pair(prompt: str) -> tuple[int, int]:
        return quality_of(section(prompt, "###Response A:\n")), quality_of(section(prompt, "###Response B:\n"))

    def _reply(self, prompt: str, i: int) -> str:
        if "###Response A:" in prompt:
            a, b = self._pair(prompt)
            return f"Compared. [RESULT] {'A' if a >= b else 'B'}"
        return f"Graded. [RESULT] {quality_of(section(prompt, '###Response to evaluate:' + chr(10)))}"

    def _probs(self, prefix: str, choices: tuple) -> list[float]:
        if choices == ("A", "B"):
            a, b = self._pair(prefix)
            p = 0.5 if a == b else 0.9 if a > b else 0.1
            return [p, 1 - p]
        q = quality_of(section(prefix, "###Response to evaluate:\n"))
        dist = [0.025] * 5
        dist[q - 1] = 0.9
        return dist
