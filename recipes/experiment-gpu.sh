#!/usr/bin/env bash
# The curriculum comparison on one GPU (the `gpu-exp` preset): all 7 curricula x 3 seeds, 100 GRPO
# steps of 64 prompts x 8 completions each, on the full-size default suite, then the report.
#   MODEL  'smollm2' (default) or a local Hugging Face folder, e.g. /models/Qwen2.5-3B-Instruct
#          (models that already write <answer> blocks skip the warm-up: --warmup-steps auto)
#   OUT    experiment directory (default runs/experiment-gpu-<model name>)
#   DATA   suite directory, built here when missing (default runs/experiment-data-full)
# Needs a CUDA build of torch in .venv (SECCRM_TORCH="" scripts/bootstrap.sh keeps one you installed).
# Extra arguments go to `seccrm experiment`, e.g. `--seeds 0 --steps 40` for a first look.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
MODEL=${MODEL:-smollm2}
OUT=${OUT:-runs/experiment-gpu-$(basename "$MODEL")}
DATA=${DATA:-runs/experiment-data-full}
.venv/bin/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible to torch')"
if [ ! -f "$DATA/test.jsonl" ]; then
  .venv/bin/seccrm build --out "$DATA" --seed 0 --size full
fi
start=$(date +%s)
.venv/bin/seccrm experiment --data "$DATA" --model "$MODEL" --out "$OUT" --preset gpu-exp "$@"
.venv/bin/seccrm report "$OUT"
echo "[experiment-gpu] $(( ($(date +%s) - start) / 60 )) min; report: $OUT/report.md" >&2
