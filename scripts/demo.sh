#!/usr/bin/env bash
# The main job on the embedded default model: installs what it needs, then runs `seccrm demo`
# (build an org and suite, evaluate the base model, warm up the format, train with SEC, evaluate,
# write a report). Extra arguments go to `seccrm demo`, e.g. `scripts/demo.sh --out runs/mine`.
set -euo pipefail
cd "$(dirname "$0")/.."
# How idle OpenMP threads wait is chosen from the machine's load by `seccrm` itself (seccrm/engine/openmp.py).
bash scripts/bootstrap.sh
exec .venv/bin/seccrm demo "$@"
