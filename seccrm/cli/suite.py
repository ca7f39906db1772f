"""``seccrm build``, ``seccrm check``, ``seccrm score`` and ``seccrm tasks``."""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from seccrm.cli.common import at_least
from seccrm.data.baselines import MAX_BASELINE
from seccrm.data.build import build_suite
from seccrm.data.check import baseline_rows, check_suite
from seccrm.data.load import MANIFEST_FILE, verify_suite_files
from seccrm.data.schema import check_rows
from seccrm.errors import UserError
from seccrm.files import read_jsonl, write_text_atomic
from seccrm.world.arms import (
    ALL_TASK_SKILLS,
    DIFFICULTIES,
    HELD_OUT_TASKS,
    OPTIONAL_SKILLS,
    SKILLS,
    TASK_SKILLS,
)
from seccrm.world.rewards import InstanceError, attach_org, score_details
from seccrm.world.tasks import all_tasks
from seccrm.world.tasks.rendering import RENDERINGS


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build an org and its train/val/test task sets",
                       description="Write DIR/org.sqlite, DIR/{train,val,test}.jsonl and .parquet twins, "
                       "and DIR/suite.json; print the counts by task, skill and difficulty.")
    p.add_argument("--out", required=True, help="output directory (created if missing)")
    p.add_argument("--seed", type=int, default=0, help="seed of the org and of every instance (default 0)")
    p.add_argument("--size", choices=("tiny", "small", "full"), default="small", help="org size preset")
    p.add_argument("--train-per-task", type=at_least(0), default=750,
                   help="instances per training task, split 75/25 into train and val (default 750)")
    p.add_argument("--test-per-task", type=at_least(0), default=100, help="instances per held-out task (default 100)")
    p.add_argument("--workers", type=at_least(1), default=None,
                   help="processes generating instances (default: one per CPU, up to 8, for large builds)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--confidentiality", action="store_true",
                   help="also build the optional CONFIDENTIALITY skill (3 tasks, 3 levels: refuse what the "
                   "policy forbids, answer the near misses); off by default so the report's 12 arms stay")
    p.add_argument("--mode", choices=("single", "agentic"), default="single",
                   help="'single' (default): the records a question needs are in its prompt; 'agentic': "
                   "question-only instances (the question and the org's schema, no records) for episodes "
                   "that query the org; same instances, ids, splits and golds as 'single'")
    p.add_argument("--rendering", choices=tuple(RENDERINGS), default="full",
                   help="'full' (default): the report's prompts; 'compact': fewer records per level and "
                   "shorter texts, for small machines (same tasks, levels and golds; single-turn only)")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("check", help="verify a built suite (determinism, gold answers, ids, splits, counts)")
    p.add_argument("dir", help="a directory written by `seccrm build`")
    p.add_argument("--rebuild-per-arm", type=at_least(0), default=1,
                   help="instances per (split, task, difficulty) rebuilt to check determinism (default 1)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("score", help="score completions against a task file",
                       description='Completions file: one {"id": ..., "completion": ...} per line; an id may '
                       "appear several times (several samples). Prints the mean reward and accuracy by task.")
    p.add_argument("--data", required=True, help="a task file, e.g. DIR/test.jsonl (its org is found next to it)")
    p.add_argument("--completions", required=True, help="JSONL of {id, completion}")
    p.add_argument("--details", help="optional JSONL to write each completion's score details to")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("tasks", help="list the 19 tasks (and the 3 optional ones), their answer kinds and what each level changes")
    p.set_defaults(func=cmd_tasks)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    """A plain fixed-width table; numbers right-aligned."""
    cells = [header] + [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(isinstance(r[i], (int, float)) for r in rows) for i in range(len(header))]
    lines = []
    for j, r in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def counts_table(counts: dict[str, dict[str, dict[str, int]]]) -> str:
    """Instance counts by task, then by skill, then in all: per difficulty and per split."""
    splits = list(counts)
    cells: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))   # row -> column -> n
    for split, tasks in counts.items():
        for task, levels in tasks.items():
            for row in (task, ALL_TASK_SKILLS[task], "all"):
                for d, n in levels.items():
                    cells[row][d] += n
                    cells[row][split] += n
    cols = [*DIFFICULTIES, *splits]

    def line(name: str, *label: str) -> list[Any]:
        c = cells[name]
        return [name, *label, *[c[k] for k in cols], sum(c[s] for s in splits)]
    present = [t for t in ALL_TASK_SKILLS if t in cells]
    return "\n\n".join([
        _table(["task", "skill", *cols, "total"], [line(t, ALL_TASK_SKILLS[t]) for t in present]),
        _table(["skill", *cols, "total"], [line(s) for s in (*SKILLS, *OPTIONAL_SKILLS) if s in cells] + [line("all")]),
    ])


def prompts_summary(manifest: dict[str, Any]) -> str:
    """Distinct prompts in all, then a table of the (task, level) pools that repeat some prompts.

    A pool's distinct prompts are the sum over splits, since the builder never puts a prompt in two.
    """
    counts, distinct = manifest["counts"], manifest.get("distinct", {})
    short = manifest.get("val_short", {})
    rows, n_all, k_all = [], 0, 0
    for task in ALL_TASK_SKILLS:
        for d in DIFFICULTIES:
            per = {s: (counts[s][task][d], distinct[s][task][d]) for s in counts if task in counts[s]}
            n, k = sum(c for c, _ in per.values()), sum(c for _, c in per.values())
            n_all, k_all = n_all + n, k_all + k
            if k < n:
                rows.append([task, d, n, k, *[f"{per[s][1]} of {per[s][0]}" if s in per else "-"
                                              for s in ("train", "val", "test")],
                             manifest.get("redraws", {}).get(task, {}).get(d, 0),
                             short.get(task, {}).get(d, 0)])
    total = (f"distinct prompts: {k_all:,} of {n_all:,} instances (no prompt in two splits), "
             f"{sum(v for t in manifest.get('redraws', {}).values() for v in t.values()):,} redraws")
    if not rows:
        return total
    head = ["task", "level", "instances", "distinct", "train", "val", "test", "redraws", "val_short"]
    return (f"{total}\nrepeated prompts kept where the task has too few distinct questions at this org "
            f"size (after up to {manifest.get('max_redraws')} redraws per instance):\n\n" + _table(head, rows))


def cmd_build(args: argparse.Namespace) -> int:

    if args.train_per_task < 0 or args.test_per_task < 0:
        raise UserError("--train-per-task and --test-per-task must be >= 0")
    t0 = time.perf_counter()
    try:
        manifest = build_suite(args.out, seed=args.seed, size=args.size, train_per_task=args.train_per_task,
                               test_per_task=args.test_per_task, progress=not args.no_progress,
                               workers=args.workers,
                               optional_skills=("CONFIDENTIALITY",) if args.confidentiality else (),
                               mode=args.mode, rendering=args.rendering)
    except ValueError as e:
        raise UserError(str(e)) from e
    print(counts_table(manifest["counts"]))
    print("\n" + prompts_summary(manifest))
    if manifest.get("mode") == "agentic":
        d = manifest["agentic_dropped"]
        print(f"\nagentic: {d['duplicate']} instances dropped as duplicates (they differed only in the records "
              f"shown, so their episodes are the same), {d['ambiguous']} as ambiguous (copies of one question "
              f"with different golds), {d.get('records_shown', 0)} whose gold is about the records their prompt "
              "showed")
    print(f"\nwrote {args.out} (seed {args.seed}, size {args.size}, rendering {args.rendering}) in "
          f"{time.perf_counter() - t0:.1f} s")
    return 0


def baselines_summary(d: Path) -> str:
    """The trivial baselines per task and split: what a model must beat before its score means anything."""

    splits = {s: attach_org(read_jsonl(d / f"{s}.jsonl"), d) for s in ("train", "val", "test")
              if (d / f"{s}.jsonl").is_file()}
    rows = baseline_rows(splits)
    head = ["task", "split", "n", "always None", "best constant", "best position"]
    return (f"trivial baselines (accuracy; constant and position chosen on train, on test for the held-out "
            f"tasks; cap {MAX_BASELINE:.0%} per task, split and level):\n\n" + _table(head, rows))


def cmd_check(args: argparse.Namespace) -> int:

    if not Path(args.dir).is_dir():
        raise UserError(f"{args.dir} is not a directory; build a suite with `seccrm build --out {args.dir}`")
    problems = check_suite(args.dir, rebuild_per_arm=args.rebuild_per_arm)
    try:
        print(baselines_summary(Path(args.dir)) + "\n")
    except (ValueError, KeyError, TypeError, OSError) as e:   # a broken suite: the problems say why
        print(f"(no baseline table: {e})\n")
    for line in problems:
        print(line)
    print(f"{args.dir}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


def _read_completions(path: Path, known: set[str]) -> list[tuple[str, str]]:
    """(id, completion) pairs; raises UserError naming the line of any bad entry or unknown id."""

    out, unknown = [], []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path} line {n}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("id"), str) \
                or not isinstance(row.get("completion"), str):
            raise UserError(f'{path} line {n}: expected {{"id": "<instance id>", "completion": "<text>"}}')
        if row["id"] not in known:
            unknown.append(f"line {n}: {row['id'][:60]}")
        out.append((row["id"], row["completion"]))
    if unknown:
        raise UserError(f"{len(unknown)} completion(s) name ids that are not in the task file, e.g. "
                       f"{'; '.join(unknown[:5])}. Score them against the task file they came from.")
    return out


def cmd_score(args: argparse.Namespace) -> int:

    data, comp = Path(args.data), Path(args.completions)
    for p in (data, comp):
        if not p.is_file():
            raise UserError(f"{p} not found")
    try:
        if (data.parent / MANIFEST_FILE).is_file():     # a file of a suite: the suite must not be mixed
            verify_suite_files(data.parent, [data.name])
        rows = read_jsonl(data)
        check_rows(data, rows, "instance")
        records = {r["id"]: r for r in rows}
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{data} is not a task file written by `seccrm build`: {e}") from e
    if args.details:
        out = Path(args.details).resolve()
        clash = [str(p) for p in (data, comp, data.parent / "org.sqlite") if p.resolve() == out]
        if clash:
            raise UserError(f"--details {args.details} is an input of this command ({clash[0]}); writing it would "
                           "destroy it: choose another path")
    attach_org(list(records.values()), data.parent)
    pairs = _read_completions(comp, set(records))
    if not pairs:
        raise UserError(f"{comp} holds no completions: nothing to score")
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    lines = []
    try:
        for rid, completion in pairs:
            d = score_details(records[rid], completion)
            by_task[records[rid]["task"]].append(d)
            lines.append(json.dumps({"id": rid, **d}, sort_keys=True) + "\n")
    except InstanceError as e:
        raise UserError(f"{e}") from e
    if args.details:   # written whole, then renamed: a failure leaves no half file
        write_text_atomic(args.details, "".join(lines))
    print(_score_table(by_task))
    print(f"\nscored {len(pairs)} completion(s) of {len({r for r, _ in pairs})} of the {len(records)} "
          f"instances in {data}")
    return 0


def _score_table(by_task: dict[str, list[dict[str, Any]]]) -> str:
    def row(name: str, ds: list[dict[str, Any]]) -> list[Any]:
        n = len(ds)
        return [name, n, sum(d["reward"] for d in ds) / n, sum(d["correct"] for d in ds) / n,
                sum(d["reward"] >= 0.1 for d in ds) / n]
    # every task scored, optional skills (--confidentiality) and unknown names included: the `all` row
    # counts each completion the command scored
    order = [t for t in ALL_TASK_SKILLS if t in by_task] + sorted(t for t in by_task if t not in ALL_TASK_SKILLS)
    rows = [row(t, by_task[t]) for t in order]
    rows.append(row("all", [d for t in order for d in by_task[t]]))
    return _table(["task", "n", "mean_reward", "accuracy", "format_rate"], rows)


def cmd_tasks(args: argparse.Namespace) -> int:

    tasks = all_tasks()
    for name in ALL_TASK_SKILLS:
        if name not in tasks:
            print(f"{name}  [{ALL_TASK_SKILLS[name]}]  (not registered in this checkout)\n")
            continue
        kind = tasks[name].answer
        detail = {"id": f"id {kind.prefix}", "id_list": f"id_list {kind.prefix}",
                  "subset": f"subset of {', '.join(kind.choices)}",
                  "action": f"action: update {kind.action_object}.{'/'.join(kind.action_fields)}"}
        answer = detail.get(kind.kind, kind.kind) + (" or None" if kind.allow_none else "")
        split = ("test only (held out)" if name in HELD_OUT_TASKS else
                 "train/val, optional: seccrm build --confidentiality" if name not in TASK_SKILLS else "train/val")
        if name not in TASK_SKILLS:
            answer += "; a refusal where the policy forbids"
        print(f"{name}  [{ALL_TASK_SKILLS[name]}, {split}]  answer: {answer}")
        for level in DIFFICULTIES:
            print(f"  {level:<6}  {tasks[name].levels.get(level, '')}")
        print()
    return 0
