#!/usr/bin/env bash
# The main job on the embedded default model: installs what it needs, then runs `seccrm demo`
# (build an org and suite, evaluate the base model, warm up the format, train with SEC, evaluate,
# write a report). Extra arguments go to `seccrm demo`, e.g. `scripts/demo.sh --out runs/mine`.
set -euo pipefail
cd "$(dirname "$0")/.."
# Idle OpenMP threads sleep instead of spinning: on a busy machine spinning makes torch several times slower.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
bash scripts/bootstrap.sh
exec .venv/bin/seccrm demo "$@"
