#!/usr/bin/env bash
# Create .venv (if needed) and install prometheus-reward into it.
#   scripts/setup.sh          the package and what it needs to run (make demo)
#   scripts/setup.sh --test   also the test extras, the test-only wheels in .test-deps, and .venv-vllm
#                             for the vLLM engine's tests (scripts/setup-vllm.sh; PR_VLLM=0 skips it) (make test)
# CPU machines use constraints-cpu.txt (CPU torch); set PR_CONSTRAINTS= to skip it (e.g. on GPUs).
# A run with the same pyproject.toml, constraints and mode as the last one does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=runtime
case "${1:-}" in
  "") ;;
  --test) MODE=test ;;
  *) echo "usage: scripts/setup.sh [--test]" >&2; exit 2 ;;
esac
PYTHON=${PYTHON:-python3}
CONSTRAINTS=${PR_CONSTRAINTS-constraints-cpu.txt}
# The engine wheels only the tests use. --no-deps, and outside the venv: their declared dependencies
# (ray, deepspeed, flash-attn, vllm, fastchat, other transformers pins) are neither needed nor
# compatible, and the venv stays `pip check`-clean. tests/conftest.py puts .test-deps on sys.path.
#   prometheus-eval: its prompts.py is the reference of the byte-identity template tests;
#   openrlhf, verl: their own reward-function loaders drive the adapter tests; pylatexenc: openrlhf imports it.
TEST_WHEELS=("prometheus-eval==0.1.20" "openrlhf==0.11.2" "verl==0.9.1" "pylatexenc==2.11")

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
args=()
if [ -n "$CONSTRAINTS" ]; then args+=(-c "$CONSTRAINTS"); fi

stamp_of() {  # what an install depends on: the project's requirements, the constraints, the mode
  { cat pyproject.toml; [ -z "$CONSTRAINTS" ] || cat "$CONSTRAINTS"; echo "$1 ${TEST_WHEELS[*]}"; } | sha256sum | cut -d' ' -f1
}
up_to_date() {  # the test install includes the runtime one
  [ -f ".venv/.prometheus-reward-$1" ] && [ "$(cat ".venv/.prometheus-reward-$1")" = "$(stamp_of "$1")" ] \
    && { [ "$1" = runtime ] || [ -f .test-deps/.installed ]; }
}
vllm_env() {  # test mode: the vLLM tests' own venv (its pins differ from .venv's)
  if [ "$MODE" = test ] && [ "${PR_VLLM:-1}" != 0 ]; then bash scripts/setup-vllm.sh; fi
}
if up_to_date "$MODE" || { [ "$MODE" = runtime ] && up_to_date test; }; then
  echo "setup ($MODE): .venv is up to date"
  vllm_env
  exit 0
fi

if [ "$MODE" = runtime ]; then
  "${PIP[@]}" install "${args[@]}" -e .
else
  "${PIP[@]}" install "${args[@]}" -e ".[test]"
  rm -rf .test-deps  # --target does not replace what is there; start clean
  "${PIP[@]}" install --no-deps --target .test-deps "${TEST_WHEELS[@]}"
  printf '%s\n' "${TEST_WHEELS[@]}" > .test-deps/.installed
fi
stamp_of "$MODE" > ".venv/.prometheus-reward-$MODE"
echo "setup ($MODE): done"
vllm_env
