"""The ``seccrm`` command. Each command is one thin file in ``seccrm/cli/`` that parses its flags and
calls the library; this file wires them together and is the only place that turns an error into an
exit status: a `seccrm.errors.UserError` is printed on one line (exit 2), Ctrl-C exits 130.

A command file defines ``register_cli(subparsers)``, which adds its subcommand(s) with
``set_defaults(func=...)``; ``func(args) -> int`` is the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from seccrm.errors import UserError

# Command files, in the order `seccrm --help` lists them.
COMMAND_MODULES = (
    "seccrm.cli.suite",       # build, check, score, tasks
    "seccrm.cli.warmup",      # warmup
    "seccrm.cli.train",       # train
    "seccrm.cli.eval",        # eval
    "seccrm.cli.demo",        # demo (the main job)
    "seccrm.cli.experiment",  # experiment
    "seccrm.cli.report",      # report
    "seccrm.cli.export",      # export
    "seccrm.cli.imports",     # import
    "seccrm.cli.play",        # play
)

CLIError = UserError  # the name this error had before it moved to seccrm.errors

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
        from seccrm.engine import openmp
        openmp.configure()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"seccrm {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nseccrm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
