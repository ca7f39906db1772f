"""The report's tables, one function each, for both kinds of result.

A run directory (``kind == "run"``) is an experiment with one seed per RL stage; its rows are single
models, each with its own bootstrap interval over instances. An experiment's curriculum rows are means
over seeds with a Student-t interval over seeds. Where the two layouts differ (a column of runs, a
column against the start model), the table says which columns it shows for which kind.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from seccrm.data.baselines import BASELINE_TITLES, BASELINES
from seccrm.evaluation.comparisons import STAGE_TITLES, title
from seccrm.evaluation.results import STAGE_ORDER, EvalResult, ExperimentResult, RunResult, Score
from seccrm.evaluation.stats import relative_change, t_interval
from seccrm.world.arms import HELD_OUT_TASKS, TASK_TITLES
from seccrm.world.rewards import extract_answer

SPLIT_TITLES = {"val": "Validation", "test": "Held-out test"}


# ---------------------------------------------------------------------------- cells
def pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def ci(s: Score | None) -> str:
    """A single model's accuracy with its bootstrap interval over instances."""
    return f"{pct(s.accuracy)} [{pct(s.accuracy_ci[0])}, {pct(s.accuracy_ci[1])}]" if s else "n/a"


def rel(base: float, new: float) -> str:
    change = relative_change(base, new)
    return "n/a" if math.isnan(change) else f"{100 * change:+.1f}%"


def mean_ci(m: float, lo: float, hi: float) -> str:
    return pct(m) + ("" if math.isnan(lo) else f" [{pct(lo)}, {pct(hi)}]")


def avg(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else math.nan


def seed_stat(runs: dict[int, RunResult], split: str, key: str = "accuracy") -> tuple[float, float, float, int]:
    """(mean, lo, hi, n) over the seeds that have this evaluation; Student-t interval."""
    vals = [r.acc(split, key) for r in runs.values() if split in r.evals]
    m, lo, hi = t_interval(vals)
    return m, max(lo, 0.0), min(hi, 1.0), len(vals)  # a rate's interval is cut to [0, 1] (nan stays nan)


def _summary(e: EvalResult | None) -> Score | None:
    return e.summary if e else None


def model_title(r: ExperimentResult, name: str, short: bool = False) -> str:
    """A row's title: a start stage's, an RL stage of a run directory (``SEC (RL)``) or a curriculum's."""
    if name in STAGE_TITLES:
        return STAGE_TITLES[name]
    if r.kind == "run":
        return name.upper() if short else name.upper() + " (RL)"
    return title(name)


def models(r: ExperimentResult) -> list[tuple[str, dict[str, EvalResult]]]:
    """Every single model of a run directory, in report order: the start stages, then the RL runs
    that were evaluated (name -> split -> evaluation)."""
    out = [(s, r.stages[s]) for s in STAGE_ORDER if s in r.stages]
    return out + [(n, runs[0].evals) for n, runs in r.runs.items() if runs[0].evals]


# ---------------------------------------------------------------------------- tables
def overall_table(r: ExperimentResult) -> str:
    """Table 1: the start models and the trained ones on test and validation. A run directory shows
    each model's own interval and both format rates; an experiment, each curriculum's mean and
    interval over seeds and its change against the start model."""
    base = _summary(r.stage("base", "test"))
    if r.kind == "run":
        lines = ["| Model | Test accuracy [95% CI] | vs base | Val accuracy [95% CI] | Test format rate | Val format rate |",
                 "|---|---|---|---|---|---|"]
        for name, ev in models(r):
            t, v = _summary(ev.get("test")), _summary(ev.get("val"))
            lines.append(f"| {model_title(r, name)} | {ci(t)} | "
                         f"{rel(base.accuracy, t.accuracy) if (t and base and name != 'base') else '-'} | {ci(v)} | "
                         f"{pct(t.format_rate) if t else 'n/a'} | {pct(v.format_rate) if v else 'n/a'} |")
        return "\n".join(lines)
    b = base.accuracy if base else math.nan
    start = _summary(r.start("test"))
    s0 = start.accuracy if start else math.nan
    lines = [f"| Model | Runs | Test accuracy [95% CI] | vs base (relative) | vs start: "
             f"{ {'warmup': 'warm-up', 'base': 'base'}.get(r.start_stage() or '', 'start')} "
             "| Val accuracy [95% CI] | Test format rate |", "|---|---|---|---|---|---|---|"]
    for stage in [s for s in STAGE_ORDER if s in r.stages]:
        t = _summary(r.stage(stage, "test"))
        lines.append(f"| {STAGE_TITLES[stage]} | 1 model | {ci(t)} | {rel(b, t.accuracy) if t and stage != 'base' else '-'} "
                     f"| - | {ci(_summary(r.stage(stage, 'val')))} | {pct(t.format_rate) if t else 'n/a'} |")
    for cur, runs in r.runs.items():
        m, lo, hi, n = seed_stat(runs, "test")
        vs_start = "n/a" if math.isnan(s0) or math.isnan(m) else f"{100 * (m - s0):+.1f} pts ({rel(s0, m)})"
        lines.append(f"| {title(cur)} | {n} seed{'s' if n != 1 else ''} | {mean_ci(m, lo, hi)} | {rel(b, m)} | "
                     f"{vs_start} | {mean_ci(*seed_stat(runs, 'val')[:3])} | "
                     f"{pct(seed_stat(runs, 'test', 'format_rate')[0])} |")
    return "\n".join(lines)


def _task(e: EvalResult | None, task: str) -> Score | None:
    return e.by_task.get(task) if e else None


def held_out_table(r: ExperimentResult) -> str:
    """Table 2: test accuracy per held-out task, each model a column (an experiment's curricula: the
    mean over seeds), and the change of the last (run directory) or of SEC (experiment) against base."""
    if r.kind == "run":
        names = [n for n, _ in models(r)]
        lines = ["| Task | " + " | ".join(model_title(r, n, short=True) for n in names) + " | Change (last vs base) |",
                 "|---" * (len(names) + 2) + "|"]
        for task in HELD_OUT_TASKS:
            scores = [_task(ev.get("test"), task) for _, ev in models(r)]
            accs = [s.accuracy if s else math.nan for s in scores]
            lines.append(f"| {TASK_TITLES.get(task, task)} | " + " | ".join(
                f"{pct(s.accuracy)} (n={s.n})" if s else "n/a" for s in scores)
                + f" | {rel(accs[0], accs[-1]) if len(accs) > 1 else '-'} |")
        return "\n".join(lines)
    stages = [s for s in STAGE_ORDER if s in r.stages]
    cols = [STAGE_TITLES[s] for s in stages] + [title(c) for c in r.runs]
    lines = ["| Task | n | " + " | ".join(cols) + " | SEC vs base |", "|---" * (len(cols) + 3) + "|"]
    for task in HELD_OUT_TASKS:
        found = [_task(r.stage(s, "test"), task) for s in stages]
        cells = [pct(s.accuracy if s else math.nan) for s in found]
        n = next((s.n for s in found if s and s.n), 0)
        means: dict[str, float] = {}
        for cur, runs in r.runs.items():
            seen = [s for run in runs.values() if (s := _task(run.evals.get("test"), task))]
            n = n or (seen[0].n if seen else 0)
            means[cur] = avg([s.accuracy for s in seen]) if seen else math.nan
            cells.append(pct(means[cur]))
        base = _task(r.stage("base", "test"), task)
        lines.append(f"| {TASK_TITLES.get(task, task)} | {n} | " + " | ".join(cells) +
                     f" | {rel(base.accuracy if base else math.nan, means.get('sec', math.nan))} |")
    return "\n".join(lines)


def tail_mean(rows: list[dict[str, Any]], key: str, k: int = 3) -> float:
    vals = [r[key] for r in rows if r.get(key) is not None][-k:]
    return sum(vals) / len(vals) if vals else math.nan


def _minutes(metrics: list[dict[str, Any]]) -> float:
    # step times from the log: they survive a killed and resumed run, a process's clock does not
    return sum(m.get("time/step_s") or 0 for m in metrics) / 60


def training_table(r: ExperimentResult) -> str:
    """Table 3: training metrics per run (run directory) or per curriculum, each a mean over seeds."""
    if r.kind == "run":
        lines = ["| Run | Steps | Final train reward | Final train accuracy (last 3 steps) | Val accuracy | Wall time |",
                 "|---|---|---|---|---|---|"]
        for name in r.train_order:
            run = r.runs[name][0]
            rows = [m for m in run.metrics if m.get("train/reward") is not None and m.get("train/accuracy") is not None]
            if rows:
                lines.append(f"| {name} | {rows[-1]['step']} | {tail_mean(rows, 'train/reward'):.3f} | "
                             f"{pct(tail_mean(rows, 'train/accuracy'))} | {ci(_summary(run.evals.get('val')))} | "
                             f"{_minutes(rows):.1f} min |")
        return "\n".join(lines)
    lines = ["| Curriculum | Runs | Steps | Final train reward (last 3 steps) | Final train accuracy | Zero-advantage groups "
             "| Final val accuracy | Training steps' time / run | Eval time / run |", "|---|---|---|---|---|---|---|---|---|"]
    for cur, runs in r.runs.items():
        rs = list(runs.values())
        eval_min = avg([x.timing["eval_s"] / 60 for x in rs if "eval_s" in x.timing])
        lines.append(
            f"| {title(cur)} | {len(rs)} | {max((x.metrics[-1]['step'] for x in rs if x.metrics), default=0)} | "
            f"{avg([tail_mean(x.metrics, 'train/reward') for x in rs]):.3f} | "
            f"{pct(avg([tail_mean(x.metrics, 'train/accuracy') for x in rs]))} | "
            f"{pct(avg([tail_mean(x.metrics, 'train/zero_adv_groups') for x in rs]))} | "
            f"{pct(avg([x.acc('val') for x in rs]))} | {avg([_minutes(x.metrics) for x in rs]):.1f} min | "
            + (f"{eval_min:.1f} min |" if not math.isnan(eval_min) else "n/a |"))
    return "\n".join(lines)


def per_seed_table(r: ExperimentResult) -> str:
    """Every run's final test and validation accuracy, so that the means above can be checked."""
    seeds = r.seeds
    lines = ["| Curriculum | " + " | ".join(f"seed {s}: test / val" for s in seeds) + " |", "|---" * (len(seeds) + 1) + "|"]
    for cur, runs in r.runs.items():
        cells = [f"{pct(runs[s].acc('test'))} / {pct(runs[s].acc('val'))}" if s in runs else "-" for s in seeds]
        lines.append(f"| {title(cur)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def baselines_table(r: ExperimentResult) -> str:
    """The trivial baselines beside the models on the same instances: a run directory lists its models
    first; an experiment lists the baselines first, then each curriculum's mean over seeds, marked
    where it is not above every baseline. Empty when there are no baselines."""
    splits = [s for s in ("test", "val") if s in r.baselines]
    if not splits:
        return ""
    lines = ["| | " + " | ".join(f"{s} accuracy" for s in splits) + " |", "|---" * (len(splits) + 1) + "|"]
    if r.kind == "run":
        lines += [f"| {model_title(r, n)} | " + " | ".join(pct(e.summary.accuracy) if (e := ev.get(s)) else "n/a"
                                                          for s in splits) + " |" for n, ev in models(r)]
    prefix = "baseline: " if r.kind == "run" else ""
    for b in BASELINES:
        lines.append(f"| *{prefix}{BASELINE_TITLES[b]}* | " + " | ".join(pct(r.baselines[s].overall.get(b))
                                                                       for s in splits) + " |")
    for cur, runs in (r.runs.items() if r.kind != "run" else []):
        means = {s: seed_stat(runs, s)[0] for s in splits}
        lines.append(f"| {title(cur)} (mean of seeds) | " + " | ".join(
            pct(m) + ("" if m > r.baselines[s].best else " (not above every baseline)") for s, m in means.items()) + " |")
    lines += ["", "Constants and positions are chosen on the training split for validation; the held-out test "
              "tasks have no training instances, so theirs are chosen on the scored test instances (an upper bound)."]
    return "\n".join(lines)


def _queries_text(per_id: dict[str, tuple[float, float]]) -> str:
    """`` (Q queries, R ran)`` per episode, where the evaluation recorded them."""
    if not per_id:
        return ""
    n = len(per_id)
    return f" ({sum(v[0] for v in per_id.values()) / n:.1f} queries, {sum(v[1] for v in per_id.values()) / n:.1f} ran)"


def agentic_table(r: ExperimentResult) -> str:
    """Per model and split: accuracy, format rate, and what the episodes took (turns, failed queries,
    tokens written) and how they ended."""
    lines = ["| Stage | split | n | accuracy | format rate | turns | failed queries | model tokens | ended by |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, ev in models(r):
        for split in ("val", "test"):
            e = ev.get(split)
            if e and e.episodes:
                s, a = e.summary, e.episodes
                lines.append(f"| {model_title(r, name)} | {split} | {s.n} | {pct(s.accuracy)} | {pct(s.format_rate)} | "
                             f"{a.turns:.1f}{_queries_text(a.queries)} | {a.failed_queries:.2f} | {a.model_tokens:.0f} | "
                             + ", ".join(f"{k} {v}" for k, v in a.end_reasons.items()) + " |")
    return "\n".join(lines)


def _clip(text: str, n: int = 400) -> str:
    text = " ".join(str(text).split()).replace("`", "'")
    return text if len(text) <= n else text[:n] + f" ... ({len(text) - n} more characters)"


def episode_views(r: ExperimentResult, per_kind: int = 1) -> list[str]:
    """A few episodes of the last agentic model on validation, turn by turn (one that ended correct and
    one that did not, where there are), read from ``eval/<stage>_val_trajectories.jsonl``."""
    for name, ev in reversed(models(r)):
        path = Path(r.path) / "eval" / f"{name}_val_trajectories.jsonl"
        if not path.is_file():
            continue
        correct = {row.id: row.correct for row in ev["val"].rows} if "val" in ev else {}
        trajectories = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        picked = ([t for t in trajectories if correct.get(t["id"])][:per_kind]
                  + [t for t in trajectories if not correct.get(t["id"])][:per_kind])
        out = [f"### What the model did ({model_title(r, name)}, validation)", "",
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


# ---------------------------------------------------------------------------- what the models answer
SHAPE_KEYS = ("none_share", "none_acc", "other_acc", "no_block", "distinct")
SHAPE_HEAD = ("`None` answers", "accuracy when `None`", "accuracy otherwise", "no answer block",
              "distinct / given")


def _rate(xs: list[bool]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def answer_shape(e: EvalResult) -> dict[str, float]:
    """What a model answered in one evaluation: the share of ``None`` answers, its accuracy when it
    answered ``None`` and when it answered anything else, the share with no answer block, and distinct
    answers per answer given. A policy that learns to answer ``None`` when unsure shows here first:
    the ``None`` share rises while the accuracy of its other answers may rise too."""
    given, missing = [], 0
    for row in e.rows:
        content = extract_answer(row.completion)[0]
        if content is None:
            missing += 1
        else:
            answer = " ".join(content.split())
            given.append(("None" if answer.lower() == "none" else answer, row.reward >= 1.0))
    n = len(given) + missing
    none = [ok for a, ok in given if a == "None"]
    other = [ok for a, ok in given if a != "None"]
    return {"n": n, "none_share": len(none) / n if n else math.nan, "none_acc": _rate(none),
            "other_acc": _rate(other), "no_block": missing / n if n else math.nan,
            "distinct": len({a for a, _ in given}) / len(given) if given else math.nan}


def answer_shape_table(rows: list[tuple[str, list[EvalResult]]]) -> str:
    """One row per model (a list of evaluations: several seeds are averaged, a seed's 'n/a' left out
    of a column's mean), the columns of :func:`answer_shape`."""
    lines = ["| Model | " + " | ".join(SHAPE_HEAD) + " |", "|---" * (len(SHAPE_HEAD) + 1) + "|"]
    for name, evals in rows:
        if evals:
            shapes = [answer_shape(e) for e in evals]
            lines.append(f"| {name} | " + " | ".join(pct(avg([s[k] for s in shapes])) for k in SHAPE_KEYS) + " |")
    return "\n".join(lines)


def shape_section(r: ExperimentResult) -> list[str]:
    """The "What the models answer" section: one table per split, with the share of ``None`` golds.
    An experiment's curricula are averaged over their seeds."""
    out: list[str] = []
    for split in ("val", "test"):
        if r.kind == "run":
            rows = [(model_title(r, n), [ev[split]]) for n, ev in models(r) if split in ev]
        else:
            rows = [(STAGE_TITLES[st], [e]) for st in STAGE_ORDER if (e := r.stage(st, split))]
            rows += [(f"{title(cur)} (mean of {sum(split in x.evals for x in runs.values())} seeds)",
                      [x.evals[split] for x in runs.values() if split in x.evals]) for cur, runs in r.runs.items()]
        if not any(evals for _, evals in rows):
            continue
        gold = r.baselines[split].overall.get("always_none") if split in r.baselines else None
        note = f" `None` is the gold answer of {pct(gold)} of these instances." if gold is not None else ""
        out += [f"{SPLIT_TITLES[split]}:{note}", "", answer_shape_table(rows), ""]
    if out:
        out = ["## What the models answer (greedy)", "",
               "Accuracy when `None` is the share of its `None` answers that were right; accuracy otherwise, "
               "of its other answers. A model that answers `None` more often after RL while its other answers "
               "get no better has learnt to hedge, not the task.", ""] + out
    return out


def arm_table(runs: dict[int, RunResult]) -> str:
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
            for into, key in ((signal, "r"), (reward, "reward")):
                xs = [float(row[f"curriculum/{key}/{a}"]) for row in r.metrics if f"curriculum/{key}/{a}" in row]
                if xs:
                    into.setdefault(a, []).append(sum(xs) / len(xs))
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


def no_signal_share(run: RunResult) -> float:
    """The share of a run's drawn prompt groups that gave no correctness signal (every completion right
    or every one wrong), from ``train/signal_groups`` and ``train/drawn_groups`` per step; nan when the
    log lacks them. What SEC is for: drawing fewer prompts that teach nothing."""
    steps = [r for r in run.metrics if "train/signal_groups" in r and "train/drawn_groups" in r]
    drawn = sum(float(r["train/drawn_groups"]) for r in steps)
    signal = sum(float(r["train/signal_groups"]) * float(r["train/drawn_groups"]) for r in steps)
    return 1.0 - signal / drawn if drawn else math.nan


def no_signal_table(runs: dict[str, dict[int, RunResult]], against: str = "sec") -> str:
    """Per curriculum, the share of drawn groups without a correctness signal (mean over seeds), and
    ``against`` minus it paired by seed with a t interval over the seeds' differences."""
    shares = {c: {s: no_signal_share(r) for s, r in by_seed.items()} for c, by_seed in runs.items()}
    shares = {c: {s: v for s, v in d.items() if not math.isnan(v)} for c, d in shares.items()}
    if against not in shares or not shares[against]:
        return ""
    lines = [f"| curriculum | seeds | drawn groups without a correctness signal | {title(against)} minus it, "
             "paired by seed, 95% t interval |", "|---|---|---|---|"]
    for c, d in shares.items():
        if not d:
            continue
        mean = sum(d.values()) / len(d)
        common = sorted(set(d) & set(shares[against]))
        diff = "-"
        if c != against and len(common) >= 2:
            m, lo, hi = t_interval([shares[against][s] - d[s] for s in common])
            diff = f"{100 * m:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}] ({len(common)} seeds)"
        elif c != against and len(common) == 1:
            diff = f"{100 * (shares[against][common[0]] - d[common[0]]):+.1f} points (1 seed, no interval)"
        lines.append(f"| {title(c)} | {len(d)} | {mean:.1%} | {diff} |")
    return "\n".join(lines)


def favoured_arm_table(runs: dict[str, dict[int, RunResult]], cur: str = "sec", against: str = "uniform") -> str:
    """Validation accuracy of ``cur`` and ``against`` on the arms ``cur`` favoured and on the others,
    paired by seed: per seed, the favoured arms are those whose last-step probability lies above the
    uniform share; each seed contributes the two runs' mean accuracy on the same instances of those
    arms, and the difference gets a t interval over seeds. Empty without both runs' evaluations."""
    if cur not in runs or against not in runs:
        return ""
    diffs: dict[str, list[float]] = {"favoured": [], "other": []}
    accs: dict[str, list[tuple[float, float]]] = {"favoured": [], "other": []}
    sizes: dict[str, int] = {"favoured": 0, "other": 0}
    for seed, run in runs[cur].items():
        other = runs[against].get(seed)
        e1, e0 = run.evals.get("val"), other.evals.get("val") if other else None
        probs = {k.removeprefix("curriculum/p/"): float(v) for k, v in (run.metrics[-1] if run.metrics else {}).items()
                 if k.startswith("curriculum/p/")}
        if not e1 or not e0 or not probs:
            continue
        favoured = {a for a, p in probs.items() if p > 1.0 / len(probs)}
        base = {r.id: r.correct for r in e0.rows}
        for part, keep in (("favoured", True), ("other", False)):
            pairs = [(float(r.correct), float(base[r.id])) for r in e1.rows if r.id in base and (r.arm in favoured) == keep]
            if pairs:
                a1, a0 = (sum(x) / len(pairs) for x in zip(*pairs, strict=True))
                accs[part].append((a1, a0))
                diffs[part].append(a1 - a0)
                sizes[part] += len(pairs)
    if not diffs["favoured"]:
        return ""
    lines = [f"| arms | seeds | instances | {title(cur)} | {title(against)} | difference, paired by seed, 95% t interval |",
             "|---|---|---|---|---|---|"]
    for part, what in (("favoured", f"favoured by {title(cur)} (last-step probability above uniform's)"),
                       ("other", "the others")):
        d = diffs[part]
        if not d:
            continue
        m, lo, hi = t_interval(d) if len(d) >= 2 else (d[0], math.nan, math.nan)
        ci = f"[{100 * lo:+.1f}, {100 * hi:+.1f}]" if len(d) >= 2 else "(1 seed, no interval)"
        lines.append(f"| {what} | {len(d)} | {sizes[part]} | {pct(avg([a for a, _ in accs[part]]))} | "
                     f"{pct(avg([b for _, b in accs[part]]))} | {100 * m:+.1f} points {ci} |")
    return "\n".join(lines)
