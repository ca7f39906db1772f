"""Reports made from logs and evaluation files, after the fact (training code never calls this).

Two kinds of directory, told apart by ``experiment.json`` / ``runs/``:

- a *run directory* (as ``seccrm demo`` writes it): ``eval/<stage>_<split>.json`` files (stages such
  as ``base``, ``warmup``, ``sec``) and one or more training folders with ``metrics.jsonl``.
  :func:`write_run_report` writes the report's three tables (overall baseline vs trained with
  relative improvement; per held-out task; training metrics) and PNG plots of the curriculum (arm
  probabilities stacked, Q) and of reward over steps.
- an *experiment directory* (as ``seccrm experiment`` writes it): :func:`write_experiment_report`
  compares the curricula over seeds: the same three tables with each curriculum's mean and 95%
  interval over seeds, a paired test of every curriculum against uniform (SEC first, with a verdict
  whose wording follows from the numbers), validation learning curves and the curricula's evolution.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seccrm.data.baselines import BASELINE_TITLES, BASELINES
from seccrm.data.schema import check_rows
from seccrm.evaluation.evaluate import paired_difference
from seccrm.evaluation.stats import paired_bootstrap, paired_permutation_test, relative_change, t_interval
from seccrm.files import read_jsonl
from seccrm.world.arms import ALL_ARMS, HELD_OUT_TASKS, TASK_TITLES
from seccrm.world.rewards import extract_answer

STAGE_ORDER = ("base", "warmup")
STAGE_TITLES = {"base": "Baseline (base model)", "warmup": "After format warm-up"}


def _pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _ci(b: dict[str, Any], key: str = "accuracy") -> str:
    lo, hi = b.get(f"{key}_ci95", (float("nan"), float("nan")))
    return f"{_pct(b[key])} [{_pct(lo)}, {_pct(hi)}]"


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """A run's metrics log, checked row by row (ValueError naming file, line and field); the torn
    last line of a killed run is dropped."""
    rows = read_jsonl(path, skip_torn_tail=True)
    check_rows(path, rows, "metrics")
    return rows


def _rel(base: float, new: float) -> str:
    change = relative_change(base, new)
    return "n/a" if math.isnan(change) else f"{100 * change:+.1f}%"


def load_evals(run_dir: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """stage -> split -> evaluation result, from ``run_dir/eval/<stage>_<split>.json``."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for f in sorted((run_dir / "eval").glob("*_*.json")):
        stage, _, split = f.stem.rpartition("_")
        if stage == "baselines":
            continue
        out.setdefault(stage, {})[split] = json.loads(f.read_text())
    return out


def load_baselines(run_dir: Path) -> dict[str, dict[str, Any]]:
    """split -> baseline table (``seccrm.data.baselines.baseline_table``), from ``eval/baselines_<split>.json``."""
    return {f.stem.removeprefix("baselines_"): json.loads(f.read_text())
            for f in sorted((run_dir / "eval").glob("baselines_*.json"))}


def _by_id(e: dict[str, Any], key: str = "reward", rows: str = "rows") -> dict[str, float]:
    src = e.get(rows, []) if rows == "rows" else e.get("probe", {}).get("rows", [])
    if rows == "rows":
        return {r["id"]: 1.0 if r["reward"] >= 1.0 else 0.0 for r in src}
    return {r["id"]: float(r[key]) for r in src}


def _paired_line(a: dict[str, float], b: dict[str, float], points: bool = True) -> tuple[str, dict[str, float] | None]:
    """``a - b`` over their common instances: in percentage points (``points``) or as plain numbers."""

    ids = sorted(set(a) & set(b))
    if not ids:
        return "n/a", None
    d = paired_difference([a[i] for i in ids], [b[i] for i in ids])
    if points:
        return (f"{100 * d['diff']:+.1f} points, paired 95% CI [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}], "
                f"p = {d['p']:.3g}", d)
    return f"{d['diff']:+.3f}, paired 95% CI [{d['lo']:+.3f}, {d['hi']:+.3f}], p = {d['p']:.3g}", d


def headline(evals: dict[str, dict[str, dict[str, Any]]], baselines: dict[str, dict[str, Any]]) -> list[str]:
    """The report's first lines: did RL move the model past its start and past every trivial baseline?"""

    rl = [s for s in evals if s not in STAGE_ORDER]
    start = "warmup" if "warmup" in evals else ("base" if "base" in evals else None)
    if not rl or start is None:
        return []
    final = sorted(rl)[-1]
    out = ["## Result", ""]
    for split, title in (("val", "Validation (held-back training instances, in distribution)"),
                         ("test", "Held-out test (the three POLICY tasks never trained on)")):
        e1, e0 = evals[final].get(split), evals[start].get(split)
        if not e1 or not e0:
            continue
        a1, a0 = e1["summary"]["accuracy"], e0["summary"]["accuracy"]
        text, d = _paired_line(_by_id(e1), _by_id(e0))
        base = baselines.get(split, {})
        best_name = max(base.get("overall", {"-": 0.0}), key=lambda k: base.get("overall", {"-": 0.0})[k])
        best = base.get("overall", {}).get(best_name)
        verdict = ""
        if best is not None:
            verdict = (f"; best trivial baseline {_pct(best)} ({BASELINE_TITLES.get(best_name, best_name)}): "
                       + ("**beaten**" if a1 > best else "**NOT beaten**"))
        moved = d is not None and d["lo"] > 0
        out.append(f"- **{title}, n = {e1['summary']['n']}**: {STAGE_TITLES.get(start, start)} {_pct(a0)} -> "
                   f"{final.upper()} {_pct(a1)} ({text}){verdict}. "
                   + ("The interval lies above 0: a measured improvement." if moved else
                      "The interval includes 0 or lies below it: no measured improvement."))
        p1, p0 = e1.get("probe"), e0.get("probe")
        if p1 and p0:
            k = p1["summary"]["k"]
            rtext, _ = _paired_line(_by_id(e1, "mean_reward", "probe"), _by_id(e0, "mean_reward", "probe"), False)
            ptext, _ = _paired_line(_by_id(e1, "pass_at_k", "probe"), _by_id(e0, "pass_at_k", "probe"))
            out.append(f"  - sampled ({k} samples per instance at T = {p1['summary']['temperature']}): mean "
                       f"reward {p0['summary']['mean_reward']:.3f} -> {p1['summary']['mean_reward']:.3f} "
                       f"({rtext}); pass@{k} {_pct(p0['summary']['pass_at_k'])} -> "
                       f"{_pct(p1['summary']['pass_at_k'])} ({ptext})")
    return out + [""]


def baselines_table(evals: dict[str, dict[str, dict[str, Any]]], baselines: dict[str, dict[str, Any]]) -> str:
    """Models and trivial baselines on the same instances, split by split."""

    splits = [s for s in ("test", "val") if s in baselines]
    lines = ["| | " + " | ".join(f"{s} accuracy" for s in splits) + " |", "|---" * (len(splits) + 1) + "|"]
    for st in _stages(evals):
        cells = [_pct(evals[st].get(s, {}).get("summary", {}).get("accuracy")) for s in splits]
        lines.append(f"| {STAGE_TITLES.get(st, st.upper() + ' (RL)')} | " + " | ".join(cells) + " |")
    for b in BASELINES:
        cells = [_pct(baselines[s]["overall"].get(b)) for s in splits]
        lines.append(f"| *baseline: {BASELINE_TITLES[b]}* | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
        rows = [r for r in read_metrics(d / "metrics.jsonl")
                if r.get("train/reward") is not None and r.get("train/accuracy") is not None]
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
    baselines = load_baselines(run_dir) if (run_dir / "eval").is_dir() else {}
    parts += headline(evals, baselines)
    info = run_dir / "run_info.json"
    if info.is_file():
        meta = json.loads(info.read_text())
        parts += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in meta.items()] + [""]
    if evals:
        parts += ["## Overall (held-out test tasks; validation = held-back training instances)", "",
                  overall_table(evals), ""]
        if baselines:
            parts += ["## Beside the trivial baselines (same instances)", "",
                      "Constants and positions chosen on the training split (the held-out tasks have none: "
                      "theirs are chosen on the test instances, an upper bound).", "",
                      baselines_table(evals, baselines), ""]
        parts += ["## Held-out POLICY tasks", "", held_out_table(evals), ""]
        parts += _shape_section({split: [(STAGE_TITLES.get(st, st.upper() + " (RL)"), [evals[st][split]])
                                         for st in _stages(evals) if split in evals[st]]
                                 for split in ("val", "test")}, baselines)
    if any("agentic" in e for st in evals.values() for e in st.values()):
        parts += ["## Episodes (agentic mode)", "", agentic_table(evals), ""]
        parts += episode_views(run_dir, _stages(evals))
    warm = run_dir / "warmup" / "warmup_metrics.jsonl"
    if warm.is_file():
        checks = [r for r in read_metrics(warm) if r.get("check")]
        if checks:
            parts += ["## What the format warm-up changed (greedy probe of training instances)", "",
                      "| step | format rate | accuracy | distinct answers / answers | None share | stop |",
                      "|---|---|---|---|---|---|"]
            parts += [f"| {r['step']} | {_pct(r['warmup/format_rate'])} | {_pct(r['warmup/accuracy'])} | "
                      f"{_pct(r['warmup/distinct'])} | {_pct(r['warmup/none_share'])} | {r.get('stop', '')} |"
                      for r in checks] + [""]
    if train_dirs:
        parts += ["## Training", "", training_table(train_dirs, evals), ""]
        for name, d in train_dirs.items():
            for p in plot_curriculum(read_metrics(d / "metrics.jsonl"), out_dir, name):
                parts += [f"![{p.stem}]({p.name})", ""]
    parts += ["Intervals: percentile bootstrap over instances (2,000 resamples). Accuracy = share of completions "
              "scoring 1.0; format rate = share scoring 0.1 or more.", ""]
    md = out_dir / "report.md"
    md.write_text("\n".join(parts))
    return md


# ---------------------------------------------------------------------------- what the model answers
SHAPE_KEYS = ("none_share", "none_acc", "other_acc", "no_block", "distinct")
SHAPE_HEAD = ("`None` answers", "accuracy when `None`", "accuracy otherwise", "no answer block",
              "distinct / given")


def _rate(xs: list[bool]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def answer_shape(e: dict[str, Any]) -> dict[str, float]:
    """What a model answered in one evaluation: the share of ``None`` answers, its accuracy when it
    answered ``None`` and when it answered anything else, the share with no answer block, and distinct
    answers per answer given. A policy that learns to answer ``None`` when unsure shows here first:
    the ``None`` share rises while the accuracy of its other answers may rise too."""
    given, missing = [], 0
    for r in e.get("rows", []):
        content = extract_answer(str(r.get("completion", "")))[0]
        if content is None:
            missing += 1
        else:
            answer = " ".join(content.split())
            given.append(("None" if answer.lower() == "none" else answer, float(r.get("reward", 0.0)) >= 1.0))
    n = len(given) + missing
    none = [ok for a, ok in given if a == "None"]
    other = [ok for a, ok in given if a != "None"]
    return {"n": n, "none_share": len(none) / n if n else math.nan, "none_acc": _rate(none),
            "other_acc": _rate(other), "no_block": missing / n if n else math.nan,
            "distinct": len({a for a, _ in given}) / len(given) if given else math.nan}


def _shape_row(title: str, shapes: list[dict[str, float]]) -> str:
    cells = []
    for k in SHAPE_KEYS:
        vals = [s[k] for s in shapes if not math.isnan(s[k])]
        cells.append(_pct(sum(vals) / len(vals)) if vals else "n/a")
    return f"| {title} | " + " | ".join(cells) + " |"


def answer_shape_table(rows: list[tuple[str, list[dict[str, Any]]]]) -> str:
    """One row per model (a list of evaluations: several seeds are averaged), the columns of
    :func:`answer_shape`."""
    lines = ["| Model | " + " | ".join(SHAPE_HEAD) + " |", "|---" * (len(SHAPE_HEAD) + 1) + "|"]
    lines += [_shape_row(title, [answer_shape(e) for e in evals]) for title, evals in rows if evals]
    return "\n".join(lines)


def _shape_section(rows_by_split: dict[str, list[tuple[str, list[dict[str, Any]]]]],
                   baselines: dict[str, Any]) -> list[str]:
    """The "What the models answer" section: one table per split, with the share of ``None`` golds."""
    out: list[str] = []
    for split, rows in rows_by_split.items():
        if not any(evals for _, evals in rows):
            continue
        gold = baselines.get(split, {}).get("overall", {}).get("always_none")
        note = f" `None` is the gold answer of {_pct(gold)} of these instances." if gold is not None else ""
        out += [f"{'Validation' if split == 'val' else 'Held-out test'}:{note}", "", answer_shape_table(rows), ""]
    if out:
        out = ["## What the models answer (greedy)", "",
               "Accuracy when `None` is the share of its `None` answers that were right; accuracy otherwise, "
               "of its other answers. A model that answers `None` more often after RL while its other answers "
               "get no better has learnt to hedge, not the task.", ""] + out
    return out


def agentic_table(evals: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Per stage and split: accuracy, format rate, and what the episodes took (turns, failed queries,
    tokens written) and how they ended."""
    lines = ["| Stage | split | n | accuracy | format rate | turns | failed queries | model tokens | ended by |",
             "|---|---|---|---|---|---|---|---|---|"]
    for stage in _stages(evals):
        for split in ("val", "test"):
            e = evals[stage].get(split)
            if not e or "agentic" not in e:
                continue
            s, a = e["summary"], e["agentic"]
            ends = ", ".join(f"{k} {v}" for k, v in a.get("end_reasons", {}).items())
            lines.append(f"| {STAGE_TITLES.get(stage, stage.upper() + ' (RL)')} | {split} | {s['n']} | "
                         f"{_pct(s['accuracy'])} | {_pct(s['format_rate'])} | {a['turns']:.1f} | "
                         f"{a['failed_queries']:.2f} | {a['model_tokens']:.0f} | {ends} |")
    return "\n".join(lines)


def _clip(text: str, n: int = 400) -> str:
    text = " ".join(str(text).split()).replace("`", "'")
    return text if len(text) <= n else text[:n] + f" ... ({len(text) - n} more characters)"


def episode_views(run_dir: Path, stages: list[str], per_kind: int = 1) -> list[str]:
    """A few episodes of the last agentic stage on validation, turn by turn (one that ended correct and
    one that did not, where there are), read from ``eval/<stage>_val_trajectories.jsonl``."""
    for stage in reversed(stages):
        path = run_dir / "eval" / f"{stage}_val_trajectories.jsonl"
        if not path.is_file():
            continue
        evals = json.loads((run_dir / "eval" / f"{stage}_val.json").read_text())
        correct = {r["id"]: r["correct"] for r in evals.get("rows", [])}
        trajectories = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        picked = ([t for t in trajectories if correct.get(t["id"])][:per_kind]
                  + [t for t in trajectories if not correct.get(t["id"])][:per_kind])
        out = [f"### What the model did ({STAGE_TITLES.get(stage, stage.upper() + ' (RL)')}, validation)", "",
               f"All {len(trajectories)} episodes are in `eval/{path.name}`.", ""]
        for t in picked:
            out += [f"**{t['id']}** ({'correct' if correct.get(t['id']) else 'wrong'}; ended by {t['end_reason']})", ""]
            for i, turn in enumerate(t["turns"], 1):
                out.append(f"{i}. model: `{_clip(turn['text'], 300) or '(nothing)'}`")
                if turn.get("observation"):
                    out.append(f"   result: `{_clip(turn['observation'], 200)}`")
            out.append("")
        return out
    return []


# ============================================================================ experiment reports
CURRICULUM_ORDER = ("sec", "sec_decay", "uniform", "easy2hard", "hard2easy", "ucb", "learnability")
CURRICULUM_TITLES = {"sec": "SEC (hold)", "sec_decay": "SEC (decay)", "uniform": "uniform",
                     "easy2hard": "easy-to-hard", "hard2easy": "hard-to-easy", "ucb": "UCB (DUMP)",
                     "learnability": "learnability (LILO)"}
ALPHA = 0.05  # significance level of the paired tests


@dataclass
class RunLogs:
    """What one training run of an experiment left on disk (``runs/<curriculum>/seed<k>``)."""

    curriculum: str
    seed: int
    metrics: list[dict[str, Any]]                 # metrics.jsonl lines
    evals: dict[str, dict[str, Any]]              # split -> evaluation of the final model
    curve: dict[int, float]                       # step -> validation accuracy
    timing: dict[str, float]                      # train_s, eval_s

    def acc(self, split: str, key: str = "accuracy") -> float:
        e = self.evals.get(split)
        return float(e["summary"][key]) if e else math.nan


@dataclass
class Experiment:
    path: Path
    plan: dict[str, Any]
    stages: dict[str, dict[str, dict[str, Any]]]  # "base" / "warmup" -> split -> evaluation
    runs: dict[str, dict[int, RunLogs]] = field(default_factory=dict)  # curriculum -> seed -> logs
    timings: dict[str, float] = field(default_factory=dict)

    def start_stage(self) -> str | None:
        """The stage every run started from: the warm-up when there was one, else the base model."""
        return "warmup" if "warmup" in self.stages else ("base" if "base" in self.stages else None)


def is_experiment_dir(path: str | Path) -> bool:
    return (Path(path) / "experiment.json").is_file() or (Path(path) / "runs").is_dir()


def _read_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.is_file() else default


def load_experiment(exp_dir: str | Path) -> Experiment:
    """Read an experiment directory's plan, stage evaluations and every run's logs and evaluations."""
    exp_dir = Path(exp_dir)
    exp = Experiment(exp_dir, _read_json(exp_dir / "experiment.json", {}), load_evals(exp_dir)
                     if (exp_dir / "eval").is_dir() else {}, timings=_read_json(exp_dir / "timings.json", {}))
    for d in sorted((exp_dir / "runs").glob("*/seed*")):
        if not d.is_dir() or not d.name[4:].isdigit():
            continue
        metrics = read_metrics(d / "metrics.jsonl") if (d / "metrics.jsonl").is_file() else []
        evals = {s: json.loads(f.read_text()) for s in ("val", "test") if (f := d / f"eval_{s}.json").is_file()}
        curve = {int(f.stem.rpartition("step")[2]): json.loads(f.read_text())["summary"]["accuracy"]
                 for f in d.glob("eval_val_step*.json")}
        last = max([r["step"] for r in metrics] + [int(exp.plan.get("steps", 0))])
        if "val" in evals and last:
            curve[last] = evals["val"]["summary"]["accuracy"]
        exp.runs.setdefault(d.parent.name, {})[int(d.name[4:])] = RunLogs(
            d.parent.name, int(d.name[4:]), metrics, evals, dict(sorted(curve.items())),
            _read_json(d / "timing.json", {}))
    order = [c for c in CURRICULUM_ORDER if c in exp.runs] + sorted(c for c in exp.runs if c not in CURRICULUM_ORDER)
    exp.runs = {c: dict(sorted(exp.runs[c].items())) for c in order}
    return exp


def _title(cur: str) -> str:
    return CURRICULUM_TITLES.get(cur, cur)


def _seed_stat(runs: dict[int, RunLogs], split: str, key: str = "accuracy") -> tuple[float, float, float, int]:
    """(mean, lo, hi, n) over the seeds that have this evaluation; Student-t interval."""
    vals = [r.acc(split, key) for r in runs.values() if split in r.evals]
    m, lo, hi = t_interval(vals)
    return m, max(lo, 0.0), min(hi, 1.0), len(vals)  # a rate's interval is cut to [0, 1] (nan stays nan)


def _mean_ci(m: float, lo: float, hi: float) -> str:
    return _pct(m) + ("" if math.isnan(lo) else f" [{_pct(lo)}, {_pct(hi)}]")


def _stage_cell(exp: Experiment, stage: str, split: str) -> str:
    s = exp.stages.get(stage, {}).get(split, {}).get("summary")
    return _ci(s) if s else "n/a"


def experiment_overall_table(exp: Experiment) -> str:
    """Table 1: base, warm-up and every curriculum (mean and 95% interval over seeds) on test and val."""
    base = exp.stages.get("base", {}).get("test", {}).get("summary", {}).get("accuracy", math.nan)
    start = exp.stages.get(exp.start_stage() or "", {}).get("test", {}).get("summary", {}).get("accuracy", math.nan)
    start_title = {"warmup": "warm-up", "base": "base"}.get(exp.start_stage() or "", "start")
    lines = [f"| Model | Runs | Test accuracy [95% CI] | vs base (relative) | vs start: {start_title} "
             "| Val accuracy [95% CI] | Test format rate |", "|---|---|---|---|---|---|---|"]
    for stage in [s for s in STAGE_ORDER if s in exp.stages]:
        t = exp.stages[stage].get("test", {}).get("summary")
        lines.append(f"| {STAGE_TITLES[stage]} | 1 model | {_stage_cell(exp, stage, 'test')} | "
                     f"{_rel(base, t['accuracy']) if t and stage != 'base' else '-'} | - | "
                     f"{_stage_cell(exp, stage, 'val')} | {_pct(t['format_rate']) if t else 'n/a'} |")
    for cur, runs in exp.runs.items():
        m, lo, hi, n = _seed_stat(runs, "test")
        vm, vlo, vhi, _ = _seed_stat(runs, "val")
        fm = _seed_stat(runs, "test", "format_rate")[0]
        vs_start = "n/a" if math.isnan(start) or math.isnan(m) else f"{100 * (m - start):+.1f} pts ({_rel(start, m)})"
        lines.append(f"| {_title(cur)} | {n} seed{'s' if n != 1 else ''} | {_mean_ci(m, lo, hi)} | {_rel(base, m)} | "
                     f"{vs_start} | {_mean_ci(vm, vlo, vhi)} | {_pct(fm)} |")
    return "\n".join(lines)


def _task_acc(e: dict[str, Any] | None, task: str) -> tuple[float, int]:
    b = (e or {}).get("summary", {}).get("by_task", {}).get(task)
    return (float(b["accuracy"]), int(b["n"])) if b else (math.nan, 0)


def experiment_held_out_table(exp: Experiment) -> str:
    """Table 2: accuracy per held-out task, base and warm-up vs each curriculum's mean over seeds."""
    stages = [s for s in STAGE_ORDER if s in exp.stages]
    cols = [STAGE_TITLES[s] for s in stages] + [_title(c) for c in exp.runs]
    lines = ["| Task | n | " + " | ".join(cols) + " | SEC vs base |", "|---" * (len(cols) + 3) + "|"]
    for task in HELD_OUT_TASKS:
        cells, n = [], 0
        for s in stages:
            a, n_s = _task_acc(exp.stages[s].get("test"), task)
            cells.append(_pct(a))
            n = n or n_s
        means: dict[str, float] = {}
        for cur, runs in exp.runs.items():
            accs = [a for r in runs.values() if not math.isnan(a := _task_acc(r.evals.get("test"), task)[0])]
            n = n or next((_task_acc(r.evals.get("test"), task)[1] for r in runs.values()), 0)
            means[cur] = sum(accs) / len(accs) if accs else math.nan
            cells.append(_pct(means[cur]))
        base = _task_acc(exp.stages.get("base", {}).get("test"), task)[0]
        lines.append(f"| {TASK_TITLES.get(task, task)} | {n} | " + " | ".join(cells) +
                     f" | {_rel(base, means.get('sec', math.nan))} |")
    return "\n".join(lines)


def _tail_mean(rows: list[dict[str, Any]], key: str, k: int = 3) -> float:
    vals = [r[key] for r in rows if r.get(key) is not None][-k:]
    return sum(vals) / len(vals) if vals else math.nan


def _avg(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else math.nan


def experiment_training_table(exp: Experiment) -> str:
    """Table 3: training metrics per curriculum, each a mean over seeds."""
    lines = ["| Curriculum | Runs | Steps | Final train reward (last 3 steps) | Final train accuracy | Zero-advantage groups "
             "| Final val accuracy | Training steps' time / run | Eval time / run |", "|---|---|---|---|---|---|---|---|---|"]
    for cur, runs in exp.runs.items():
        rs = list(runs.values())
        steps = max((r.metrics[-1]["step"] for r in rs if r.metrics), default=0)
        # step times from the log: they survive a killed and resumed run, a process's clock does not
        train_min = _avg([sum(m.get("time/step_s") or 0 for m in r.metrics) / 60 for r in rs])
        eval_min = _avg([r.timing["eval_s"] / 60 for r in rs if "eval_s" in r.timing])
        lines.append(
            f"| {_title(cur)} | {len(rs)} | {steps} | {_avg([_tail_mean(r.metrics, 'train/reward') for r in rs]):.3f} | "
            f"{_pct(_avg([_tail_mean(r.metrics, 'train/accuracy') for r in rs]))} | "
            f"{_pct(_avg([_tail_mean(r.metrics, 'train/zero_adv_groups') for r in rs]))} | "
            f"{_pct(_avg([r.acc('val') for r in rs]))} | {train_min:.1f} min | "
            + (f"{eval_min:.1f} min |" if not math.isnan(eval_min) else "n/a |"))
    return "\n".join(lines)


def per_seed_table(exp: Experiment) -> str:
    """Every run's final test and validation accuracy, so that the means above can be checked."""
    seeds = sorted({s for runs in exp.runs.values() for s in runs})
    lines = ["| Curriculum | " + " | ".join(f"seed {s}: test / val" for s in seeds) + " |", "|---" * (len(seeds) + 1) + "|"]
    for cur, runs in exp.runs.items():
        cells = [f"{_pct(runs[s].acc('test'))} / {_pct(runs[s].acc('val'))}" if s in runs else "-" for s in seeds]
        lines.append(f"| {_title(cur)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- paired comparisons
def paired_scores(exp: Experiment, a: str, b: str, split: str = "test") -> tuple[Any, Any, list[int], list[str]]:
    """Per-instance correctness of curricula ``a`` and ``b``, paired by seed and instance id.

    Returns ``A``, ``B`` of shape (seeds, instances) (1.0 correct, 0.0 not), the seeds used (those
    both curricula ran and evaluated) and the instance ids (those every one of these runs scored).
    """
    import numpy as np
    ra, rb = exp.runs.get(a, {}), exp.runs.get(b, {})
    seeds = sorted(s for s in ra if s in rb and split in ra[s].evals and split in rb[s].evals)
    by_run = [{row["id"]: 1.0 if row["reward"] >= 1.0 else 0.0 for row in r[s].evals[split]["rows"]}
              for s in seeds for r in (ra, rb)]
    ids = [i for i in (by_run[0] if by_run else {}) if all(i in d for d in by_run)]
    mat = np.array([[d[i] for i in ids] for d in by_run], dtype=float).reshape(len(seeds), 2, len(ids))
    return mat[:, 0, :], mat[:, 1, :], seeds, ids


@dataclass
class Comparison:
    a: str
    b: str
    split: str
    permutation: Any   # seccrm.evaluation.stats.PairedResult
    bootstrap: Any     # seccrm.evaluation.stats.PairedResult
    seed_diffs: list[float]


def compare(exp: Experiment, a: str, b: str, split: str = "test", seed: int = 0) -> Comparison | None:
    """Paired test of ``a`` against ``b``; None when they share no evaluated seed and instance."""
    A, B, seeds, ids = paired_scores(exp, a, b, split)
    if not seeds or not ids:
        return None
    return Comparison(a, b, split, paired_permutation_test(A, B, seed=seed), paired_bootstrap(A, B, seed=seed),
                      [float(x) for x in (A - B).mean(axis=1)])


def compare_to_start(exp: Experiment, a: str, split: str = "val", seed: int = 0) -> Comparison | None:
    """Paired test of curriculum ``a``'s runs against the model they all started from (the warm-up),
    which is paired with every seed's run on the same instances."""
    import numpy as np

    start = exp.stages.get(exp.start_stage() or "", {}).get(split)
    runs = exp.runs.get(a, {})
    seeds = sorted(s for s in runs if split in runs[s].evals)
    if start is None or not seeds:
        return None
    s0 = {row["id"]: 1.0 if row["reward"] >= 1.0 else 0.0 for row in start["rows"]}
    per = [{row["id"]: 1.0 if row["reward"] >= 1.0 else 0.0 for row in runs[s].evals[split]["rows"]} for s in seeds]
    ids = [i for i in s0 if all(i in d for d in per)]
    if not ids:
        return None
    A = np.array([[d[i] for i in ids] for d in per])
    B = np.array([[s0[i] for i in ids]] * len(seeds))
    return Comparison(a, exp.start_stage() or "start", split, paired_permutation_test(A, B, seed=seed),
                      paired_bootstrap(A, B, seed=seed), [float(x) for x in (A - B).mean(axis=1)])


def arm_ratio(runs: dict[int, RunLogs]) -> list[tuple[int, float, str, str]]:
    """Per seed, at the last step: most- over least-favoured arm probability, and the two arms."""
    out = []
    for seed, r in sorted(runs.items()):
        last = r.metrics[-1] if r.metrics else {}
        p = {k.removeprefix("curriculum/p/"): float(v) for k, v in last.items() if k.startswith("curriculum/p/")}
        if p:
            hi, lo = max(p, key=lambda k: p[k]), min(p, key=lambda k: p[k])
            out.append((seed, p[hi] / p[lo] if p[lo] > 0 else math.inf, hi, lo))
    return out


def _ratio_text(run: RunLogs | None, ratio: float, hi: str, lo: str) -> str:
    if ratio > 1 + 1e-6:
        return f"{ratio:.1f}:1 ({hi} over {lo})"
    signal = sum(float(m.get("train/signal_groups") or 0.0) for m in (run.metrics if run else []))
    return "1.0:1 (all arms equal" + (": no drawn group mixed right and wrong answers)" if signal == 0 else ")")


def arm_table(runs: dict[int, RunLogs]) -> str:
    """Where a curriculum went, arm by arm: the last step's probability (mean over seeds), the share
    of the run's prompts the arm got, and the learning signal it showed when drawn (mean r over the
    steps that drew it, then over seeds), with its mean reward. Sorted by final probability."""
    final: dict[str, list[float]] = {}
    drawn: dict[str, list[float]] = {}
    signal: dict[str, list[float]] = {}
    reward: dict[str, list[float]] = {}
    for r in runs.values():
        if not r.metrics:
            continue
        for k, v in r.metrics[-1].items():
            if k.startswith("curriculum/p/"):
                final.setdefault(k.removeprefix("curriculum/p/"), []).append(float(v))
        n = {a: sum(float(row.get(f"curriculum/n/{a}", 0.0)) for row in r.metrics) for a in final}
        total = sum(n.values()) or 1.0
        for a in final:
            drawn.setdefault(a, []).append(n[a] / total)
            rs = [float(row[f"curriculum/r/{a}"]) for row in r.metrics if f"curriculum/r/{a}" in row]
            ws = [float(row[f"curriculum/reward/{a}"]) for row in r.metrics if f"curriculum/reward/{a}" in row]
            if rs:
                signal.setdefault(a, []).append(sum(rs) / len(rs))
            if ws:
                reward.setdefault(a, []).append(sum(ws) / len(ws))
    if not final:
        return ""

    def cell(xs: list[float] | None, fmt: str) -> str:
        return format(sum(xs) / len(xs), fmt) if xs else "-"

    lines = ["| arm | probability at the last step | share of prompts drawn | signal r when drawn | "
             "reward when drawn |", "|---|---|---|---|---|"]
    for a in sorted(final, key=lambda a: -sum(final[a]) / len(final[a])):
        lines.append(f"| {a} | {cell(final[a], '.3f')} | {cell(drawn.get(a), '.1%')} | "
                     f"{cell(signal.get(a), '.2f')} | {cell(reward.get(a), '.3f')} |")
    return "\n".join(lines)


def experiment_baselines_table(exp: Experiment) -> str:
    """The trivial baselines on the experiment's own evaluation sets, beside the start and the curricula."""

    base = {f.stem.removeprefix("baselines_"): json.loads(f.read_text())
            for f in sorted((exp.path / "eval").glob("baselines_*.json"))}
    if not base:
        return ""
    splits = [s for s in ("test", "val") if s in base]
    lines = ["| | " + " | ".join(f"{s} accuracy" for s in splits) + " |", "|---" * (len(splits) + 1) + "|"]
    for b in BASELINES:
        lines.append(f"| *{BASELINE_TITLES[b]}* | " + " | ".join(_pct(base[s]["overall"].get(b)) for s in splits) + " |")
    best = {s: base[s]["best"] for s in splits}
    for cur, runs in exp.runs.items():
        cells = []
        for s in splits:
            m = _seed_stat(runs, s)[0]
            cells.append(f"{_pct(m)}" + ("" if m > best[s] else " (not above every baseline)"))
        lines.append(f"| {_title(cur)} (mean of seeds) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(c: Comparison, what: str) -> str:
    """One plain sentence on whether ``c.a`` beats ``c.b``, worded from the numbers alone.

    "Beats" needs all three: a positive mean difference, permutation p < ALPHA, and a two-level
    bootstrap interval that excludes 0 (the interval also carries run-to-run variance). When only
    one of the two tests fires, the sentence says so: the difference is then not robust across seeds.
    """
    a, b = _title(c.a), _title(c.b)
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


def _title_any(name: str) -> str:
    return STAGE_TITLES.get(name, _title(name)) if name in STAGE_TITLES else _title(name)


def paired_table(comparisons: list[Comparison]) -> str:
    lines = ["| Comparison | Split | Seeds x instances | Mean difference | 95% CI (two-level bootstrap) "
             "| p (permutation) | p (bootstrap) | Per-seed differences (pts) |", "|---|---|---|---|---|---|---|---|"]
    for c in comparisons:
        bt = c.bootstrap
        lines.append(f"| {_title(c.a)} - {_title_any(c.b)} | {c.split} | {bt.n_seeds} x {bt.n_instances} | "
                     f"{100 * bt.mean_diff:+.1f} pts | [{100 * bt.ci_low:+.1f}, {100 * bt.ci_high:+.1f}] | "
                     f"{c.permutation.p_value:.3g} | {bt.p_value:.3g} | "
                     + ", ".join(f"{100 * d:+.1f}" for d in c.seed_diffs) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- figures
def mean_rows(runs: dict[int, RunLogs], prefix: str = "curriculum/") -> list[dict[str, Any]]:
    """Metrics averaged over seeds, step by step (keys under ``prefix``); a step counts every seed
    that logged it, so the mean of stacked probabilities still sums to 1."""
    acc: dict[int, dict[str, list[float]]] = {}
    for r in runs.values():
        for row in r.metrics:
            for k, v in row.items():
                if k.startswith(prefix) and isinstance(v, (int, float)):
                    acc.setdefault(row["step"], {}).setdefault(k, []).append(float(v))
    return [{"step": s, **{k: sum(v) / len(v) for k, v in kv.items()}} for s, kv in sorted(acc.items())]


def plot_accuracy(exp: Experiment, path: Path) -> Path:
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
            s = exp.stages.get(stage, {}).get(split, {}).get("summary")
            if s:
                ax.axhline(s["accuracy"], linestyle=style, color="tab:red", label=STAGE_TITLES[stage])
        ax.set_xticks(range(len(curs)), [_title(c) for c in curs], rotation=25, ha="right")
        ax.set(title=f"final {split} accuracy (dots: seeds; bars: mean, 95% t-interval)", ylabel="accuracy",
               ylim=(-0.03, 1.03))
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(exp: Experiment, path: Path) -> Path:
    """Validation accuracy over steps (mean over seeds, band = min..max) and training reward."""
    plt = _pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(13, 4.2))
    start = exp.stages.get(exp.start_stage() or "", {}).get("val", {}).get("summary", {}).get("accuracy")
    for i, (cur, runs) in enumerate(exp.runs.items()):
        color = plt.get_cmap("tab10")(i)
        steps = sorted({s for r in runs.values() for s in r.curve} | ({0} if start is not None else set()))
        pts = [(s, [start] if s == 0 else [r.curve[s] for r in runs.values() if s in r.curve]) for s in steps]
        pts = [(s, v) for s, v in pts if v]
        if pts:
            ax[0].plot([s for s, _ in pts], [sum(v) / len(v) for _, v in pts], marker="o", color=color, label=_title(cur))
            ax[0].fill_between([s for s, _ in pts], [min(v) for _, v in pts], [max(v) for _, v in pts], color=color, alpha=0.15)
        rew = mean_rows(runs, "train/reward")
        ax[1].plot([r["step"] for r in rew], [r["train/reward"] for r in rew], color=color, label=_title(cur))
    ax[0].set(title="validation accuracy (step 0 = start model; mean over seeds, band min..max)", xlabel="step",
              ylabel="accuracy")
    ax[1].set(title="training reward (mean over seeds)", xlabel="step", ylabel="mean reward")
    for a in ax:
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------- the report
def _composition(exp: Experiment) -> str:
    """What the evaluation sets hold, by skill and by level (from the start model's evaluation)."""
    stage = exp.stages.get(exp.start_stage() or "", {})
    out = []
    for split in ("val", "test"):
        s = stage.get(split, {}).get("summary")
        if s:
            parts = [", ".join(f"{k} {v['n']}" for k, v in s.get(f"by_{key}", {}).items()) for key in ("skill", "difficulty")]
            out.append(f"{split}: {s['n']} ({'; '.join(parts)})")
    return " / ".join(out) or "n/a"


def _setup_lines(exp: Experiment) -> list[str]:
    p, t = exp.plan, exp.plan.get("train", {})
    ran = list(exp.runs)
    seeds = sorted({s for runs in exp.runs.values() for s in runs})
    warm = _read_json(exp.path / "warmup_decision.json", {})
    rows = [("model", p.get("model", "?")), ("data", p.get("data", "?")), ("preset", p.get("preset", "?")),
            ("GRPO steps per run", p.get("steps", "?")),
            ("prompts per step x completions", f"{t.get('prompts_per_step', '?')} x {t.get('group_size', '?')}"),
            ("learning rate, max new tokens", f"{t.get('lr', '?')}, {t.get('max_new_tokens', '?')}"),
            ("curricula run", ", ".join(_title(c) for c in ran) or "none"),
            ("seeds", ", ".join(map(str, seeds)) or "none"),
            ("format warm-up", f"{warm.get('steps', '?')} steps ({warm.get('reason', 'no record')})" if warm else "no record"),
            ("evaluation", f"greedy, {p.get('eval_val', '?')} validation and {p.get('eval_test', '?')} test instances "
                           "(fixed stratified subsets, the same for every model"
                           + (f"; only prompts of at most {p['eval_max_prompt_tokens']} tokens"
                              if p.get("eval_max_prompt_tokens") else "")
                           + (f", on test {p['eval_test_max_prompt_tokens']}"
                              if p.get("eval_test_max_prompt_tokens", p.get("eval_max_prompt_tokens"))
                              != p.get("eval_max_prompt_tokens") and p.get("eval_test_max_prompt_tokens") else "")
                           + ")"),
            ("evaluation sets", _composition(exp)),
            ("training prompts", f"at most {t['max_prompt_tokens']} tokens" if t.get("max_prompt_tokens") else "all"),
            ("machine", p.get("machine", "?")), ("command", f"`{p.get('command', '?')}`")]
    if exp.timings:
        rows.append(("wall time", ", ".join(f"{k.removesuffix('_s').replace('_', ' ')} {v / 60:.1f} min"
                                            for k, v in exp.timings.items())))
    sec_cfg = _read_json(next(iter(sorted(exp.path.glob("runs/sec*/seed*/config.json"))), exp.path / "none"), {})
    if "tau" in sec_cfg:
        rows.append(("SEC", f"tau {sec_cfg['tau']}, alpha {sec_cfg.get('alpha', '?')}, learning signal "
                            f"`{sec_cfg.get('curriculum_signal', '?')}`"))
    stats = next(exp.path.glob("runs/*/seed*/data_stats.json"), None)  # same data and limit for every run
    if stats is not None:
        pools = json.loads(stats.read_text()).get("pool_sizes", {})
        rows.append(("arms with training instances", f"{len(pools)} of {len(ALL_ARMS)}: "
                     + ", ".join(f"{a} ({n})" for a, n in pools.items())))
    lines = ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    missing = [c for c in CURRICULUM_ORDER if c not in exp.runs]
    if missing or len(seeds) < 3:
        lines += ["", f"**Reduced experiment.** Ran {len(ran)} of the {len(CURRICULUM_ORDER)} curricula"
                  + (f" (not run: {', '.join(_title(c) for c in missing)})" if missing else "")
                  + f" with {len(seeds)} seed{'s' if len(seeds) != 1 else ''}"
                  + (f", to fit the budget of the `{p['preset']}` preset." if p.get("preset") else ".")]
    return lines


def write_experiment_report(exp_dir: str | Path, out: str | Path | None = None, figures: bool = True) -> Path:
    """Write ``report.md`` and its PNG figures (unless ``figures`` is False) for an experiment directory;
    returns the markdown path."""
    exp = load_experiment(exp_dir)
    if not exp.runs and not exp.stages:
        raise FileNotFoundError(f"{exp_dir}: no runs/<curriculum>/seed<k> and no eval/*.json: is this an experiment?")
    out_dir = Path(out) if out else exp.path
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [f"# seccrm experiment report: {exp.path.name}", ""] + _setup_lines(exp) + [""]
    comps = [c for cur in exp.runs if cur != "uniform" for split in ("test", "val")
             if (c := compare(exp, cur, "uniform", split)) is not None]
    rivals = [cur for cur in exp.runs if cur not in ("sec", "uniform")]  # SEC against the other curricula too
    comps += [c for cur in rivals for split in ("test", "val") if (c := compare(exp, "sec", cur, split)) is not None]
    sec = [c for c in comps if c.a == "sec"]
    parts += ["## Does SEC beat uniform" + "".join(f" and {_title(c)}" for c in rivals[:1])
              + (" and the other curricula" if len(rivals) > 1 else "") + "?", ""]
    if sec:
        parts += [f"- {verdict(c, {'test': 'held-out test accuracy', 'val': 'validation accuracy'}[c.split])}"
                  for c in sec]
    else:
        parts += ["No comparison: SEC and uniform do not both have evaluated runs with a common seed."]
    starts = [c for cur in exp.runs for split in ("val", "test") if (c := compare_to_start(exp, cur, split))]
    if starts:
        parts += ["", "## Does RL move the model past where it started?", "",
                  "Each curriculum's runs against the model they all started from, paired by instance:", "",
                  paired_table(starts)]
    ratios = arm_ratio(exp.runs.get("sec", {}))
    if ratios:
        parts += ["", "SEC's arm probabilities at the last step, most- over least-favoured arm: " + "; ".join(
            f"seed {s}: {_ratio_text(exp.runs['sec'].get(s), r, hi, lo)}" for s, r, hi, lo in ratios) + "."]
        cfg = _read_json(next(iter(sorted(exp.path.glob("runs/sec/seed*/config.json"))), exp.path / "none"), {})
        signal = f" (`{cfg['curriculum_signal']}`)" if cfg.get("curriculum_signal") else ""
        parts += ["", f"Where SEC went, arm by arm (mean over seeds; r is the curriculum's learning signal{signal} "
                  "when the arm was drawn):",
                  "", arm_table(exp.runs["sec"])]
    btable = experiment_baselines_table(exp)
    if btable:
        parts += ["", "## Beside the trivial baselines (same evaluation instances)", "", btable]
    base = {f.stem.removeprefix("baselines_"): json.loads(f.read_text())
            for f in sorted((exp.path / "eval").glob("baselines_*.json"))}
    shapes = {split: [(STAGE_TITLES[st], [exp.stages[st][split]]) for st in STAGE_ORDER
                      if split in exp.stages.get(st, {})]
              + [(f"{_title(cur)} (mean of {sum(split in r.evals for r in runs.values())} seeds)",
                  [r.evals[split] for r in runs.values() if split in r.evals]) for cur, runs in exp.runs.items()]
              for split in ("val", "test")}
    parts += [""] + _shape_section(shapes, base)
    parts += ["## 1. Overall: baseline vs trained", "", experiment_overall_table(exp), "",
              "## 2. Held-out POLICY tasks (test accuracy, mean over seeds)", "", experiment_held_out_table(exp), "",
              "## 3. Training", "", experiment_training_table(exp), "", "### Every run", "", per_seed_table(exp), ""]
    if comps:
        parts += ["## Paired tests against uniform", "", paired_table(comps), ""]
    if exp.runs and figures:
        parts += ["## Figures", "", f"![final accuracy]({plot_accuracy(exp, out_dir / 'accuracy.png').name})", "",
                  f"![learning curves]({plot_curves(exp, out_dir / 'curves.png').name})", ""]
        for cur, runs in exp.runs.items():
            png = plot_arms(mean_rows(runs), out_dir / f"evolution_{cur}.png", f"{_title(cur)} (mean of {len(runs)} seeds)")
            if png:
                parts += [f"![{cur} evolution]({png.name})", ""]
    parts += ["## Method", "",
              "- Accuracy: share of greedy completions scoring 1.0; format rate: share scoring 0.1 or more.",
              "- Curriculum rows: mean over seeds with a Student-t 95% interval over seeds (t with seeds - 1 degrees "
              "of freedom, cut to [0, 100%]; none with one seed). Base and warm-up rows: one model each, percentile bootstrap over "
              "instances.",
              "- Paired tests: run k of one curriculum is paired with run k of uniform (same seed, same start, same "
              "test instances). Differences are per (seed, instance) correctness. The p-value is a two-sided sign-flip "
              "permutation test over those pairs (10,000 permutations); the interval is a two-level paired bootstrap "
              "(seeds, then instances, with replacement; 4,000 resamples), which also carries run-to-run variance and "
              "is conservative. A curriculum *beats* uniform only when the mean difference is positive, p < 0.05 and "
              "the interval excludes 0.", ""]
    md = out_dir / "report.md"
    md.write_text("\n".join(parts))
    return md
