"""The ``seccrm`` command. Each subcommand lives in the module that owns the work; this file only
wires them together. A module joins the CLI by defining ``register_cli(subparsers)``, which adds its
subcommand(s) with ``set_defaults(func=...)``; ``func(args) -> int`` is the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute subcommands, in the order `seccrm --help` lists them.
COMMAND_MODULES = (
    "seccrm.data",        # build, check, score, tasks
    "seccrm.warmup",      # warmup
    "seccrm.trainer",     # train
    "seccrm.evaluate",    # eval
    "seccrm.demo",        # demo (the main job)
    "seccrm.experiment",  # experiment
    "seccrm.report",      # report
    "seccrm.integrations.verl.export",  # export
)


class CLIError(Exception):
    """An error the user can fix; printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seccrm",
        description="Self-Evolving Curriculum + GRPO for CRM tasks. Build an org and its task suite, "
        "train a model with a curriculum that picks what to practise next, evaluate it, and report.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and (e.name == name or name.startswith(e.name + ".")):
                continue  # that part of the tool is not installed in this checkout
            raise
        module.register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    if "torch" not in sys.modules:   # the OpenMP wait policy only counts before torch loads
        from seccrm import openmp
        openmp.configure()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CLIError as e:
        print(f"seccrm {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nseccrm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
