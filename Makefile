# The two newcomer commands: `make demo` (set up, grade the bundled example with the embedded
# Gemma-3-270M, print the summary) and `make test` (set up for tests, run the test suite).
# `make test PYTEST_ARGS="tests/test_parsing.py -x"` runs a part of it.
VENV := .venv
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
PYTEST_ARGS ?=

.PHONY: setup setup-test demo test
setup:       # the package and what it needs to run
	bash scripts/setup.sh

setup-test:  # + test extras, and the test-only engine wheels in .test-deps (outside the venv)
	bash scripts/setup.sh --test

demo: setup
	$(VENV)/bin/prometheus-reward grade examples/grade_demo.jsonl -o outputs/demo_grades.jsonl \
		--model embedded --rubric configs/rubrics/child_readability.yaml \
		--mode expected --max-new-tokens 32 --batch-size 4 --seed 0

# PROMETHEUS_REWARD_REQUIRE_TEST_DEPS: a missing test-only wheel fails the run instead of letting
# a test fall back to a weaker check.
test: setup-test
	PROMETHEUS_REWARD_REQUIRE_TEST_DEPS=1 $(VENV)/bin/python -m pytest $(PYTEST_ARGS)
