"""`seccrm import`: bring an outside benchmark's files into a seccrm suite folder."""

from __future__ import annotations

import argparse

from seccrm.cli.common import finite_in
from seccrm.data.importers.crmarena_pro import ImportError_, import_crmarena_pro
from seccrm.errors import UserError


def cmd_import_crmarena_pro(args: argparse.Namespace) -> int:
    try:
        m = import_crmarena_pro(args.tasks, args.org, args.out, split_name=args.split_name,
                                train_share=args.train_share)
    except (FileNotFoundError, ImportError_, ValueError) as e:
        raise UserError(str(e)) from e
    for split, counts in m["counts"].items():
        print(f"{split:5s} {sum(counts.values()):5d} rows  " + ", ".join(f"{t} {n}" for t, n in counts.items()))
    print(f"org   {m['org_file']['path']} (sha256 {m['org_file']['sha256'][:12]})")
    print(f"suite {args.out}: evaluate with `seccrm eval --mode agentic --data {args.out} ...`")
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    imp = sub.add_parser("import", help="import an outside benchmark's files (CRMArena-Pro) as a suite")
    targets = imp.add_subparsers(dest="source", metavar="SOURCE")
    p = targets.add_parser(
        "crmarena-pro", help="CRMArena-Pro task rows and org (your local copies)",
        description="Turn CRMArena-Pro task rows (JSON list, JSONL or Parquet of {idx, query, answer, task, "
        "persona, metadata, reward_metric}) and its org SQLite file into a suite folder of agentic "
        "instances, graded without an LLM (docs/crmarena-pro.md). The files stay where they are; the "
        "suite records their paths and sha256.")
    p.add_argument("--tasks", required=True, help="task rows, e.g. b2b.json saved from Salesforce/CRMArenaPro")
    p.add_argument("--org", required=True, help="the org SQLite file, e.g. crmarenapro_b2b_data.db")
    p.add_argument("--out", required=True, help="suite folder to write")
    p.add_argument("--split-name", default=None, help="name used in instance ids (default: the task file's stem)")
    p.add_argument("--train-share", type=finite_in(0.0, 0.99), default=0.0,
                   help="share of each task's rows for training (default 0: every row is a test row)")
    p.set_defaults(func=cmd_import_crmarena_pro)
    imp.set_defaults(func=lambda args: imp.print_help() or 2)
