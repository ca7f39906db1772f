"""Reports made from a run's logs and evaluation files, after the fact (training never calls this).

A run directory (as ``seccrm demo`` writes it) holds ``eval/<stage>_<split>.json`` files (stages such as
``base``, ``warmup``, ``sec``) and one or more training folders with ``metrics.jsonl``. The report is a
markdown file with the report's three tables (overall baseline vs trained with relative improvement;
per held-out task; training metrics) and PNG plots of the curriculum (arm probabilities stacked, Q)
and of reward over steps.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from seccrm.arms import ALL_ARMS, HELD_OUT_TASKS, TASK_TITLES
from seccrm.metrics import read_jsonl

STAGE_ORDER = ("base", "warmup")
STAGE_TITLES = {"base": "Baseline (base model)", "warmup": "After format warm-up"}


def _pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _ci(b: dict[str, Any], key: str = "accuracy") -> str:
    lo, hi = b.get(f"{key}_ci95", (float("nan"), float("nan")))
    return f"{_pct(b[key])} [{_pct(lo)}, {_pct(hi)}]"


def _rel(base: float, new: float) -> str:
    if not base or math.isnan(base) or math.isnan(new):
        return "n/a"
    return f"{100 * (new - base) / base:+.1f}%"


def load_evals(run_dir: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """stage -> split -> evaluation result, from ``run_dir/eval/<stage>_<split>.json``."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for f in sorted((run_dir / "eval").glob("*_*.json")):
        stage, _, split = f.stem.rpartition("_")
        out.setdefault(stage, {})[split] = json.loads(f.read_text())
    return out


def _stages(evals: dict[str, Any]) -> list[str]:
    return [s for s in STAGE_ORDER if s in evals] + sorted(s for s in evals if s not in STAGE_ORDER)


def overall_table(evals: dict[str, dict[str, dict[str, Any]]]) -> str:
    stages = _stages(evals)
    base = evals.get("base", {})
    lines = ["| Model | Test accuracy [95% CI] | vs base | Val accuracy [95% CI] | Test format rate | Val format rate |",
             "|---|---|---|---|---|---|"]
    for s in stages:
        t, v = evals[s].get("test", {}).get("summary"), evals[s].get("val", {}).get("summary")
        bt = base.get("test", {}).get("summary")
        lines.append(f"| {STAGE_TITLES.get(s, s.upper() + ' (RL)')} | {_ci(t) if t else 'n/a'} | "
                     f"{_rel(bt['accuracy'], t['accuracy']) if (t and bt and s != 'base') else '-'} | "
                     f"{_ci(v) if v else 'n/a'} | {_pct(t['format_rate']) if t else 'n/a'} | "
                     f"{_pct(v['format_rate']) if v else 'n/a'} |")
    return "\n".join(lines)


def held_out_table(evals: dict[str, dict[str, dict[str, Any]]]) -> str:
    stages = _stages(evals)
    head = "| Task | " + " | ".join(STAGE_TITLES.get(s, s.upper()) for s in stages) + " | Change (last vs base) |"
    lines = [head, "|---" * (len(stages) + 2) + "|"]
    for task in HELD_OUT_TASKS:
        cells, accs = [], []
        for s in stages:
            b = evals[s].get("test", {}).get("summary", {}).get("by_task", {}).get(task)
            cells.append(f"{_pct(b['accuracy'])} (n={b['n']})" if b else "n/a")
            accs.append(b["accuracy"] if b else float("nan"))
        change = _rel(accs[0], accs[-1]) if len(accs) > 1 else "-"
        lines.append(f"| {TASK_TITLES.get(task, task)} | " + " | ".join(cells) + f" | {change} |")
    return "\n".join(lines)


def training_table(train_dirs: dict[str, Path], evals: dict[str, Any]) -> str:
    lines = ["| Run | Steps | Final train reward | Final train accuracy (last 3 steps) | Val accuracy | Wall time |",
             "|---|---|---|---|---|---|"]
    for name, d in train_dirs.items():
        rows = [r for r in read_jsonl(d / "metrics.jsonl") if "train/reward" in r]
        if not rows:
            continue
        tail = rows[-3:]
        acc = sum(r["train/accuracy"] for r in tail) / len(tail)
        rew = sum(r["train/reward"] for r in tail) / len(tail)
        secs = sum(r.get("time/step_s") or 0 for r in rows)
        v = evals.get(name, {}).get("val", {}).get("summary")
        lines.append(f"| {name} | {rows[-1]['step']} | {rew:.3f} | {_pct(acc)} | {_ci(v) if v else 'n/a'} | "
                     f"{secs / 60:.1f} min |")
    return "\n".join(lines)


def plot_curriculum(metrics: list[dict[str, Any]], out_dir: Path, name: str) -> list[Path]:
    """Stacked arm probabilities, Q per arm, and reward / accuracy / format rate over steps."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in metrics if "train/reward" in r]
    if not rows:
        return []
    steps = [r["step"] for r in rows]
    arms = [a for a in ALL_ARMS if f"curriculum/p/{a}" in rows[0]]
    cmap = plt.get_cmap("tab20")
    paths = []
    if arms:
        fig, ax = plt.subplots(1, 2, figsize=(13, 4.5))
        probs = [[r.get(f"curriculum/p/{a}") or 0.0 for r in rows] for a in arms]
        ax[0].stackplot(steps, probs, labels=arms, colors=[cmap(i) for i in range(len(arms))])
        ax[0].set(title=f"{name}: arm probabilities (after each step's update)", xlabel="step",
                  ylabel="p(arm)", ylim=(0, 1))
        for i, a in enumerate(arms):
            q = [r.get(f"curriculum/q/{a}") for r in rows]
            if any(v is not None for v in q):
                ax[1].plot(steps, [v if v is not None else float("nan") for v in q], label=a, color=cmap(i))
        ax[1].set(title=f"{name}: arm values Q", xlabel="step", ylabel="Q = TD(0) of mean |advantage|")
        ax[1].legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1))
        fig.tight_layout()
        p = out_dir / f"{name}_curriculum.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("train/reward", "mean reward"), ("train/accuracy", "accuracy"),
                       ("train/format_rate", "format rate"), ("eval/val/accuracy", "val accuracy")):
        pts = [(r["step"], r[key]) for r in metrics if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o" if key.startswith("eval") else None, label=label)
    ax.set(title=f"{name}: reward over steps", xlabel="step", ylim=(-0.02, 1.02))
    ax.legend()
    fig.tight_layout()
    p = out_dir / f"{name}_reward.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)
    return paths


def write_run_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.md`` (and PNGs next to it) for one run directory; returns the markdown path."""
    run_dir = Path(run_dir)
    out_dir = Path(out) if out else run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    evals = load_evals(run_dir)
    train_dirs = {d.name: d for d in sorted(run_dir.iterdir()) if (d / "metrics.jsonl").is_file()}
    if (run_dir / "metrics.jsonl").is_file():
        train_dirs[run_dir.name] = run_dir
    if not evals and not train_dirs:
        raise FileNotFoundError(f"{run_dir}: no eval/*.json and no metrics.jsonl: is this a run directory?")
    parts = [f"# seccrm run report: {run_dir.name}", ""]
    info = run_dir / "run_info.json"
    if info.is_file():
        meta = json.loads(info.read_text())
        parts += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in meta.items()] + [""]
    if evals:
        parts += ["## Overall (held-out test tasks; validation = held-back training instances)", "",
                  overall_table(evals), "", "## Held-out POLICY tasks", "", held_out_table(evals), ""]
    if train_dirs:
        parts += ["## Training", "", training_table(train_dirs, evals), ""]
        for name, d in train_dirs.items():
            for p in plot_curriculum(read_jsonl(d / "metrics.jsonl"), out_dir, name):
                parts += [f"![{p.stem}]({p.name})", ""]
    parts += ["Intervals: percentile bootstrap over instances (2,000 resamples). Accuracy = share of completions "
              "scoring 1.0; format rate = share scoring 0.1 or more.", ""]
    md = out_dir / "report.md"
    md.write_text("\n".join(parts))
    return md


def cmd_report(args: argparse.Namespace) -> int:
    from seccrm.cli import CLIError
    try:
        for rd in args.run_dirs:
            out = Path(args.out) / Path(rd).name if args.out and len(args.run_dirs) > 1 else args.out
            print(write_run_report(rd, out))
    except FileNotFoundError as e:
        raise CLIError(str(e)) from e
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("report", help="Write a markdown report with tables and plots from run logs.",
                       description="Reads only logs and evaluation files (eval/*.json, metrics.jsonl) and writes "
                       "report.md plus PNG figures.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", default=None, help="Output folder (default: each run directory).")
    p.set_defaults(func=cmd_report)
