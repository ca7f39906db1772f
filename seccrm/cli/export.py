"""`seccrm export`: the command line of `seccrm.integrations.verl.export`."""

from __future__ import annotations

import argparse
from pathlib import Path

from seccrm.errors import UserError
from seccrm.integrations.verl.export import export_verl


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Add ``seccrm export verl``."""
    export = sub.add_parser("export", help="export a built suite for another trainer (VERL)")
    targets = export.add_subparsers(dest="target", metavar="TARGET")
    p = targets.add_parser("verl", help="train/val/test Parquet in VERL's RL dataset layout",
                           description="Write the train/val/test splits of a built suite (--data) as Parquet files that VERL's "
                           "RLHFDataset loads, plus a copy of the org for the CRUD rewards.")
    p.add_argument("--data", required=True, help="suite directory written by `seccrm build`")
    p.add_argument("--out", required=True, help="output directory for the Parquet files")
    p.add_argument("--org-path", default=None,
                   help="org path to record in the rows (where OUT/org.sqlite will be on the training "
                   "machines); default: the absolute path of OUT/org.sqlite here")
    p.set_defaults(func=_cmd_export_verl)
    export.set_defaults(func=lambda args: export.print_help() or 2)


def _cmd_export_verl(args: argparse.Namespace) -> int:

    try:
        manifest = export_verl(args.data, args.out, org_path=args.org_path)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    for split, info in manifest["splits"].items():
        print(f"{split:5s} {info['rows']:6d} rows -> {Path(args.out) / info['file']}")
    print(f"org   {manifest['org_path']}")
    return 0
