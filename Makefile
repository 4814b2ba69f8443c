# The two newcomer commands: `make demo` (set up, grade the bundled example with the embedded
# Gemma-3-270M, print the summary) and `make test` (set up, run the test suite).
VENV := .venv
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test
setup:
	bash scripts/setup.sh

demo: setup
	$(VENV)/bin/prometheus-reward grade examples/grade_demo.jsonl -o outputs/demo_grades.jsonl \
		--model embedded --rubric configs/rubrics/child_readability.yaml \
		--mode expected --max-new-tokens 32 --batch-size 4 --seed 0

test: setup
	$(VENV)/bin/python -m pytest
