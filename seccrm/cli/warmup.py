"""`seccrm warmup`: the command line of `seccrm.rl.warmup`."""

from __future__ import annotations

import argparse
import sys

import seccrm.rl.warmup as _lib
from seccrm.cli.common import at_least, finite_in
from seccrm.errors import UserError
from seccrm.rl.warmup import run_warmup


def cmd_warmup(args: argparse.Namespace) -> int:
    try:
        path = run_warmup(args.data, args.model, args.out, args.steps, args.batch_size, args.lr, args.seed,
                          args.max_prompt_tokens, args.bf16, check_every=args.check_every,
                          target_format=args.target_format)
    except (ValueError, FileNotFoundError) as e:
        raise UserError(str(e)) from e
    print(f"[seccrm] warmed-up model: {path}", file=sys.stderr)
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("warmup", help="Supervised format warm-up before RL (for models that need it).",
                       description=_lib.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--model", default="smollm2")
    p.add_argument("--out", required=True, help="Folder; the model lands in OUT/model.")
    p.add_argument("--steps", type=at_least(0), default=40)
    p.add_argument("--batch-size", type=at_least(1), default=8)
    p.add_argument("--lr", type=finite_in(0.0, 1.0), default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-prompt-tokens", type=at_least(0), default=0)
    p.add_argument("--check-every", type=at_least(0), default=4,
                   help="Answer a probe of training instances every N steps and stop once the format is learned "
                   "or the answers collapse (0 = run all --steps).")
    p.add_argument("--target-format", type=finite_in(0.0, 1.0), default=0.9, help="Stop once the probe's format rate reaches this.")
    p.add_argument("--bf16", default="auto", choices=("auto", "on", "off"),
                   help="bf16 autocast over float32 weights ('auto': on GPUs and on CPUs with AMX bf16 matrix units).")
    p.set_defaults(func=cmd_warmup)
