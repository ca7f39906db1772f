#!/usr/bin/env bash
# The test command: installs what it needs (scripts/bootstrap.sh), then runs the test suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k curriculum`.
set -euo pipefail
cd "$(dirname "$0")/.."
# Idle OpenMP threads sleep instead of spinning: on a busy machine spinning makes torch several times slower.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
bash scripts/bootstrap.sh
# The linter and the type checker first (strict on the RL math and the curriculum: pyproject.toml);
# SECCRM_SKIP_LINT=1 skips them when iterating on one test.
if [ -z "${SECCRM_SKIP_LINT:-}" ]; then
  .venv/bin/ruff check seccrm tests benchmarks
  .venv/bin/mypy seccrm
fi
# One pytest worker per core (pytest-xdist; tests/conftest.py gives each its share of threads):
# the tiny models of the tests keep one core busy, not two. SECCRM_TEST_WORKERS=0 runs in one process.
exec .venv/bin/python -m pytest -q -n "${SECCRM_TEST_WORKERS:-auto}" "$@"
