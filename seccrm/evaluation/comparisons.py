"""Paired comparisons of curricula (and of a curriculum against its start model), and the sentence
that states each verdict from the numbers alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from seccrm.curriculum.registry import curriculum_title
from seccrm.evaluation.results import ExperimentResult, RunResult
from seccrm.evaluation.stats import PairedResult, paired_test

ALPHA = 0.05  # significance level of the paired tests
STAGE_TITLES = {"base": "Baseline (base model)", "warmup": "After format warm-up"}


def title(cur: str) -> str:
    """A curriculum's name as the reports print it."""
    return curriculum_title(cur)


def paired_scores(exp: ExperimentResult, a: str, b: str, split: str = "test") -> tuple[Any, Any, list[int], list[str]]:
    """Per-instance correctness of curricula ``a`` and ``b``, paired by seed and instance id.

    Returns ``A``, ``B`` of shape (seeds, instances) (1.0 correct, 0.0 not), the seeds used (those
    both curricula ran and evaluated) and the instance ids (those every one of these runs scored).
    """
    ra, rb = exp.runs.get(a, {}), exp.runs.get(b, {})
    seeds = sorted(s for s in ra if s in rb and split in ra[s].evals and split in rb[s].evals)
    by_run = [r[s].evals[split].correct_by_id() for s in seeds for r in (ra, rb)]
    ids = [i for i in (by_run[0] if by_run else {}) if all(i in d for d in by_run)]
    mat = np.array([[d[i] for i in ids] for d in by_run], dtype=float).reshape(len(seeds), 2, len(ids))
    return mat[:, 0, :], mat[:, 1, :], seeds, ids


@dataclass
class Comparison:
    a: str
    b: str
    split: str
    permutation: PairedResult
    bootstrap: PairedResult
    seed_diffs: list[float]


def _compare(a: str, b: str, split: str, A: Any, B: Any, seed: int) -> Comparison:
    t = paired_test(A, B, seed=seed)
    return Comparison(a, b, split, t.permutation, t.bootstrap, [float(x) for x in (A - B).mean(axis=1)])


def compare(exp: ExperimentResult, a: str, b: str, split: str = "test", seed: int = 0) -> Comparison | None:
    """Paired test of ``a`` against ``b``; None when they share no evaluated seed and instance."""
    A, B, seeds, ids = paired_scores(exp, a, b, split)
    return _compare(a, b, split, A, B, seed) if seeds and ids else None


def compare_to_start(exp: ExperimentResult, a: str, split: str = "val", seed: int = 0) -> Comparison | None:
    """Paired test of curriculum ``a``'s runs against the model they all started from (the warm-up),
    which is paired with every seed's run on the same instances."""
    start = exp.start(split)
    runs = exp.runs.get(a, {})
    seeds = sorted(s for s in runs if split in runs[s].evals)
    if start is None or not seeds:
        return None
    s0 = start.correct_by_id()
    per = [runs[s].evals[split].correct_by_id() for s in seeds]
    ids = [i for i in s0 if all(i in d for d in per)]
    if not ids:
        return None
    A = np.array([[d[i] for i in ids] for d in per])
    B = np.array([[s0[i] for i in ids]] * len(seeds))
    return _compare(a, exp.start_stage() or "start", split, A, B, seed)


def verdict(c: Comparison, what: str) -> str:
    """One plain sentence on whether ``c.a`` beats ``c.b``, worded from the numbers alone.

    "Beats" needs all three: a positive mean difference, permutation p < ALPHA, and a two-level
    bootstrap interval that excludes 0 (the interval also carries run-to-run variance). When only
    one of the two tests fires, the sentence says so: the difference is then not robust across seeds.
    """
    a, b = title(c.a), title(c.b)
    boot, perm = c.bootstrap, c.permutation
    d = 100 * boot.mean_diff
    by_perm, by_boot = perm.p_value < ALPHA, boot.ci_low > 0 or boot.ci_high < 0
    facts = (f"95% CI [{100 * boot.ci_low:+.1f}, {100 * boot.ci_high:+.1f}] points, permutation p = "
             f"{perm.p_value:.3g}, {boot.n_seeds} paired seed{'s' if boot.n_seeds != 1 else ''} x "
             f"{boot.n_instances} instances, per seed " + ", ".join(f"{100 * x:+.1f}" for x in c.seed_diffs))
    if abs(d) < 1e-9:
        return f"**{a} does not beat {b}** on {what}: both score the same ({facts})."
    side = f"{d:.1f} points higher" if d > 0 else f"{-d:.1f} points lower"
    if by_perm and by_boot:
        return (f"**{a} beats {b}** on {what}: {d:+.1f} points ({facts})." if d > 0 else
                f"**{a} does not beat {b}: {b} beats {a}** on {what}, by {-d:.1f} points ({facts}).")
    head = f"**{a} does not beat {b}{' significantly' if d > 0 else ''}** on {what}: it scores {side} on average"
    if by_perm or by_boot:
        which = ("the permutation test over instances fires but the interval, which also carries "
                 "seed-to-seed variance, includes 0" if by_perm else
                 "the interval excludes 0 but the permutation test does not fire")
        return f"{head}, a difference that is not robust across seeds: {which} ({facts})."
    return f"{head}, within noise ({facts})."


def paired_table(comparisons: list[Comparison]) -> str:
    lines = ["| Comparison | Split | Seeds x instances | Mean difference | 95% CI (two-level bootstrap) "
             "| p (permutation) | p (bootstrap) | Per-seed differences (pts) |", "|---|---|---|---|---|---|---|---|"]
    for c in comparisons:
        bt = c.bootstrap
        lines.append(f"| {title(c.a)} - {STAGE_TITLES.get(c.b, title(c.b))} | {c.split} | {bt.n_seeds} x "
                     f"{bt.n_instances} | {100 * bt.mean_diff:+.1f} pts | [{100 * bt.ci_low:+.1f}, "
                     f"{100 * bt.ci_high:+.1f}] | {c.permutation.p_value:.3g} | {bt.p_value:.3g} | "
                     + ", ".join(f"{100 * d:+.1f}" for d in c.seed_diffs) + " |")
    return "\n".join(lines)


def arm_ratio(runs: dict[int, RunResult]) -> list[tuple[int, float, str, str]]:
    """Per seed, at the last step: most- over least-favoured arm probability, and the two arms."""
    out = []
    for seed, r in sorted(runs.items()):
        last = r.metrics[-1] if r.metrics else {}
        p = {k.removeprefix("curriculum/p/"): float(v) for k, v in last.items() if k.startswith("curriculum/p/")}
        if p:
            hi, lo = max(p, key=lambda k: p[k]), min(p, key=lambda k: p[k])
            out.append((seed, p[hi] / p[lo] if p[lo] > 0 else float("inf"), hi, lo))
    return out


def ratio_text(run: RunResult | None, ratio: float, hi: str, lo: str) -> str:
    """An arm ratio in words; a SEC run whose drawn groups never mixed right and wrong answers (no
    learning signal) is named as such."""
    if ratio > 1 + 1e-6:
        return f"{ratio:.1f}:1 ({hi} over {lo})"
    signal = sum(float(m.get("train/signal_groups") or 0.0) for m in (run.metrics if run else []))
    return "1.0:1 (all arms equal" + (": no drawn group mixed right and wrong answers)" if signal == 0 else ")")
