"""`seccrm report`: the command line of `seccrm.evaluation.report`."""

from __future__ import annotations

import argparse
from pathlib import Path

from seccrm.errors import UserError
from seccrm.evaluation.report import write_report


def cmd_report(args: argparse.Namespace) -> int:
    try:
        for rd in args.run_dirs:
            out = Path(args.out) / Path(rd).name if args.out and len(args.run_dirs) > 1 else args.out
            print(write_report(rd, out))
    except (FileNotFoundError, ValueError) as e:    # no logs; logs that are not what a run writes
        raise UserError(str(e)) from e
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("report", help="Write a markdown report with tables and plots from run or experiment logs.",
                       description="Reads only logs and evaluation files (eval/*.json, metrics.jsonl, "
                       "runs/*/seed*/eval_*.json) and writes report.md plus PNG figures. A RUN_DIR written by "
                       "`seccrm experiment` gets the curriculum comparison (intervals over seeds, paired tests).")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="Run directories (seccrm demo / train) or "
                   "experiment directories (seccrm experiment).")
    p.add_argument("--out", default=None, help="Output folder (default: each run directory).")
    p.set_defaults(func=cmd_report)
