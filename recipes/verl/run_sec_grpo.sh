#!/usr/bin/env bash
# The report's SEC + GRPO run on VERL (config: recipes/verl/config/sec_grpo.yaml), then the merge of
# VERL's sharded checkpoint into a Hugging Face folder that `seccrm eval` scores.
#
#   bash recipes/verl/run_sec_grpo.sh                # train (1 node, 2 GPUs)
#   bash recipes/verl/run_sec_grpo.sh merge [STEP]    # merge global_step_STEP (default: the latest)
#
# Needs a VERL environment with vLLM (see docs/verl.md) and the data exported with
#   seccrm build --out data/full --size full && seccrm export verl --data data/full --out data/verl
#
# Variables (environment) and what to change for more nodes:
#   DATA=data/verl        the export folder (train/val .parquet and org.sqlite), on every node
#   MODEL=Qwen/Qwen2.5-3B-Instruct   a hub id or a local folder
#   OUT=runs/verl-sec     checkpoints (OUT/global_step_N/actor) and the merged model (OUT/merged)
#   NNODES=1              nodes in the Ray cluster: start Ray on each (ray start --head / --address)
#                         and run this script on the head node only
#   GPUS_PER_NODE=2       GPUs per node; the FSDP actor spans NNODES * GPUS_PER_NODE GPUs
#   TP=2                  vLLM tensor parallel size (must divide GPUS_PER_NODE)
#   STEPS=                total training steps (default: one epoch of the training split)
#   ENTRY=seccrm          seccrm: python -m seccrm.integrations.verl.main (VERL >= 0.7)
#                         verl:   python -m verl.trainer.main_ppo (VERL 0.7 only: its own sampler hook;
#                                 0.5-0.6 also have the hook but name the reward keys differently)
# Any further arguments are Hydra overrides, e.g. data.train_batch_size=512 trainer.logger=[console,wandb].
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=$(realpath -m "${DATA:-data/verl}")   # absolute: Ray workers do not share this shell's directory
MODEL=${MODEL:-Qwen/Qwen2.5-3B-Instruct}
OUT=$(realpath -m "${OUT:-runs/verl-sec}")
NNODES=${NNODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-2}
TP=${TP:-2}
STEPS=${STEPS:-}
ENTRY=${ENTRY:-seccrm}

if [ "${1:-}" = "merge" ]; then
  step=${2:-$(cat "$OUT/latest_checkpointed_iteration.txt")}
  python -m verl.model_merger merge --backend fsdp \
    --local_dir "$OUT/global_step_${step}/actor" --target_dir "$OUT/merged"
  echo "merged -> $OUT/merged; score it with:"
  echo "  seccrm eval --data <suite dir> --model $OUT/merged --split test --out $OUT/eval_test.json"
  exit 0
fi

for f in train.parquet val.parquet org.sqlite; do
  [ -f "$DATA/$f" ] || { echo "missing $DATA/$f: run seccrm export verl --data <suite> --out $DATA" >&2; exit 2; }
done
REWARD=$(python -c 'import seccrm.integrations.verl.reward as m; print(m.__file__)')
case "$ENTRY" in
  seccrm) MAIN=seccrm.integrations.verl.main ;;
  verl) MAIN=verl.trainer.main_ppo ;;
  *) echo "ENTRY must be seccrm or verl, got $ENTRY" >&2; exit 2 ;;
esac
args=(
  --config-path "$PWD/recipes/verl/config" --config-name sec_grpo
  data.train_files="$DATA/train.parquet"
  data.val_files="$DATA/val.parquet"
  actor_rollout_ref.model.path="$MODEL"
  actor_rollout_ref.rollout.tensor_model_parallel_size="$TP"
  reward.custom_reward_function.path="$REWARD"
  trainer.nnodes="$NNODES"
  trainer.n_gpus_per_node="$GPUS_PER_NODE"
  trainer.default_local_dir="$OUT"
  ++data.sampler.metrics_path="$OUT/curriculum.jsonl"
)
[ -n "$STEPS" ] && args+=(trainer.total_training_steps="$STEPS")
mkdir -p "$OUT"
python -m "$MAIN" "${args[@]}" "$@"
