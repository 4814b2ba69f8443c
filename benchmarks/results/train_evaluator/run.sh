#!/usr/bin/env bash
# Measured run: fine-tune the embedded Gemma-3-270M (LoRA) on MT-Bench GPT-4 judgments, then
# meta-evaluate it on Vicuna (first 40 rows) before and after. CPU, 2 cores. (The recorded run
# overlapped the 'before' meta-eval with training, one thread each, to fit the task's time.)
# Usage: bash benchmarks/results/train_evaluator/run.sh /path/to/benchmarks-folder WORK_DIR
# A step whose output is already in WORK_DIR is kept (rerun after an interruption); each step's
# wall time goes to WORK_DIR/seconds_<step>.
set -euo pipefail
DATA=${1:?folder holding mt_bench_eval.json and vicuna_eval.json}
WORK=${2:?scratch folder for the adapter and raw outputs}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
PYTHON=${PYTHON:-python}
MAX_LENGTH=896
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$WORK"
META=(--benchmark vicuna --data "$DATA/vicuna_eval.json" --limit 40 --samples 1 --mode expected
      --max-new-tokens 192 --seed 0 --dtype float32 --bootstrap 1000 --no-plots)

step() {  # step NAME DONE_FILE COMMAND...
  local name=$1 done=$2; shift 2
  if [ -e "$done" ]; then echo "== $name: kept ($done exists)"; return; fi
  local t0; t0=$(date +%s)
  "$@"
  echo $(( $(date +%s) - t0 )) > "$WORK/seconds_$name"
}

step prepare "$WORK/prepare.json" bash -c "\"$PYTHON\" \"$HERE/prepare_mt_bench.py\" \"$DATA/mt_bench_eval.json\" \
  \"$WORK/mt_bench_train.jsonl\" --max-length $MAX_LENGTH > \"$WORK/prepare.json.tmp\" && mv \"$WORK/prepare.json.tmp\" \"$WORK/prepare.json\""
step meta_eval_before "$WORK/before/results.json" \
  "$PYTHON" -m prometheus_reward.cli meta-eval "${META[@]}" --model embedded --output-dir "$WORK/before"
step train "$WORK/adapter/evaluator_training.json" \
  "$PYTHON" "$REPO/recipes/train_evaluator.py" --config "$HERE/train_mt_bench.yaml" \
  --datasets "$WORK/mt_bench_train.jsonl" --max_length $MAX_LENGTH --output_dir "$WORK/adapter"
step meta_eval_after "$WORK/after/results.json" \
  "$PYTHON" -m prometheus_reward.cli meta-eval "${META[@]}" --model embedded --adapter "$WORK/adapter" \
  --output-dir "$WORK/after"
