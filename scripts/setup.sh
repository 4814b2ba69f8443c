#!/usr/bin/env bash
# Create .venv (if needed) and install prometheus-reward with its test extras.
# CPU machines use constraints-cpu.txt (CPU torch); set PR_CONSTRAINTS= to skip it (e.g. on GPUs).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
CONSTRAINTS=${PR_CONSTRAINTS-constraints-cpu.txt}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
args=()
if [ -n "$CONSTRAINTS" ]; then args+=(-c "$CONSTRAINTS"); fi
"${PIP[@]}" install "${args[@]}" -e ".[test]"
# The reference prompts for the byte-identity tests: the wheel alone (its deps pull fastchat/vllm).
"${PIP[@]}" install --no-deps "prometheus-eval==0.1.20"
# Test-only: the PPO engines' own loader code for the adapter tests (OpenRLHF's reward-function
# loader, verl's load_extern_object). --no-deps: their GPU stacks (ray, deepspeed, flash-attn) are not needed.
"${PIP[@]}" install --no-deps "openrlhf==0.11.2" "verl==0.9.1" "pylatexenc==2.11"
"${PIP[@]}" install "aiohttp>=3.9"
