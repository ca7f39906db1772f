#!/usr/bin/env bash
# The test command: installs what it needs (scripts/bootstrap.sh), then runs the test suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k curriculum`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest -q "$@"
