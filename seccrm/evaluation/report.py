"""Reports made from logs and evaluation files, after the fact (training code never calls this).

One writer for both kinds of directory, read once into :class:`~seccrm.evaluation.results.ExperimentResult`
(a run directory is an experiment with one seed per RL stage):

- :func:`write_run_report` (a directory with one run: ``seccrm demo``'s): the headline (did RL move the model past
  its start and past every trivial baseline?), the three tables (overall with relative improvement;
  per held-out task; training), what the models answer, the episodes of an agentic run, and PNG
  plots of the curriculum (arm probabilities stacked, Q) and of reward over steps.
- :func:`write_experiment_report` (``seccrm experiment``): the same tables with each curriculum's mean
  and 95% interval over seeds, a paired test of every curriculum against uniform (SEC first, with a
  verdict whose wording follows from the numbers), validation learning curves and the curricula's
  evolution.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from seccrm.data.baselines import baseline_title
from seccrm.evaluation.comparisons import (
    STAGE_TITLES,
    Comparison,
    arm_ratio,
    compare,
    compare_to_start,
    paired_table,
    ratio_text,
    title,
    verdict,
)
from seccrm.evaluation.plots import mean_rows, plot_accuracy, plot_arms, plot_curriculum, plot_curves
from seccrm.evaluation.results import (
    CURRICULUM_ORDER,
    ExperimentResult,
    is_experiment_dir,
    load_experiment,
    load_run,
)
from seccrm.evaluation.stats import paired_test
from seccrm.evaluation.tables import (
    agentic_table,
    arm_table,
    baselines_table,
    episode_views,
    favoured_arm_table,
    held_out_table,
    models,
    no_signal_table,
    overall_table,
    pct,
    per_seed_table,
    shape_section,
    training_table,
)
from seccrm.world.arms import ALL_ARMS

__all__ = ["Comparison", "is_experiment_dir", "write_experiment_report", "write_report", "write_run_report"]


def write_report(d: str | Path, out: str | Path | None = None) -> Path:
    """The run report for a directory with one run (a demo's), the experiment report for more."""
    if is_experiment_dir(d):
        exp = load_experiment(d)
        if len(exp.runs) != 1 or len(exp.seeds) != 1:
            return write_experiment_report(d, out)
    return write_run_report(d, out)


def _paired_line(a: dict[str, float], b: dict[str, float], points: bool = True) -> tuple[str, dict[str, float] | None]:
    """``a - b`` over their common instances: in percentage points (``points``) or as plain numbers."""
    ids = sorted(set(a) & set(b))
    if not ids:
        return "n/a", None
    t = paired_test([a[i] for i in ids], [b[i] for i in ids])
    d = {"diff": t.diff, "lo": t.lo, "hi": t.hi, "p": t.p, "n": len(ids)}
    if points:
        return (f"{100 * d['diff']:+.1f} points, paired 95% CI [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}], "
                f"p = {d['p']:.3g}", d)
    return f"{d['diff']:+.3f}, paired 95% CI [{d['lo']:+.3f}, {d['hi']:+.3f}], p = {d['p']:.3g}", d


def _mean(per_id: dict[str, tuple[float, float]], i: int) -> float:
    return sum(v[i] for v in per_id.values()) / len(per_id)


def headline(r: ExperimentResult) -> list[str]:
    """The run report's first lines: did RL move the model past its start and past every trivial baseline?"""
    rl = sorted(n for n, runs in r.runs.items() if runs[0].evals)
    start = r.start_stage()
    if not rl or start is None:
        return []
    final = rl[-1]
    out = ["## Result", ""]
    for split, what in (("val", "Validation (held-back training instances, in distribution)"),
                        ("test", "Held-out test (the three POLICY tasks never trained on)")):
        e1, e0 = r.runs[final][0].evals.get(split), r.stage(start, split)
        if not e1 or not e0:
            continue
        a1, a0 = e1.summary.accuracy, e0.summary.accuracy
        text, d = _paired_line(e1.correct_by_id(), e0.correct_by_id())
        overall = r.baselines[split].overall if split in r.baselines else {}
        verdict_text = ""
        if overall:
            best_name = max(overall, key=lambda k: overall[k])
            verdict_text = (f"; best trivial baseline {pct(overall[best_name])} "
                            f"({baseline_title(best_name, split)}): "
                            + ("**beaten**" if a1 > overall[best_name] else "**NOT beaten**"))
        moved = d is not None and d["lo"] > 0
        out.append(f"- **{what}, n = {e1.summary.n}**: {STAGE_TITLES.get(start, start)} {pct(a0)} -> "
                   f"{final.upper()} {pct(a1)} ({text}){verdict_text}. "
                   + ("The interval lies above 0: a measured improvement." if moved else
                      "The interval includes 0 or lies below it: no measured improvement."))
        p1, p0 = e1.probe, e0.probe
        if p1 and p0:
            rtext, _ = _paired_line({i: v[0] for i, v in p1.rows.items()}, {i: v[0] for i, v in p0.rows.items()}, False)
            ptext, _ = _paired_line({i: v[1] for i, v in p1.rows.items()}, {i: v[1] for i, v in p0.rows.items()})
            more = "".join(f"; {name} {pct(a)} -> {pct(b)}" for name, a, b in (
                (f"avg@{p1.k}", p0.avg_at_k, p1.avg_at_k), (f"pass^{p1.k}", p0.pass_hat_k, p1.pass_hat_k))
                if a is not None and b is not None)
            out.append(f"  - sampled ({p1.k} samples per instance at T = {p1.temperature}): mean "
                       f"reward {p0.mean_reward:.3f} -> {p1.mean_reward:.3f} ({rtext}); pass@{p1.k} "
                       f"{pct(p0.pass_at_k)} -> {pct(p1.pass_at_k)} ({ptext}){more}")
        q1, q0 = (e.episodes.queries if e.episodes else {} for e in (e1, e0))
        if q1 and q0:
            for i, what_q in ((0, "queries sent"), (1, "queries that ran")):
                qtext, _ = _paired_line({k: v[i] for k, v in q1.items()}, {k: v[i] for k, v in q0.items()}, False)
                out.append(f"  - {what_q} per episode: {_mean(q0, i):.2f} -> {_mean(q1, i):.2f} ({qtext})")
    return out + [""]


def write_run_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.md`` (and PNGs next to it) for one run directory; returns the markdown path."""
    r = load_run(run_dir)
    out_dir = Path(out) if out else r.path
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [f"# seccrm run report: {r.path.name}", ""] + headline(r)
    if r.plan:
        parts += _setup_lines(r, reduced=False) + [""]
    elif r.run_info:
        parts += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in r.run_info.items()] + [""]
    if models(r):
        parts += ["## Overall (held-out test tasks; validation = held-back training instances)", "",
                  overall_table(r), ""]
        if r.baselines:
            parts += ["## Beside the trivial baselines (same instances)", "",
                      "Constants and positions chosen on the training split (the held-out tasks have none: "
                      "theirs are chosen on the test instances, an upper bound).", "", baselines_table(r), ""]
        parts += ["## Held-out POLICY tasks", "", held_out_table(r), ""] + shape_section(r)
    if any(e.episodes for _, ev in models(r) for e in ev.values()):
        parts += ["## Episodes (agentic mode)", "", agentic_table(r), ""] + episode_views(r)
    if r.warmup_checks:
        parts += ["## What the format warm-up changed (greedy probe of training instances)", "",
                  "| step | format rate | accuracy | distinct answers / answers | None share | stop |",
                  "|---|---|---|---|---|---|"]
        parts += [f"| {c['step']} | {pct(c['warmup/format_rate'])} | {pct(c['warmup/accuracy'])} | "
                  f"{pct(c['warmup/distinct'])} | {pct(c['warmup/none_share'])} | {c.get('stop', '')} |"
                  for c in r.warmup_checks] + [""]
    if r.train_order:
        parts += ["## Training", "", training_table(r), ""]
        for name in r.train_order:
            for p in plot_curriculum(r.runs[name][0].metrics, out_dir, name):
                parts += [f"![{p.stem}]({p.name})", ""]
    parts += ["Intervals: percentile bootstrap over instances (2,000 resamples). Accuracy = share of completions "
              "scoring 1.0; format rate = share scoring 0.1 or more.", ""]
    md = out_dir / "report.md"
    md.write_text("\n".join(parts))
    return md


def _composition(exp: ExperimentResult) -> str:
    """What the evaluation sets hold, by skill and by level (from the start model's evaluation)."""
    out = []
    for split in ("val", "test"):
        e = exp.start(split)
        if e:
            parts = [", ".join(f"{k} {v.n}" for k, v in groups.items()) for groups in (e.by_skill, e.by_difficulty)]
            out.append(f"{split}: {e.summary.n} ({'; '.join(parts)})")
    return " / ".join(out) or "n/a"


def _first_json(exp: ExperimentResult, pattern: str) -> dict[str, Any]:
    found = sorted(exp.path.glob(pattern))
    return json.loads(found[0].read_text()) if found else {}


def _eval_text(p: dict[str, Any]) -> str:
    limit, test_limit = p.get("eval_max_prompt_tokens"), p.get("eval_test_max_prompt_tokens")
    return (f"greedy, {p.get('eval_val', '?')} validation and {p.get('eval_test', '?')} test instances "
            "(fixed stratified subsets, the same for every model"
            + (f"; only prompts of at most {limit} tokens" if limit else "")
            + (f", on test {test_limit}" if test_limit and test_limit != limit else "") + ")")


def _setup_lines(exp: ExperimentResult, reduced: bool = True) -> list[str]:
    """The experiment's settings (every missing one printed as "?"), and (``reduced``) whether it ran
    fewer curricula or seeds than a comparison needs."""
    p, t = exp.plan, exp.plan.get("train", {})
    ran, seeds, warm = list(exp.runs), exp.seeds, exp.warmup_decision
    rows = [("model", p.get("model", "?")), ("data", p.get("data", "?")), ("preset", p.get("preset", "?")),
            ("GRPO steps per run", p.get("steps", "?")),
            ("prompts per step x completions", f"{t.get('prompts_per_step', '?')} x {t.get('group_size', '?')}"),
            ("learning rate, max new tokens", f"{t.get('lr', '?')}, {t.get('max_new_tokens', '?')}"),
            ("curricula run", ", ".join(title(c) for c in ran) or "none"),
            ("seeds", ", ".join(map(str, seeds)) or "none"),
            ("format warm-up", f"{warm.get('steps', '?')} steps ({warm.get('reason', 'no record')})" if warm else "no record"),
            ("evaluation", _eval_text(p)), ("evaluation sets", _composition(exp)),
            ("training prompts", f"at most {t['max_prompt_tokens']} tokens" if t.get("max_prompt_tokens") else "all"),
            ("machine", p.get("machine", "?")), ("precision", p.get("precision", "?")),
            ("command", f"`{p.get('command', '?')}`")]
    if exp.timings:
        rows.append(("wall time", ", ".join(f"{k.removesuffix('_s').replace('_', ' ')} {v / 60:.1f} min"
                                            for k, v in exp.timings.items())))
    sec_cfg = _first_json(exp, "runs/sec*/seed*/config.json")
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
    if reduced and (missing or len(seeds) < 3):
        lines += ["", f"**Reduced experiment.** Ran {len(ran)} of the {len(CURRICULUM_ORDER)} curricula"
                  + (f" (not run: {', '.join(title(c) for c in missing)})" if missing else "")
                  + f" with {len(seeds)} seed{'s' if len(seeds) != 1 else ''}"
                  + (f", to fit the budget of the `{p['preset']}` preset." if p.get("preset") else ".")]
    return lines


def _sec_lines(exp: ExperimentResult) -> list[str]:
    """Where SEC went: its final arm ratio per seed and its arm-by-arm table."""
    ratios = arm_ratio(exp.runs.get("sec", {}))
    if not ratios:
        return []
    cfg = _first_json(exp, "runs/sec/seed*/config.json")
    signal = f" (`{cfg['curriculum_signal']}`)" if cfg.get("curriculum_signal") else ""
    return ["", "SEC's arm probabilities at the last step, most- over least-favoured arm: " + "; ".join(
        f"seed {s}: {ratio_text(exp.runs['sec'].get(s), x, hi, lo)}" for s, x, hi, lo in ratios) + ".",
        "", f"Where SEC went, arm by arm (mean over seeds; r is the curriculum's learning signal{signal} "
        "when the arm was drawn):", "", arm_table(exp.runs["sec"])] + _no_signal_lines(exp)


def _no_signal_lines(exp: ExperimentResult) -> list[str]:
    out = []
    if table := no_signal_table(exp.runs):
        out += ["", "Prompts that taught nothing: the share of drawn groups whose completions were all right or "
                "all wrong (no correctness signal, so no gradient from correctness), per curriculum; SEC should "
                "draw fewer of them:", "", table]
    if table := favoured_arm_table(exp.runs):
        out += ["", "What SEC's choice bought: validation accuracy on the arms SEC favoured and on the others, "
                "SEC against uniform on the same instances:", "", table]
    return out


METHOD = [
    "## Method", "",
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
    parts += ["## Does SEC beat uniform" + "".join(f" and {title(c)}" for c in rivals[:1])
              + (" and the other curricula" if len(rivals) > 1 else "") + "?", ""]
    what = {"test": "held-out test accuracy", "val": "validation accuracy"}
    parts += ([f"- {verdict(c, what[c.split])}" for c in sec] if sec else
              ["No comparison: SEC and uniform do not both have evaluated runs with a common seed."])
    starts = [c for cur in exp.runs for split in ("val", "test") if (c := compare_to_start(exp, cur, split))]
    if starts:
        parts += ["", "## Does RL move the model past where it started?", "",
                  "Each curriculum's runs against the model they all started from, paired by instance:", "",
                  paired_table(starts)]
    parts += _sec_lines(exp)
    if btable := baselines_table(exp):
        parts += ["", "## Beside the trivial baselines (same evaluation instances)", "", btable]
    parts += [""] + shape_section(exp)
    parts += ["## 1. Overall: baseline vs trained", "", overall_table(exp), "",
              "## 2. Held-out POLICY tasks (test accuracy, mean over seeds)", "", held_out_table(exp), "",
              "## 3. Training", "", training_table(exp), "", "### Every run", "", per_seed_table(exp), ""]
    if comps:
        parts += ["## Paired tests against uniform", "", paired_table(comps), ""]
    if exp.runs and figures:
        parts += ["## Figures", "", f"![final accuracy]({plot_accuracy(exp, out_dir / 'accuracy.png').name})", "",
                  f"![learning curves]({plot_curves(exp, out_dir / 'curves.png').name})", ""]
        for cur, runs in exp.runs.items():
            png = plot_arms(mean_rows(runs), out_dir / f"evolution_{cur}.png", f"{title(cur)} (mean of {len(runs)} seeds)")
            if png:
                parts += [f"![{cur} evolution]({png.name})", ""]
    md = out_dir / "report.md"
    md.write_text("\n".join(parts + METHOD))
    return md
