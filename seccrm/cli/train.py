"""`seccrm train`: the command line of `seccrm.rl.trainer`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seccrm.errors import UserError
from seccrm.rl.checkpoint import (
    CheckpointError,
    latest_checkpoint,
)
from seccrm.rl.config import add_config_args, config_from_args
from seccrm.rl.trainer import Trainer


# ---------------------------------------------------------------------------------------- CLI
def cmd_train(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
        if not cfg.data or not cfg.out:
            raise ValueError("--data and --out are required")
        trainer = Trainer(cfg)
        trainer.train()
    except (ValueError, FileNotFoundError, CheckpointError) as e:
        raise UserError(str(e)) from e
    print(f"[seccrm] done: {cfg.steps} steps; metrics in {Path(cfg.out) / 'metrics.jsonl'}; "
          f"checkpoint {latest_checkpoint(cfg.out)}", file=sys.stderr)
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("train", help="Train a model with GRPO and a curriculum.",
                       description="Train with GRPO while a curriculum (SEC by default) picks which "
                       "(skill, difficulty) arm each prompt comes from. Writes RUN_DIR/metrics.jsonl (one line "
                       "per step), checkpoints (Hugging Face folders) and config.json. Ctrl-C finishes the step, "
                       "saves a checkpoint and exits; --resume continues exactly.")
    add_config_args(p)
    p.set_defaults(func=cmd_train)
