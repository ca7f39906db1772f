"""What a model does in agentic episodes of seccrm's own tasks: a few episodes per task, read closely.

    seccrm build --out data/agentic --mode agentic
    python benchmarks/agentic_probe.py --data data/agentic --model smollm2 --per-task 2 --max-turns 4

Plays ``--per-task`` greedy episodes of each task of the split (the first instances of each task, so
every task is represented; ``seccrm eval --limit`` would take the first N of the file, one task) and
prints accuracy, format rate, the agentic means, how episodes ended, whether the first turn ran a
query, answered, or did neither, and the start of a few first turns.
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="an agentic suite (seccrm build --mode agentic)")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--split", default="val")
    ap.add_argument("--per-task", type=int, default=2)
    ap.add_argument("--max-turns", type=int, default=4)
    args = ap.parse_args()

    from seccrm.data import load_split
    from seccrm.engine.models import load_model_and_tokenizer
    from seccrm.evaluation.agentic import evaluate_model_episodes
    from seccrm.rl.metrics import machine_summary
    from seccrm.world.episode import EpisodeSettings

    print(f"machine: {machine_summary()}")
    by_task = defaultdict(list)
    for inst in load_split(args.data, args.split):
        by_task[inst["task"]].append(inst)
    pick = [i for task in sorted(by_task) for i in by_task[task][: args.per_task]]
    model, tok = load_model_and_tokenizer(args.model)
    res = evaluate_model_episodes(model, tok, pick, EpisodeSettings(max_turns=args.max_turns),
                                  keep_trajectories=True)
    s = res["summary"]
    print(f"{len(pick)} episodes ({args.per_task} of each of {len(by_task)} tasks): accuracy {s['accuracy']:.3f}, "
          f"format rate {s['format_rate']:.3f}; per episode {res['agentic']}")
    first = Counter()
    for tr in res["trajectories"]:
        text = tr["turns"][0]["text"] if tr["turns"] else ""
        first["ran a query" if "<execute>" in text else "answered" if "<answer>" in text else "neither"] += 1
    print(f"first turn: {dict(first)}")
    for tr in res["trajectories"][:: max(1, len(pick) // 6)]:
        print(f"  {tr['task']}: {tr['turns'][0]['text'][:100]!r}")


if __name__ == "__main__":
    main()
