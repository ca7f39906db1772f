"""The report's PNG figures: a curriculum's arm probabilities and learned values over steps, reward
over steps, and an experiment's final accuracies and learning curves."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from seccrm.evaluation.comparisons import STAGE_TITLES, title
from seccrm.evaluation.results import ExperimentResult, RunResult
from seccrm.evaluation.stats import t_interval
from seccrm.world.arms import ALL_ARMS


def _pyplot() -> Any:
    import matplotlib
    matplotlib.use("Agg")  # files only: reports are written on machines without a display
    import matplotlib.pyplot as plt
    return plt


def plot_arms(rows: list[dict[str, Any]], path: Path, name: str) -> Path | None:
    """Stacked arm probabilities and the curriculum's own per-arm estimate over steps, in one PNG.

    ``rows``: metrics lines with ``curriculum/p/<arm>`` (the distribution each batch was drawn from)
    and, when the curriculum learns values, ``curriculum/q/<arm>`` (SEC, UCB) or
    ``curriculum/success/<arm>`` (learnability). Returns None when no row has probabilities.
    """
    rows = [r for r in rows if any(f"curriculum/p/{a}" in r for a in ALL_ARMS)]
    if not rows:
        return None
    plt = _pyplot()
    steps = [r["step"] for r in rows]
    arms = [a for a in ALL_ARMS if any(f"curriculum/p/{a}" in r for r in rows)]
    cmap = plt.get_cmap("tab20")
    fig, ax = plt.subplots(1, 2, figsize=(13, 4.5))
    probs = [[r.get(f"curriculum/p/{a}") or 0.0 for r in rows] for a in arms]
    ax[0].stackplot(steps, probs, labels=arms, colors=[cmap(i) for i in range(len(arms))])
    fig.suptitle(name)
    ax[0].set(title="arm probabilities each batch was drawn from (stacked)", xlabel="step", ylabel="p(arm)",
              ylim=(0, 1))
    # the curriculum's own per-arm estimate: Q (SEC: TD(0) of mean |advantage|; UCB: windowed mean
    # |advantage|) or the success rate learnability scores p(1-p) from; schedules have none
    key, label = next(((k, t) for k, t in (("q", "Q per arm"), ("success", "success rate per arm"))
                       if any(f"curriculum/{k}/{a}" in r for r in rows for a in arms)), (None, ""))
    for i, a in enumerate(arms if key else []):
        vals = [r.get(f"curriculum/{key}/{a}") for r in rows]
        ax[1].plot(steps, [v if v is not None else float("nan") for v in vals], label=a, color=cmap(i))
    ax[1].set(title=label or "no learned per-arm values (a fixed schedule)", xlabel="step", ylabel=label)
    # one legend for both panels: an arm has the same colour in the stack and in the lines
    ax[1].legend(*ax[0].get_legend_handles_labels(), fontsize=7, ncol=2, loc="upper left",
                 bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curriculum(metrics: list[dict[str, Any]], out_dir: Path, name: str) -> list[Path]:
    """Stacked arm probabilities, Q per arm, and reward / accuracy / format rate over steps."""
    rows = [r for r in metrics if "train/reward" in r]
    if not rows:
        return []
    plt = _pyplot()
    arms_png = plot_arms(rows, out_dir / f"{name}_curriculum.png", name)
    paths = [arms_png] if arms_png else []
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("train/reward", "mean reward"), ("train/accuracy", "accuracy"),
                       ("train/format_rate", "format rate"), ("eval/val/accuracy", "val accuracy")):
        pts = [(r["step"], r[key]) for r in metrics if r.get(key) is not None]
        if pts:
            ax.plot([s for s, _ in pts], [v for _, v in pts], marker="o" if key.startswith("eval") else None, label=label)
    ax.set(title=f"{name}: reward over steps", xlabel="step", ylim=(-0.02, 1.02))
    ax.legend()
    fig.tight_layout()
    p = out_dir / f"{name}_reward.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)
    return paths


def mean_rows(runs: dict[int, RunResult], prefix: str = "curriculum/") -> list[dict[str, Any]]:
    """Metrics averaged over seeds, step by step (keys under ``prefix``); a step counts every seed
    that logged it, so the mean of stacked probabilities still sums to 1."""
    acc: dict[int, dict[str, list[float]]] = {}
    for r in runs.values():
        for row in r.metrics:
            for k, v in row.items():
                if k.startswith(prefix) and isinstance(v, (int, float)):
                    acc.setdefault(row["step"], {}).setdefault(k, []).append(float(v))
    return [{"step": s, **{k: sum(v) / len(v) for k, v in kv.items()}} for s, kv in sorted(acc.items())]


def plot_accuracy(exp: ExperimentResult, path: Path) -> Path:
    """Per-seed final accuracy (dots), mean and t-interval (bars) per curriculum; base and start lines."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    curs = list(exp.runs)
    for ax, split in zip(axes, ("test", "val"), strict=True):
        for x, cur in enumerate(curs):
            vals = [r.acc(split) for r in exp.runs[cur].values() if split in r.evals]
            ax.scatter([x] * len(vals), vals, color="tab:gray", s=18, zorder=3)
            m, lo, hi = t_interval(vals)
            if not math.isnan(lo):
                lo, hi = max(lo, 0.0), min(hi, 1.0)  # cut to [0, 1], as the tables do
                ax.errorbar([x], [m], yerr=[[m - lo], [hi - m]], fmt="o", color="tab:blue", capsize=5, zorder=4)
            elif vals:
                ax.plot([x], [m], "o", color="tab:blue")
        for stage, style in (("base", ":"), ("warmup", "--")):
            e = exp.stage(stage, split)
            if e:
                ax.axhline(e.summary.accuracy, linestyle=style, color="tab:red", label=STAGE_TITLES[stage])
        ax.set_xticks(range(len(curs)), [title(c) for c in curs], rotation=25, ha="right")
        ax.set(title=f"final {split} accuracy (dots: seeds; bars: mean, 95% t-interval)", ylabel="accuracy",
               ylim=(-0.03, 1.03))
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(exp: ExperimentResult, path: Path) -> Path:
    """Validation accuracy over steps (mean over seeds, band = min..max) and training reward."""
    plt = _pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(13, 4.2))
    e0 = exp.start("val")
    start = e0.summary.accuracy if e0 else None
    for i, (cur, runs) in enumerate(exp.runs.items()):
        color = plt.get_cmap("tab10")(i)
        steps = sorted({s for r in runs.values() for s in r.curve} | ({0} if start is not None else set()))
        pts = [(s, v) for s in steps
               if (v := [start] if s == 0 and start is not None else [r.curve[s] for r in runs.values() if s in r.curve])]
        if pts:
            ax[0].plot([s for s, _ in pts], [sum(v) / len(v) for _, v in pts], marker="o", color=color, label=title(cur))
            ax[0].fill_between([s for s, _ in pts], [min(v) for _, v in pts], [max(v) for _, v in pts], color=color, alpha=0.15)
        rew = mean_rows(runs, "train/reward")
        ax[1].plot([r["step"] for r in rew], [r["train/reward"] for r in rew], color=color, label=title(cur))
    ax[0].set(title="validation accuracy (step 0 = start model; mean over seeds, band min..max)", xlabel="step",
              ylabel="accuracy")
    ax[1].set(title="training reward (mean over seeds)", xlabel="step", ylabel="mean reward")
    for a in ax:
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
