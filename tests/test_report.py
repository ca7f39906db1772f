"""Reports from synthetic logs: a fake experiment directory (metrics.jsonl and eval files written by
hand, no model) -> the report has its tables and figures, and its verdict follows the numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from seccrm.evaluation.comparisons import Comparison, compare, paired_scores, ratio_text, verdict
from seccrm.evaluation.evaluate import summarise
from seccrm.evaluation.report import write_experiment_report, write_run_report
from seccrm.evaluation.results import (
    EvalResult,
    EvalRow,
    ResultError,
    RunResult,
    Score,
    load_experiment,
    load_run,
)
from seccrm.evaluation.tables import answer_shape, answer_shape_table, arm_table
from seccrm.world.arms import ALL_ARMS, HELD_OUT_TASKS, TRAIN_TASKS

TEST_IDS = [(f"{t}-{d}-{i:05d}", t, d) for t in HELD_OUT_TASKS for d in ("easy", "medium", "hard") for i in range(20)]
VAL_IDS = [(f"{t}-easy-{i:05d}", t, "easy") for t in TRAIN_TASKS[:6] for i in range(8)]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_eval(ids: list[tuple[str, str, str]], p: float, rng: np.random.Generator,
              ease: np.ndarray) -> dict[str, Any]:
    """An evaluation file as `evaluate_instances` writes it, with accuracy about ``p``."""
    logit = math.log(p / (1 - p))
    correct = rng.random(len(ids)) < 1 / (1 + np.exp(-(logit + ease)))
    rows = [{"id": i, "task": t, "skill": "POLICY" if t in HELD_OUT_TASKS else "ANALYTICS", "difficulty": d,
             "reward": 1.0 if c else 0.1, "completion": "<answer>x</answer>"} for (i, t, d), c in zip(ids, correct, strict=True)]
    return {"summary": summarise(rows), "rows": rows}


def fake_metrics(curriculum: str, steps: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    rows, q = [], dict.fromkeys(ALL_ARMS, 0.0)
    for step in range(1, steps + 1):
        z = np.exp(np.array(list(q.values())) / 0.5)
        p = z / z.sum() if curriculum.startswith("sec") else np.full(len(ALL_ARMS), 1 / len(ALL_ARMS))
        row: dict[str, Any] = {"step": step, "train/reward": 0.2 + 0.02 * step, "train/accuracy": 0.1 + 0.02 * step,
                               "train/zero_adv_groups": 0.5, "time/step_s": 30.0}
        for a, pa in zip(ALL_ARMS, p, strict=True):
            row[f"curriculum/p/{a}"] = float(pa)
            if curriculum.startswith("sec"):
                q[a] = 0.7 * q[a] + 0.3 * float(rng.random())
                row[f"curriculum/q/{a}"] = q[a]
        rows.append(row)
    return rows


def make_experiment(root: Path, acc: dict[str, float], seeds: tuple[int, ...] = (0, 1, 2), steps: int = 6,
                    seed: int = 0) -> Path:
    """An experiment directory laid out as `seccrm experiment` writes it, with planted accuracies."""
    rng = np.random.default_rng(seed)
    ease_t, ease_v = rng.normal(0, 1, len(TEST_IDS)), rng.normal(0, 1, len(VAL_IDS))
    exp = root / "exp"
    (exp / "eval").mkdir(parents=True)
    plan = {"model": "fake", "data": "synthetic", "preset": "cpu-exp", "steps": steps, "eval_val": len(VAL_IDS),
            "eval_test": len(TEST_IDS), "curricula": [c for c in acc if c not in ("base", "warmup")],
            "seeds": list(seeds), "train": {"prompts_per_step": 4, "group_size": 8},
            "note": "synthetic", "machine": "test", "command": "seccrm experiment ..."}
    (exp / "experiment.json").write_text(json.dumps(plan))
    for stage in ("base", "warmup"):
        for split, ids, ease in (("test", TEST_IDS, ease_t), ("val", VAL_IDS, ease_v)):
            (exp / "eval" / f"{stage}_{split}.json").write_text(json.dumps(fake_eval(ids, acc[stage], rng, ease)))
    for cur in plan["curricula"]:
        for s in seeds:
            d = exp / "runs" / cur / f"seed{s}"
            d.mkdir(parents=True)
            (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in fake_metrics(cur, steps, rng)))
            (d / "eval_test.json").write_text(json.dumps(fake_eval(TEST_IDS, acc[cur], rng, ease_t)))
            (d / "eval_val.json").write_text(json.dumps(fake_eval(VAL_IDS, acc[cur], rng, ease_v)))
            mid = fake_eval(VAL_IDS, (acc[cur] + acc["warmup"]) / 2, rng, ease_v)
            (d / f"eval_val_step{steps // 2}.json").write_text(json.dumps(mid))
            (d / "timing.json").write_text(json.dumps({"train_s": 180.0, "eval_s": 60.0}))
    return exp


def _acc(exp: Path, rel: str) -> float:
    return float(json.loads((exp / rel).read_text())["summary"]["accuracy"])


def test_report_has_tables_figures_and_correct_numbers(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path, {"base": 0.2, "warmup": 0.3, "sec": 0.6, "uniform": 0.3})
    md = write_experiment_report(exp)
    text = md.read_text()
    for heading in ("## 1. Overall", "## 2. Held-out POLICY tasks", "## 3. Training", "## Paired tests",
                    "### Every run", "## Method", "Student-t 95% interval"):
        assert heading in text, heading
    for title in ("Quote Approval", "Invalid Configuration", "Solution Violation", "SEC (hold)", "uniform"):
        assert title in text
    # the SEC row's test mean is the mean of the three runs' accuracies, computed here independently
    sec_mean = np.mean([_acc(exp, f"runs/sec/seed{s}/eval_test.json") for s in range(3)])
    sec_row = next(ln for ln in text.splitlines() if ln.startswith("| SEC (hold) | 3 seeds |"))
    assert f"{100 * sec_mean:.1f}%" in sec_row
    base = _acc(exp, "eval/base_test.json")
    assert f"{100 * (sec_mean - base) / base:+.1f}%" in sec_row
    # only 2 of 7 curricula ran: the report says so
    assert "Reduced experiment" in text and "not run:" in text and "hard-to-easy" in text
    for png in ("accuracy.png", "curves.png", "evolution_sec.png", "evolution_uniform.png"):
        f = exp / png
        assert f.is_file() and f.read_bytes()[:8] == PNG_MAGIC and f.stat().st_size > 5000, png
        assert f"]({png})" in text


def test_sec_vs_uniform_sentence_flips_with_the_planted_result(tmp_path: Path) -> None:
    def report(name: str, sec: float, uniform: float) -> Path:
        acc = {"base": .2, "warmup": .3, "sec": sec, "uniform": uniform}
        return write_experiment_report(make_experiment(tmp_path / name, acc), figures=False)

    win, lose, null = report("a", .6, .3), report("b", .3, .6), report("c", .4, .4)
    w, lo, nu = (p.read_text().split("## 1.")[0] for p in (win, lose, null))
    assert "**SEC (hold) beats uniform** on held-out test accuracy" in w
    assert "does not beat" not in w
    assert "**SEC (hold) does not beat uniform: uniform beats SEC (hold)** on held-out test accuracy" in lo
    assert "SEC (hold) beats uniform**" not in lo
    assert "SEC (hold) does not beat uniform" in nu and "beats uniform**" not in nu


def test_paired_scores_pair_by_seed_and_instance(tmp_path: Path) -> None:
    exp_dir = make_experiment(tmp_path, {"base": .2, "warmup": .3, "sec": .5, "uniform": .4}, seeds=(0, 1))
    # a third seed only SEC ran is left out of the pairing; a missing test instance is dropped
    extra = exp_dir / "runs" / "sec" / "seed7"
    extra.mkdir()
    (extra / "eval_test.json").write_text((exp_dir / "runs/sec/seed0/eval_test.json").read_text())
    f = exp_dir / "runs/uniform/seed1/eval_test.json"
    res = json.loads(f.read_text())
    res["rows"] = res["rows"][1:]
    f.write_text(json.dumps(res))
    exp = load_experiment(exp_dir)
    a, b, seeds, ids = paired_scores(exp, "sec", "uniform")
    assert seeds == [0, 1] and len(ids) == len(TEST_IDS) - 1 and a.shape == b.shape == (2, len(ids))
    rows = {r["id"]: r["reward"] for r in json.loads((exp_dir / "runs/sec/seed1/eval_test.json").read_text())["rows"]}
    assert a[1].tolist() == [1.0 if rows[i] >= 1.0 else 0.0 for i in ids]
    c = compare(exp, "sec", "uniform")
    assert c is not None and c.bootstrap.mean_diff == pytest.approx(float((a - b).mean()))
    assert len(c.seed_diffs) == 2
    assert verdict(c, "x").startswith("**SEC (hold)")


def test_report_cli_dispatches_on_directory_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from seccrm.cli import main
    exp = make_experiment(tmp_path, {"base": .2, "warmup": .3, "sec": .4, "uniform": .4}, seeds=(0,))
    assert main(["report", str(exp)]) == 0
    assert "experiment report" in (exp / "report.md").read_text()
    assert "one seed" not in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nothing-here")]) == 2


def test_single_run_report_still_works(tmp_path: Path) -> None:
    """The demo's layout: eval/<stage>_<split>.json and a training folder with metrics.jsonl."""
    rng = np.random.default_rng(0)
    run = tmp_path / "demo"
    (run / "eval").mkdir(parents=True)
    (run / "sec").mkdir()
    for stage, p in (("base", .2), ("warmup", .3), ("sec", .4)):
        for split, ids in (("test", TEST_IDS), ("val", VAL_IDS)):
            (run / "eval" / f"{stage}_{split}.json").write_text(
                json.dumps(fake_eval(ids, p, rng, np.zeros(len(ids)))))
    (run / "sec" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in fake_metrics("sec", 5, rng)))
    text = write_run_report(run).read_text()
    assert "After format warm-up" in text and "Quote Approval" in text and "| sec | 5 |" in text
    assert (run / "sec_curriculum.png").read_bytes()[:8] == PNG_MAGIC
    assert (run / "sec_reward.png").is_file()


def test_verdict_wording_for_each_case() -> None:
    from seccrm.evaluation.stats import PairedResult

    def comp(diff: float, p: float, lo: float, hi: float) -> Comparison:
        perm = PairedResult(diff, math.nan, math.nan, p, 3, 24, "perm")
        boot = PairedResult(diff, lo, hi, 0.5, 3, 24, "boot")
        return Comparison("sec", "uniform", "test", perm, boot, [diff, diff, diff])

    assert verdict(comp(0.1, 0.001, 0.02, 0.2), "x").startswith("**SEC (hold) beats uniform** on x: +10.0 points")
    assert "does not beat uniform: uniform beats SEC (hold)** on x, by 10.0 points" in verdict(comp(-0.1, 0.001, -0.2, -0.02), "x")
    mixed = verdict(comp(-0.097, 0.016, -0.292, 0.0), "x")
    assert mixed.startswith("**SEC (hold) does not beat uniform** on x: it scores 9.7 points lower on average")
    assert "not robust across seeds" in mixed and "permutation test over instances fires" in mixed
    noise = verdict(comp(0.05, 0.6, -0.08, 0.25), "x")
    assert "does not beat uniform significantly" in noise and "within noise" in noise
    assert "per seed +5.0, +5.0, +5.0" in noise


def test_arm_table_says_where_a_curriculum_went_and_what_signal_each_arm_showed() -> None:
    def run(seed: int, last_a: float) -> RunResult:
        rows = [{"step": 1, "curriculum/p/A": 0.5, "curriculum/p/B": 0.5, "curriculum/n/A": 3.0, "curriculum/n/B": 1.0,
                 "curriculum/r/A": 0.8, "curriculum/r/B": 0.0, "curriculum/reward/A": 0.4, "curriculum/reward/B": 0.0},
                {"step": 2, "curriculum/p/A": last_a, "curriculum/p/B": 1 - last_a, "curriculum/n/A": 4.0,
                 "curriculum/n/B": 0.0, "curriculum/r/A": 0.6, "curriculum/reward/A": 0.5}]
        return RunResult("sec", seed, rows, {}, {}, {})

    lines = arm_table({0: run(0, 0.7), 1: run(1, 0.9)}).splitlines()
    assert lines[2] == "| A | 0.800 | 87.5% | 0.70 | 0.450 |"  # most favoured first; r over the steps that drew it
    assert lines[3] == "| B | 0.200 | 12.5% | 0.00 | 0.000 |"
    assert arm_table({}) == ""


def test_answer_shape_counts_none_hedging_apart_from_the_other_answers() -> None:
    """Planted evaluation: 4 `None` answers (1 right), 3 other answers (2 right, 2 distinct), 1 with no
    answer block; the table averages two seeds' evaluations."""
    def row(completion: str, reward: float) -> EvalRow:
        return EvalRow("x", "t", reward, completion, reward >= 1.0)

    def result(rows: list[EvalRow]) -> EvalResult:
        return EvalResult(Score(len(rows), 0.0, (0.0, 0.0), 0.0), {}, {}, {}, rows)

    e = result([row("<answer>None</answer>", 1.0), row("think <answer> none </answer>", 0.1),
                  row("<answer>None</answer>", 0.1), row("<answer>None</answer>", 0.1),
                  row("<answer>005A</answer>", 1.0), row("<answer>005A</answer>", 1.0),
                  row("<answer>005B</answer>", 0.1), row("I do not know", 0.0)])
    s = answer_shape(e)
    assert s["n"] == 8 and s["none_share"] == 0.5 and s["none_acc"] == 0.25
    assert s["other_acc"] == pytest.approx(2 / 3) and s["no_block"] == 0.125
    assert s["distinct"] == pytest.approx(3 / 7)  # None, 005A, 005B among 7 answers given
    only_none = result([row("<answer>None</answer>", 0.1)] * 4)
    assert math.isnan(answer_shape(only_none)["other_acc"])
    table = answer_shape_table([("RL", [e, only_none])])
    assert "| RL | 75.0% | 12.5% | 66.7% | 6.2% |" in table  # 'n/a' seeds are left out of a column's mean


def test_reports_say_what_the_models_answer(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path, {"base": 0.2, "warmup": 0.3, "sec": 0.6, "uniform": 0.3}, seeds=(0, 1))
    text = write_experiment_report(exp, figures=False).read_text()
    section = text.split("## What the models answer")[1].split("## 1. Overall")[0]
    assert "| SEC (hold) (mean of 2 seeds) | 0.0% | n/a |" in section and "After format warm-up" in section


def test_a_sec_run_that_never_saw_a_signal_is_named_as_such() -> None:
    flat = RunResult("sec", 3, [{"step": 1, "train/signal_groups": 0.0}, {"step": 2, "train/signal_groups": 0.0}],
                   {}, {}, {})
    assert ratio_text(flat, 1.0, "CRUD/easy", "CRUD/easy") == (
        "1.0:1 (all arms equal: no drawn group mixed right and wrong answers)")
    seen = RunResult("sec", 0, [{"step": 1, "train/signal_groups": 0.25}], {}, {}, {})
    assert ratio_text(seen, 1.0, "A", "B") == "1.0:1 (all arms equal)"
    assert ratio_text(seen, 3.14, "KNOWLEDGE/easy", "CRUD/easy") == "3.1:1 (KNOWLEDGE/easy over CRUD/easy)"


# ------------------------------------------------------------------ a fixed run directory, every number known
def _fixed_eval(correct: dict[str, list[int]]) -> dict[str, Any]:
    """An evaluation whose task ``t`` has the given per-instance correctness (1 right, 0 formatted wrong)."""
    rows = [{"id": f"{t}-{i}", "task": t, "skill": "POLICY", "difficulty": "easy", "reward": 1.0 if c else 0.1,
             "completion": "<answer>None</answer>" if i == 0 else f"<answer>{t}{i}</answer>"}
            for t, cs in correct.items() for i, c in enumerate(cs)]
    return {"summary": summarise(rows), "rows": rows}


def make_fixed_run(root: Path) -> Path:
    """The demo's layout with hand-chosen results: per held-out task 4 test instances; base gets 1 of 4
    right on each task, the warm-up 2, SEC 3; validation holds 2 instances of one training task."""
    run = root / "fixed"
    (run / "eval").mkdir(parents=True)
    (run / "sec").mkdir()
    for stage, k in (("base", 1), ("warmup", 2), ("sec", 3)):
        test = {t: [1] * k + [0] * (4 - k) for t in HELD_OUT_TASKS}
        (run / "eval" / f"{stage}_test.json").write_text(json.dumps(_fixed_eval(test)))
        (run / "eval" / f"{stage}_val.json").write_text(json.dumps(_fixed_eval({TRAIN_TASKS[0]: [int(k > 1), 0]})))
    for split in ("test", "val"):
        (run / "eval" / f"baselines_{split}.json").write_text(json.dumps(
            {"overall": {"always_none": 0.25, "best_constant": 0.0, "position": 0.125}, "best": 0.25}))
    (run / "sec" / "metrics.jsonl").write_text("".join(json.dumps(
        {"step": s, "train/reward": 0.1 * s, "train/accuracy": 0.05 * s, "time/step_s": 60.0,
         "curriculum/p/CRUD/easy": 0.5, "curriculum/p/POLICY/easy": 0.5}) + "\n" for s in (1, 2, 3, 4)))
    return run


def test_a_fixed_run_directory_gives_known_tables(tmp_path: Path) -> None:
    run = make_fixed_run(tmp_path)
    result = load_run(run)   # a run directory is an experiment with one seed per RL stage
    assert list(result.stages) == ["base", "warmup"] and list(result.runs) == ["sec"] and list(result.runs["sec"]) == [0]
    text = write_run_report(run).read_text()
    for line in (
        "| Task | Baseline (base model) | After format warm-up | SEC | Change (last vs base) |",
        "| Quote Approval | 25.0% (n=4) | 50.0% (n=4) | 75.0% (n=4) | +200.0% |",
        "| *baseline: always None* | 25.0% | 25.0% |",
        "| SEC (RL) | 75.0% | 50.0% |",
        "| sec | 4 | 0.300 | 15.0% | 50.0% [0.0%, 100.0%] | 4.0 min |",   # reward and accuracy: mean of steps 2-4
        # what the models answer on test: 1 `None` of 4 per task, right; 3 other answers, wrong; 10 distinct of 12
        "| Baseline (base model) | 25.0% | 100.0% | 0.0% | 0.0% | 83.3% |",
    ):
        assert line in text.splitlines(), line
    overall = next(ln for ln in text.splitlines() if ln.startswith("| SEC (RL) | 75.0% ["))
    assert "| +200.0% | 50.0% [" in overall and overall.endswith("| 100.0% | 100.0% |")
    assert "Baseline (base model) 25.0% -> SEC 75.0%" not in text   # the headline starts from the warm-up
    assert "After format warm-up 50.0% -> SEC 75.0% (+25.0 points" in text and "**beaten**" in text


def test_a_missing_key_is_named_not_printed_as_na(tmp_path: Path) -> None:
    from seccrm.cli import main
    run = make_fixed_run(tmp_path)
    f = run / "eval" / "warmup_test.json"
    res = json.loads(f.read_text())
    del res["summary"]["accuracy"]
    f.write_text(json.dumps(res))
    with pytest.raises(ResultError, match=r"warmup_test\.json summary: missing key 'accuracy'"):
        write_run_report(run)
    assert main(["report", str(run)]) == 2
    exp = make_experiment(tmp_path / "e", {"base": .2, "warmup": .3, "sec": .4, "uniform": .4}, seeds=(0,))
    (exp / "eval" / "baselines_test.json").write_text(json.dumps({"overall": {"always_none": 0.1}}))
    with pytest.raises(ResultError, match=r"baselines_test\.json: missing key 'best'"):
        write_experiment_report(exp, figures=False)


def test_score_counts_every_task_it_scored_optional_skills_included() -> None:
    """`seccrm score` on a suite built with --confidentiality: the optional tasks get their rows and
    the `all` row counts every completion (it once counted 80 of 95)."""
    from seccrm.cli.suite import _score_table
    from seccrm.world.arms import OPTIONAL_TASK_SKILLS

    d = {"reward": 1.0, "correct": True}
    by_task = {t: [d] * 5 for t in TRAIN_TASKS[:16]} | {t: [d] * 5 for t in OPTIONAL_TASK_SKILLS}
    lines = _score_table(by_task).splitlines()
    n = sum(len(v) for v in by_task.values())
    assert n == 95 and lines[-1].split()[:2] == ["all", str(n)]
    assert all(any(ln.split()[0] == t for ln in lines) for t in OPTIONAL_TASK_SKILLS)


def test_the_no_signal_table_pairs_sec_against_each_curriculum_by_seed() -> None:
    from seccrm.evaluation.results import RunResult
    from seccrm.evaluation.tables import no_signal_share, no_signal_table

    def run(cur: str, seed: int, signal: list[float]) -> RunResult:
        rows = [{"step": i + 1, "train/signal_groups": s, "train/drawn_groups": 4.0} for i, s in enumerate(signal)]
        return RunResult(cur, seed, rows, {})

    runs = {"sec": {0: run("sec", 0, [0.5, 0.5]), 1: run("sec", 1, [0.25, 0.75]), 2: run("sec", 2, [0.5, 1.0])},
            "uniform": {0: run("uniform", 0, [0.25, 0.25]), 1: run("uniform", 1, [0.0, 0.5]),
                        2: run("uniform", 2, [0.25, 0.5])}}
    assert no_signal_share(runs["sec"][0]) == 0.5 and no_signal_share(runs["uniform"][1]) == 0.75
    table = no_signal_table(runs)
    sec_line, uni_line = table.splitlines()[2:4]
    assert "SEC" in sec_line and "| 3 | 41.7% | - |" in sec_line
    assert "uniform | 3 | 70.8% | -29.2 points [" in uni_line and "(3 seeds)" in uni_line
    assert no_signal_table({"uniform": runs["uniform"]}) == ""       # nothing to compare SEC with


def test_an_agentic_report_pairs_queries_per_episode_against_the_warmup(tmp_path: Path) -> None:
    """Whether RL taught the agent to stop querying: queries sent and queries that ran per episode,
    warm-up against RL, paired by instance, in the headline and the agentic table."""
    run = make_fixed_run(tmp_path)
    for stage, sent, ran in (("warmup", [2, 2, 1, 1], [1, 2, 0, 1]), ("sec", [1, 1, 1, 0], [1, 1, 1, 0])):
        path = run / "eval" / f"{stage}_test.json"
        d = json.loads(path.read_text())
        for n, r in enumerate(d["rows"]):
            r.update(turns=2, failed_queries=0, model_tokens=10, end_reason="answer",
                     queries=sent[n % 4], queries_ran=ran[n % 4])
        d["agentic"] = {"turns": 2.0, "failed_queries": 0.0, "model_tokens": 10.0, "end_reasons": {"answer": 12},
                        "queries": sum(sent) / 4, "queries_ran": sum(ran) / 4}
        path.write_text(json.dumps(d))
    text = write_run_report(run).read_text()
    assert "  - queries sent per episode: 1.50 -> 0.75 (-0.750, paired 95% CI [" in text
    assert "  - queries that ran per episode: 1.00 -> 0.75 (-0.250, paired 95% CI [" in text
    assert "2.0 (0.8 queries, 0.8 ran)" in text


def test_favoured_arm_table_pairs_sec_with_uniform_on_the_arms_sec_favoured() -> None:
    from seccrm.evaluation.tables import favoured_arm_table

    def ev(correct: dict[str, bool]) -> EvalResult:
        rows = [{"id": i, "task": "t", "skill": i.split("/")[0], "difficulty": i.split("/")[1].split("-")[0],
                 "reward": 1.0 if c else 0.0} for i, c in correct.items()]
        return EvalResult.parse({"summary": summarise(rows), "rows": rows}, "fake")

    ids = [f"{arm}-{k}" for arm in ("ANALYTICS/easy", "CRUD/easy", "CRUD/hard") for k in range(4)]
    runs: dict[str, dict[int, RunResult]] = {"sec": {}, "uniform": {}}
    for seed in (0, 1, 2):
        probs = {"curriculum/p/ANALYTICS/easy": 0.6, "curriculum/p/CRUD/easy": 0.2, "curriculum/p/CRUD/hard": 0.2}
        # SEC gets 3 of 4 ANALYTICS/easy right where uniform gets 1; both get one CRUD instance right
        sec = {i: (i.startswith("ANALYTICS") and not i.endswith("-3")) or i.endswith("CRUD/easy-0") for i in ids}
        uni = {i: i in ("ANALYTICS/easy-0", "CRUD/easy-0") for i in ids}
        runs["sec"][seed] = RunResult("sec", seed, [{"step": 1, **probs}], {"val": ev(sec)})
        runs["uniform"][seed] = RunResult("uniform", seed, [{"step": 1}], {"val": ev(uni)})
    table = favoured_arm_table(runs)
    lines = table.splitlines()
    assert len(lines) == 4 and "| 3 | 12 | 75.0% | 25.0% | +50.0 points [+50.0, +50.0] |" in lines[2]
    assert lines[3].startswith("| the others | 3 | 24 | 12.5% | 12.5% | +0.0 points")
    runs["uniform"] = {s: RunResult("uniform", s, [], {}) for s in (0, 1, 2)}   # not evaluated: no table
    assert favoured_arm_table(runs) == ""
