"""How greedy does SEC get at a given tau, on the learning signal a real run measured?

    python benchmarks/sim_sec_tau.py runs/demo/sec/metrics.jsonl --steps 12 --prompts 4 --taus 0.5,0.2,0.15

Reads every ``curriculum/r/<arm>`` a training run logged (the signal each arm showed when drawn),
then replays SEC (``seccrm.curriculum.SEC``, alpha 0.3, the given taus) for ``--steps`` steps of
``--prompts`` draws over ``--seeds`` seeds, each draw's signal resampled from what that arm showed.
It prints, per tau, the median most- over least-favoured arm probability after the last update,
the share of seeds at 3:1 or more, the arm most often favoured, and the share of draws with a
signal (r > 0). The paper's tau = 0.5 was set for a signal of 0.5-0.8; a sparser one needs a
smaller tau for the same greediness.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from collections import Counter, defaultdict
from pathlib import Path

from seccrm.curriculum import SEC


def signals(paths: list[Path]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(list)
    for path in paths:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            for key, value in row.items():
                if key.startswith("curriculum/r/"):
                    out[key.removeprefix("curriculum/r/")].append(float(value))
    if not out:
        raise SystemExit(f"no curriculum/r/<arm> values in {', '.join(map(str, paths))}: not a curriculum run's metrics")
    return dict(out)


def replay(sig: dict[str, list[float]], tau: float, steps: int, prompts: int, seed: int) -> tuple[float, str, float]:
    """One simulated run; returns (final ratio, favoured arm, share of draws with a signal)."""
    rng = random.Random(10_000 + seed)
    sec = SEC(sorted(sig), alpha=0.3, tau=tau, seed=seed)
    with_signal = 0
    for _ in range(steps):
        arms = sec.sample(prompts)
        rs = [rng.choice(sig[arm]) for arm in arms]   # one completion per draw, |A| = the signal drawn
        with_signal += sum(r > 0 for r in rs)
        sec.update(arms, advantages=rs)
    p = sec.probs()
    top = max(p, key=lambda a: p[a])
    return p[top] / min(p.values()), top, with_signal / (steps * prompts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("metrics", nargs="+", type=Path, help="metrics.jsonl files of curriculum runs")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--prompts", type=int, default=4, help="prompts (draws) per step")
    ap.add_argument("--seeds", type=int, default=400)
    ap.add_argument("--taus", default="0.5,0.3,0.2,0.15,0.1")
    args = ap.parse_args()
    sig = signals(args.metrics)
    print("| arm | draws logged | mean r | share with r > 0 |\n|---|---|---|---|")
    for arm, rs in sorted(sig.items()):
        print(f"| {arm} | {len(rs)} | {statistics.mean(rs):.3f} | {sum(r > 0 for r in rs) / len(rs):.0%} |")
    print(f"\n{args.steps} steps x {args.prompts} draws, {args.seeds} seeds, alpha 0.3\n")
    print("| tau | median ratio | seeds at 3:1 or more | most often favoured | draws with a signal |\n|---|---|---|---|---|")
    for tau in (float(t) for t in args.taus.split(",")):
        runs = [replay(sig, tau, args.steps, args.prompts, s) for s in range(args.seeds)]
        ratios = [r for r, _, _ in runs]
        top, count = Counter(a for _, a, _ in runs).most_common(1)[0]
        print(f"| {tau} | {statistics.median(ratios):.1f}:1 | {sum(r >= 3 for r in ratios) / len(runs):.0%} | "
              f"{top} ({count / len(runs):.0%}) | {statistics.mean(s for _, _, s in runs):.1%} |")


if __name__ == "__main__":
    main()
