"""`seccrm demo`: the command line of `seccrm.experiments.demo`."""

from __future__ import annotations

import argparse

import seccrm.experiments.demo as _lib
from seccrm.cli.common import at_least, train_sets
from seccrm.errors import UserError
from seccrm.experiments.demo import run_demo
from seccrm.experiments.presets import EXPERIMENT_PRESETS
from seccrm.rl.checkpoint import CheckpointError

DEMO = EXPERIMENT_PRESETS["demo"]


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        md = run_demo(args.out, model=args.model, seed=args.seed, mode=args.mode, steps=args.steps, warmup_steps=args.warmup_steps,
                      size=args.size, train_per_task=args.train_per_task, eval_val=args.eval_val,
                      eval_test=args.eval_test, bf16=args.bf16, rendering=args.rendering, train_overrides=train_sets(args.train))
    except (ValueError, FileNotFoundError, CheckpointError) as e:
        raise UserError(str(e)) from e
    print(md)
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="The main job on the embedded default model (CPU is enough).",
                       description=_lib.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/demo", help="Run directory (default: runs/demo). Rerun to resume.")
    p.add_argument("--model", default="smollm2", help="Model spec or Hugging Face folder (default: smollm2).")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mode", choices=("single", "agentic"), default="single",
                   help="'single' (default): the records are in the prompt, one answer; 'agentic': the model "
                   "queries the org over several turns (question-only suite, warm-up on the scripted analysts' "
                   "episodes, GRPO on episodes, evaluation by episodes; smaller defaults, see above).")
    p.add_argument("--steps", type=at_least(1), default=None, help=f"GRPO steps (default {DEMO['steps']}; agentic {DEMO['agentic']['steps']}).")
    p.add_argument("--warmup-steps", type=at_least(0), default=None,
                   help=f"Format warm-up steps; 0 skips it (default {DEMO['warmup_steps']}; agentic "
                   f"{DEMO['agentic']['warmup_steps']}).")
    p.add_argument("--size", choices=("tiny", "small", "full"), default=None, help="Org size (default small).")
    p.add_argument("--rendering", choices=("compact", "full"), default=None,
                   help="How prompts show the records: 'compact' (default for single-turn: fewer records and "
                   "shorter texts per level, the same tasks and golds; sized for a laptop CPU) or 'full' (the "
                   "report's prompts, several times longer). Agentic demos are question-only: 'full'.")
    p.add_argument("--train-per-task", type=at_least(1), default=None)
    p.add_argument("--eval-val", type=at_least(0), default=None, help="Validation instances evaluated per stage.")
    p.add_argument("--eval-test", type=at_least(0), default=None, help="Test instances evaluated per stage.")
    p.add_argument("--bf16", choices=("auto", "on", "off"), default=None,
                   help="Precision of every stage: 'on' = float32 weights with bf16 compute and bf16 decoding; "
                   "'off' = float32; 'auto' (default) = 'on' where the CPU has AMX bf16 matrix units.")
    p.add_argument("--train", action="append", default=[], metavar="KEY=VALUE",
                   help="Override a GRPO setting of the demo's recipe, e.g. --train lr=2e-5 (repeatable).")
    p.set_defaults(func=cmd_demo)
