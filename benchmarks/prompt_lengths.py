"""Prompt lengths in tokens of SmolLM2's chat template, per task and level and per arm, of one
suite's split, or of two suites side by side (e.g. the full and the compact rendering):

    python benchmarks/prompt_lengths.py FULL_DIR COMPACT_DIR [--split val]

Each prompt is the instance's messages through ``apply_chat_template(..., add_generation_prompt=True)``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from seccrm.engine.models import load_tokenizer
from seccrm.world.arms import DIFFICULTIES


def lengths(d: Path, split: str, tok: object) -> tuple[dict[tuple[str, str], list[int]], dict[str, list[int]]]:
    by_task: dict[tuple[str, str], list[int]] = defaultdict(list)
    by_arm: dict[str, list[int]] = defaultdict(list)
    for line in (d / f"{split}.jsonl").read_text().splitlines():
        r = json.loads(line)
        ids = tok.apply_chat_template(r["messages"], add_generation_prompt=True, tokenize=True)  # type: ignore[attr-defined]
        n = len(ids if isinstance(ids, list) else ids["input_ids"])
        by_task[(r["task"], r["difficulty"])].append(n)
        by_arm[r["arm"]].append(n)
    return by_task, by_arm


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suites", nargs="+", type=Path, help="one or more suite directories")
    p.add_argument("--split", default="val")
    args = p.parse_args()
    tok = load_tokenizer("smollm2")
    runs = [lengths(d, args.split, tok) for d in args.suites]
    med = statistics.median
    print("| task | " + " | ".join(f"{d.name} easy/medium/hard" for d in args.suites) + " |")
    print("|---|" + "---|" * len(runs))
    for task in sorted({t for t, _ in runs[0][0]}):
        cells = ["/".join(f"{med(r[0][(task, lv)]):.0f}" for lv in DIFFICULTIES) for r in runs]
        print(f"| {task} | " + " | ".join(cells) + " |")
    for arm in sorted(runs[0][1]):
        print(f"| {arm} | " + " | ".join(f"{med(r[1][arm]):.0f} (max {max(r[1][arm])})" for r in runs) + " |")
    alls = [[n for v in r[1].values() for n in v] for r in runs]
    print("| all | " + " | ".join(f"{med(a):.0f} ({sum(n <= 512 for n in a) / len(a):.0%} <= 512, n={len(a)})"
                                  for a in alls) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
