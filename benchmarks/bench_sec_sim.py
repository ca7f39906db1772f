"""Does SEC do its job? SEC against uniform on a simulated learner whose arms differ in learnability.

    python benchmarks/bench_sec_sim.py --seeds 40 --taus 0.5,0.15

The learner: each of the 12 arms (``seccrm.world.arms.ALL_ARMS``) is, per seed, one of three kinds,
four arms each, assigned at random:

- *learnable*: accuracy starts at 0.05-0.30 and rises with practice, logistic in the number of
  prompts of that arm drawn so far (it reaches 0.9 after 20-40 of them; both drawn per arm and seed);
- *solved*: accuracy 0.98, whatever is drawn;
- *impossible*: accuracy 0.02, whatever is drawn.

Drawing an arm is what makes it learn: a prompt drawn counts as one practice after the step.

One simulated step is the trainer's (``seccrm.rl.trainer.Trainer.train_step``) with the model
replaced by the learner: the curriculum, built through the registry (``build_curriculum``) with the
trainer's options and derived seed, draws one arm per prompt slot; each prompt gets ``group_size``
rewards, 1.0 with the arm's current accuracy, otherwise 0.1 (a well-formed wrong answer) or 0.0 (no
answer block, a fifth of the wrong ones); the curriculum is updated with
``seccrm.rl.grpo.signal_advantages(rewards, n, signal)`` per completion and the rewards, exactly as
the trainer does (default signal: ``correctness``, the trainer's default). Then the drawn arms learn.

Measured, per curriculum and seed (the same seeds, so the same arms, for every curriculum):

- *steps to target*: the first step after which the mean accuracy of the learnable arms is at least
  ``--target`` (a run that never gets there counts as ``--max-steps``, and is reported);
- *draw ratio at the end*: over the last quarter of the steps to target, prompts drawn per learnable
  arm over prompts drawn per other arm (1:1 is uniform's; it compares arms one to one, as SEC's
  probabilities do: with 4 learnable arms of 12, 3:1 means 60% of the prompts).

SEC minus uniform steps to target is compared over seeds with a paired bootstrap
(``seccrm.evaluation.stats.paired_bootstrap``, 95% percentile interval).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from seccrm.curriculum import build_curriculum
from seccrm.evaluation.stats import paired_bootstrap
from seccrm.rl.config import TrainConfig
from seccrm.rl.grpo import signal_advantages
from seccrm.seeding import derive_seed
from seccrm.world.arms import ALL_ARMS

KINDS: tuple[str, ...] = ("learnable", "solved", "impossible")
SOLVED_ACCURACY = 0.98
IMPOSSIBLE_ACCURACY = 0.02
WRONG_FORMATTED = 0.8   # share of wrong answers that still earn the 0.1 format reward


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class ArmProfile:
    """How one simulated arm answers: its kind, and for a learnable arm how it learns."""

    kind: str
    start: float = 0.0          # learnable: accuracy before any practice
    draws_to_90: float = 1.0    # learnable: prompts drawn until the accuracy reaches 0.9

    def accuracy(self, practice: int) -> float:
        """Probability that a completion is correct after ``practice`` prompts of this arm."""
        if self.kind == "solved":
            return SOLVED_ACCURACY
        if self.kind == "impossible":
            return IMPOSSIBLE_ACCURACY
        slope = (_logit(0.9) - _logit(self.start)) / self.draws_to_90
        return 1.0 / (1.0 + math.exp(-(_logit(self.start) + slope * practice)))


def make_profiles(seed: int, arms: Sequence[str] = ALL_ARMS) -> dict[str, ArmProfile]:
    """A third of the arms of each kind, assigned at random; the learnable arms' curves drawn per seed."""
    rng = random.Random(derive_seed(seed, "sim-profiles"))
    order = rng.sample(list(arms), len(arms))
    per_kind = len(arms) // len(KINDS)
    out: dict[str, ArmProfile] = {}
    for i, arm in enumerate(order):
        kind = KINDS[min(i // per_kind, len(KINDS) - 1)]
        out[arm] = (ArmProfile(kind, rng.uniform(0.05, 0.30), rng.uniform(20.0, 40.0)) if kind == "learnable"
                    else ArmProfile(kind))
    return out


@dataclass
class SimRun:
    """One simulated run: the arms drawn at every step and when the target was reached."""

    curriculum: str
    seed: int
    profiles: dict[str, ArmProfile]
    draws: list[list[str]] = field(default_factory=list)     # per step, one arm per prompt slot
    steps_to_target: int | None = None                        # None: not reached within max_steps

    def steps(self, max_steps: int) -> int:
        return self.steps_to_target if self.steps_to_target is not None else max_steps

    def end_ratio(self, fraction: float = 0.25) -> float:
        """Prompts per learnable arm over prompts per other arm, in the last ``fraction`` of the steps."""
        last = self.draws[len(self.draws) - max(1, math.ceil(fraction * len(self.draws))):]
        learnable = {a for a, p in self.profiles.items() if p.kind == "learnable"}
        n_learn = sum(a in learnable for step in last for a in step)
        n_other = sum(len(step) for step in last) - n_learn
        per_learn = n_learn / len(learnable)
        per_other = n_other / (len(self.profiles) - len(learnable))
        return math.inf if per_other == 0 else per_learn / per_other


def learnable_accuracy(profiles: dict[str, ArmProfile], practice: dict[str, int]) -> float:
    """Mean accuracy of the learnable arms at their current practice."""
    accs = [p.accuracy(practice[a]) for a, p in profiles.items() if p.kind == "learnable"]
    return sum(accs) / len(accs)


def simulate(curriculum: str, seed: int, options: dict[str, Any] | None = None, *, prompts: int = 4,
             group_size: int = 8, signal: str = "correctness", target: float = 0.8,
             max_steps: int = 400) -> SimRun:
    """One run of ``curriculum`` (a registered name, with SEC's ``options``) on the learner of ``seed``.

    Stops at the first step after which the learnable arms' mean accuracy reaches ``target``, or
    after ``max_steps``.
    """
    profiles = make_profiles(seed)
    arms = tuple(profiles)
    cur = build_curriculum(curriculum, arms, derive_seed(seed, "curriculum"), options)
    rng = random.Random(derive_seed(seed, "sim-rewards", curriculum))
    practice = {a: 0 for a in arms}
    run = SimRun(curriculum, seed, profiles)
    for step in range(max_steps):
        cur.set_progress(step, max_steps)
        drawn = cur.sample(prompts)
        rewards: list[float] = []
        for arm in drawn:                               # group-major, as the rollouts are
            acc = profiles[arm].accuracy(practice[arm])
            for _ in range(group_size):
                if rng.random() < acc:
                    rewards.append(1.0)
                else:
                    rewards.append(0.1 if rng.random() < WRONG_FORMATTED else 0.0)
        r = torch.tensor(rewards, dtype=torch.float32)                          # [prompts * n]
        comp_arms = [drawn[i // group_size] for i in range(len(rewards))]
        sig = signal_advantages(r, group_size, signal, scale_by_std=True)      # [prompts * n]
        cur.update(comp_arms, sig.tolist(), rewards=r.tolist())
        for arm in drawn:                               # the policy update: what was drawn learns
            practice[arm] += 1
        run.draws.append(drawn)
        if learnable_accuracy(profiles, practice) >= target:
            run.steps_to_target = step + 1
            break
    return run


def compare(seeds: Sequence[int], taus: Sequence[float], alpha: float, **kwargs: Any
            ) -> dict[str, list[SimRun]]:
    """Uniform, and SEC at each tau, on the same seeds."""
    out = {"uniform": [simulate("uniform", s, **kwargs) for s in seeds]}
    for tau in taus:
        out[f"sec tau {tau:g}"] = [simulate("sec", s, {"alpha": alpha, "tau": tau, "unsampled": "hold"}, **kwargs)
                                   for s in seeds]
    return out


def _fmt_ratio(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.1f}:1"


def main(argv: Sequence[str] | None = None) -> None:
    defaults = TrainConfig()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--taus", default=f"{defaults.tau:g},0.15", help="SEC temperatures (trainer default, cpu-exp)")
    ap.add_argument("--alpha", type=float, default=defaults.alpha)
    ap.add_argument("--prompts", type=int, default=defaults.prompts_per_step)
    ap.add_argument("--group-size", type=int, default=defaults.group_size)
    ap.add_argument("--signal", default=defaults.curriculum_signal, help="advantage, unscaled or correctness")
    ap.add_argument("--target", type=float, default=0.8, help="mean accuracy of the learnable arms to reach")
    ap.add_argument("--max-steps", type=int, default=400)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    seeds = list(range(args.seeds))
    taus = [float(t) for t in args.taus.split(",")]
    runs = compare(seeds, taus, args.alpha, prompts=args.prompts, group_size=args.group_size,
                   signal=args.signal, target=args.target, max_steps=args.max_steps)
    print(f"{len(seeds)} seeds; 12 arms (4 learnable, 4 solved, 4 impossible); {args.prompts} prompts x "
          f"{args.group_size} completions per step; signal {args.signal}; alpha {args.alpha:g}; "
          f"target: learnable arms' mean accuracy >= {args.target:g} (max {args.max_steps} steps)\n")
    print("| curriculum | steps to target: mean (median) | not reached | draw ratio at the end: pooled "
          "(median over seeds) | seeds at 3:1 or more | share of prompts on learnable arms, whole run |")
    print("|---|---|---|---|---|---|")
    uni = [r.steps(args.max_steps) for r in runs["uniform"]]
    for name, rs in runs.items():
        steps = [r.steps(args.max_steps) for r in rs]
        ratios = [r.end_ratio() for r in rs]
        pooled = pooled_end_ratio(rs)
        share = statistics.mean(sum(r.profiles[a].kind == "learnable" for st in r.draws for a in st)
                                / sum(len(st) for st in r.draws) for r in rs)
        print(f"| {name} | {statistics.mean(steps):.1f} ({statistics.median(steps):g}) | "
              f"{sum(r.steps_to_target is None for r in rs)} | {_fmt_ratio(pooled)} "
              f"({_fmt_ratio(statistics.median(ratios))}) | {sum(x >= 3 for x in ratios)} of {len(rs)} | {share:.0%} |")
    print("\n| SEC minus uniform, steps to target | mean | 95% paired bootstrap | p | SEC faster in |")
    print("|---|---|---|---|---|")
    for name, rs in runs.items():
        if name == "uniform":
            continue
        steps = [r.steps(args.max_steps) for r in rs]
        res = paired_bootstrap(steps, uni, resamples=10000)
        faster = sum(s < u for s, u in zip(steps, uni, strict=True))
        print(f"| {name} | {res.mean_diff:+.1f} | [{res.ci_low:+.1f}, {res.ci_high:+.1f}] | {res.p_value:.4f} | "
              f"{faster} of {len(steps)} seeds |")
    print(f"\n{time.perf_counter() - t0:.1f} s")


def pooled_end_ratio(runs: Sequence[SimRun], fraction: float = 0.25) -> float:
    """The draw ratio at the end over several runs: per-arm prompts of the last ``fraction`` summed over runs."""
    n_learn = n_other = 0.0
    for r in runs:
        last = r.draws[len(r.draws) - max(1, math.ceil(fraction * len(r.draws))):]
        learnable = {a for a, p in r.profiles.items() if p.kind == "learnable"}
        k = sum(a in learnable for st in last for a in st)
        n_learn += k / len(learnable)
        n_other += (sum(len(st) for st in last) - k) / (len(r.profiles) - len(learnable))
    return math.inf if n_other == 0 else n_learn / n_other


if __name__ == "__main__":
    main()
