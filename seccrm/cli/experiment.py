"""`seccrm experiment`: the command line of `seccrm.experiments.compare`."""

from __future__ import annotations

import argparse

import seccrm.experiments.compare as _lib
from seccrm.cli.common import at_least, csv_of, train_sets
from seccrm.data import suite_mode
from seccrm.errors import UserError
from seccrm.experiments.compare import WARMUP_FORMAT_THRESHOLD, make_plan, run_experiment
from seccrm.experiments.presets import ALL_CURRICULA, EXPERIMENT_PRESETS
from seccrm.rl.checkpoint import CheckpointError


def cmd_experiment(args: argparse.Namespace) -> int:

    warm = args.warmup_steps if args.warmup_steps in (None, "auto") else int(args.warmup_steps)
    try:
        if args.mode != "auto" and args.mode != suite_mode(args.data):
            raise ValueError(f"{args.data} is a {suite_mode(args.data)} suite; build one with "
                             f"`seccrm build --mode {args.mode}` for a {args.mode} experiment")
        plan = make_plan(args.data, args.model, args.out, preset=args.preset, curricula=args.curricula,
                         seeds=args.seeds, steps=args.steps, warmup_steps=warm, eval_val=args.eval_val,
                         eval_test=args.eval_test, eval_max_prompt_tokens=args.eval_max_prompt_tokens,
                         train_overrides={**train_sets(args.train),
                                          **{k: v for k in ("max_prompt_tokens", "prompts_per_step")
                                             if (v := getattr(args, k)) is not None}})
        run_experiment(plan)
    except (ValueError, FileNotFoundError, CheckpointError) as e:
        raise UserError(str(e)) from e
    print(args.out)
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("experiment", help="Compare curricula: every curriculum x seed from one start, evaluated.",
                       description=_lib.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="Suite directory from `seccrm build`.")
    p.add_argument("--model", default="smollm2", help="'smollm2', 'tiny' (tests) or a local HF folder.")
    p.add_argument("--mode", choices=("auto", "single", "agentic"), default="auto",
                   help="The suite decides: a suite built with --mode agentic gives an agentic experiment "
                   "(training and evaluation on episodes). Naming a mode checks that the suite has it.")
    p.add_argument("--out", required=True, help="Experiment directory. Rerun the same command to resume.")
    p.add_argument("--preset", choices=sorted(EXPERIMENT_PRESETS), default="cpu-exp",
                   help="Budget: cpu-exp (SmolLM2 on a 2-core CPU, about 3 h for its 15 runs), gpu-exp (one GPU) "
                   "or demo (the main job's recipe: SEC, one seed). Default cpu-exp.")
    p.add_argument("--curricula", type=csv_of(str), default=None,
                   help=f"Comma-separated, from {','.join(ALL_CURRICULA)} (default: the preset's).")
    p.add_argument("--seeds", type=csv_of(int), default=None, help="Comma-separated seeds (default: the preset's; cpu-exp 0-4, gpu-exp 0-2).")
    p.add_argument("--steps", type=at_least(1), default=None, help="GRPO steps of every run (default: the preset's).")
    p.add_argument("--warmup-steps", default=None,
                   help="Format warm-up steps; 0 skips it; 'auto' (default) runs the preset's number of "
                   f"steps when the base model's validation format rate is below {WARMUP_FORMAT_THRESHOLD}.")
    p.add_argument("--eval-val", type=at_least(0), default=None, help="Validation instances per evaluation.")
    p.add_argument("--eval-test", type=at_least(0), default=None, help="Test instances per evaluation.")
    p.add_argument("--eval-max-prompt-tokens", type=at_least(0), default=None,
                   help="Evaluate only instances whose prompt fits this many tokens (0 = all; default: the preset's).")
    p.add_argument("--max-prompt-tokens", type=at_least(0), default=None,
                   help="Train only on instances whose prompt fits (0 = all; default: the preset's).")
    p.add_argument("--prompts-per-step", type=at_least(1), default=None, help="Prompts per GRPO step (default: the preset's).")
    p.add_argument("--train", action="append", default=[], metavar="KEY=VALUE",
                   help="Any other training setting for every run, e.g. --train lr=3e-5 (repeatable).")
    p.set_defaults(func=cmd_experiment)
