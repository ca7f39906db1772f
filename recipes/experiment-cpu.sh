#!/usr/bin/env bash
# The curriculum comparison on a CPU (the `cpu-exp` preset): the embedded SmolLM2-135M-Instruct, one
# shared format warm-up, SEC, uniform and learnability over 5 seeds, then the report. Rerun to resume.
#   OUT    experiment directory (default runs/experiment-cpu)
#   DATA   suite directory, built here when missing (default runs/experiment-data)
# Extra arguments go to `seccrm experiment`, e.g. `--curricula sec,uniform,easy2hard --seeds 0,1`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
OUT=${OUT:-runs/experiment-cpu}
DATA=${DATA:-runs/experiment-data}
if [ ! -f "$DATA/test.jsonl" ]; then
  .venv/bin/seccrm build --out "$DATA" --seed 0 --size small --train-per-task 180 --test-per-task 48
fi
start=$(date +%s)
.venv/bin/seccrm experiment --data "$DATA" --model smollm2 --out "$OUT" --preset cpu-exp "$@"
.venv/bin/seccrm report "$OUT"
echo "[experiment-cpu] $(( ($(date +%s) - start) / 60 )) min; report: $OUT/report.md" >&2
