"""Benchmark of the CRM suite: build time per org preset, and scoring throughput.

    python benchmarks/bench_suite.py                     # tiny, small, full; default 12,000 + 300 suite
    python benchmarks/bench_suite.py --sizes tiny --no-write

For each preset it times ``build_org`` alone and then ``build_suite`` (org + every instance, with the
redraws of repeated prompts, + JSONL + Parquet + hashes), reports the distinct prompts and redraws
from suite.json, and runs ``check_suite`` on the result. Scoring is timed on the last suite built:
every non-CRUD record and every CRUD record is scored against three completions (the gold answer, a
well-formatted wrong answer, no answer block), each preceded by ~1 KB of reasoning text, as a model's
completion would be. The table is printed and, unless ``--no-write``, appended with the date, the
machine and the command to the "## Suite (issue 2)" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from seccrm.data import build_suite, check_suite, load_split
from seccrm.data.build import default_workers
from seccrm.world.org import build_org
from seccrm.world.rewards import answer_kind, gold_completion, score

SECTION = "## Suite (issue 2)"
TARGETS = ("Targets: the `full` org and the default 12,000 + 300 suite build in under 2 minutes; over 5,000 "
           "non-CRUD completions scored per second. Build times include writing JSONL, Parquet and hashes.")
REASONING = "Let me look at the records in the tables above and compare them one by one. " * 14


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def wrong_completions(records: list[dict[str, Any]]) -> list[str]:
    """For each record, a completion that parses as its answer type but is (almost always) wrong.

    Actions keep their target and take the field value of the next action of the same task.
    """
    fallback = {"id": "None", "id_list": "None", "month": "January", "state": "WY", "text": "unknown",
                "text_list": "nothing", "subset": "None"}
    out = []
    for i, r in enumerate(records):
        kind = answer_kind(r["task"])
        if kind.kind != "action":
            out.append(f"<answer>{fallback[kind.kind]}</answer>")
            continue
        act = json.loads(r["answer"][0])
        nxt = next((x for x in records[i + 1:] + records[:i] if x["task"] == r["task"]), r)
        act["fields"] = json.loads(nxt["answer"][0])["fields"]
        out.append(f"<answer>{json.dumps(act)}</answer>")
    return out


def time_scoring(records: list[dict[str, Any]], min_seconds: float = 2.0) -> tuple[float, int]:
    """Completions scored per second over ``records`` x 3 completions, repeated for ``min_seconds``."""
    pairs = [(r, REASONING + c) for r, wrong in zip(records, wrong_completions(records), strict=True)
             for c in (gold_completion(r), wrong, "I am not sure.")]
    for r, c in pairs[:50]:
        score(r, c)                       # warm caches (the org's in-memory copy, the task registry)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_seconds:
        for r, c in pairs:
            score(r, c)
        n += len(pairs)
    return n / (time.perf_counter() - t0), len(pairs)


def run(sizes: list[str], train_per_task: int, test_per_task: int, seed: int,
        workers: int | None) -> list[list[str]]:
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="bench_suite_") as tmp:
        for size in sizes:
            out = Path(tmp) / size
            t0 = time.perf_counter()
            build_org(Path(tmp) / f"org-{size}.sqlite", seed=seed, size=size)
            t_org = time.perf_counter() - t0
            t0 = time.perf_counter()
            manifest = build_suite(out, seed=seed, size=size, train_per_task=train_per_task,
                                   test_per_task=test_per_task, progress=False, workers=workers)
            t_suite = time.perf_counter() - t0
            t0 = time.perf_counter()
            problems = check_suite(out)
            t_check = time.perf_counter() - t0
            n = sum(v for split in manifest["counts"].values() for lv in split.values() for v in lv.values())
            mb = (out / "org.sqlite").stat().st_size / 2**20
            n_workers = workers or default_workers(n)
            k = sum(v for split in manifest["distinct"].values() for lv in split.values() for v in lv.values())
            r = sum(v for lv in manifest["redraws"].values() for v in lv.values())
            rows.append([f"build {size}", f"{n:,} instances ({k:,} distinct prompts, {r:,} redraws), "
                         f"org {mb:.1f} MB, {n_workers} worker(s)",
                         f"org {t_org:.1f} s; org + suite {t_suite:.1f} s; check {t_check:.1f} s"
                         + ("" if not problems else f" ({len(problems)} check problems!)")])
            print(" | ".join(rows[-1]), file=sys.stderr)
        records = [r for s in ("train", "val", "test") for r in load_split(out, s)]
        for label, subset in (("non-CRUD", [r for r in records if r["skill"] != "CRUD"]),
                              ("CRUD", [r for r in records if r["skill"] == "CRUD"])):
            rate, n_pairs = time_scoring(subset)
            rows.append([f"score {label} ({sizes[-1]} org)", f"{n_pairs:,} completions",
                         f"{rate:,.0f} completions/s"])
            print(" | ".join(rows[-1]), file=sys.stderr)
    return rows


def load_average() -> str:
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "n/a"


def markdown(rows: list[list[str]], command: str, load_start: str) -> str:
    head = (f"\n### {dt.date.today().isoformat()}: {cpu_model()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, load average {load_start} at the start and "
            f"{load_average()} at the end (a shared machine)\n\n"
            f"`{command}`\n\n| what | size | time / rate |\n|---|---|---|\n")
    return head + "".join(f"| {' | '.join(r)} |\n" for r in rows)


def append_to_benchmarks(text: str, path: Path) -> None:
    """Add ``text`` at the end of our section, creating the file or the section when missing."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    if SECTION not in old:
        new = old.rstrip("\n") + f"\n\n{SECTION}\n\n{TARGETS}\n" + text
    else:
        start = old.index(SECTION) + len(SECTION)
        nxt = old.find("\n## ", start)
        end = len(old) if nxt < 0 else nxt
        new = old[:end].rstrip("\n") + "\n" + text + old[end:]
    path.write_text(new if new.endswith("\n") else new + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["tiny", "small", "full"], choices=["tiny", "small", "full"])
    ap.add_argument("--train-per-task", type=int, default=750)
    ap.add_argument("--test-per-task", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=None, help="generation processes (default: build_suite's)")
    ap.add_argument("--no-write", action="store_true", help="print only; do not append to BENCHMARKS.md")
    args = ap.parse_args()
    load_start = load_average()
    rows = run(args.sizes, args.train_per_task, args.test_per_task, args.seed, args.workers)
    text = markdown(rows, "python " + " ".join(shlex.quote(a) for a in sys.argv), load_start)
    print(text)
    if not args.no_write:
        append_to_benchmarks(text, Path(__file__).resolve().parent.parent / "BENCHMARKS.md")


if __name__ == "__main__":
    main()
