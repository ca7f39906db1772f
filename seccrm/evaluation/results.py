"""The result model: what a run or an experiment left on disk, read once into typed objects.

Two kinds of directory are read into one :class:`ExperimentResult`:

- an *experiment directory* (``seccrm experiment``): ``experiment.json``, ``eval/<stage>_<split>.json``
  for the start models (``base``, ``warmup``), ``eval/baselines_<split>.json`` and
  ``runs/<curriculum>/seed<k>/`` with ``metrics.jsonl``, ``eval_<split>.json``,
  ``eval_val_step<n>.json``, ``timing.json`` (:func:`load_experiment`);
- a *run directory*: an ``eval/`` folder where every stage that is not a start model is an RL run,
  and training folders with ``metrics.jsonl``; or an experiment directory that holds one run (``seccrm
  demo``: one curriculum, one seed). Either is read by :func:`load_run` as an experiment with one seed
  (0) per run (``kind == "run"``).

A key the reports need that a file lacks raises :class:`ResultError` naming the file and the key,
rather than a table cell reading "n/a"; keys that are optional by design (a probe, an interval, a
breakdown by task) are ``None`` or empty when absent.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seccrm.curriculum.registry import CURRICULA
from seccrm.data.schema import check_rows
from seccrm.files import read_jsonl

STAGE_ORDER = ("base", "warmup")
CURRICULUM_ORDER = tuple(CURRICULA)   # the registry's order


class ResultError(ValueError):
    """A result file lacks a key the reports need (the message names the file and the key)."""


def _need(d: Any, key: str, where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise ResultError(f"{where}: missing key {key!r}")
    return d[key]


def _num(x: Any) -> float:
    return math.nan if x is None else float(x)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """A run's metrics log, checked row by row (ValueError naming file, line and field); the torn
    last line of a killed run is dropped."""
    rows = read_jsonl(path, skip_torn_tail=True)
    check_rows(path, rows, "metrics")
    return rows


def _read_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.is_file() else default


@dataclass(frozen=True)
class Score:
    """One block of :func:`seccrm.evaluation.evaluate.summarise`: a set of instances' rates."""

    n: int
    accuracy: float
    accuracy_ci: tuple[float, float]
    format_rate: float

    @classmethod
    def parse(cls, d: Any, where: str) -> Score:
        lo, hi = d.get("accuracy_ci95", (math.nan, math.nan)) if isinstance(d, dict) else (math.nan, math.nan)
        return cls(int(_need(d, "n", where)), _num(_need(d, "accuracy", where)), (_num(lo), _num(hi)),
                   _num(_need(d, "format_rate", where)))


@dataclass(frozen=True)
class EvalRow:
    """One instance's greedy completion and its score."""

    id: str
    task: str
    reward: float
    completion: str
    correct: bool   # the verifier's flag where the file has it (episodes), else reward >= 1.0
    arm: str = ""   # "SKILL/difficulty" where the row names both


@dataclass(frozen=True)
class Probe:
    """The sampled-reward probe: k samples per instance at a temperature."""

    k: int
    temperature: float
    mean_reward: float
    pass_at_k: float
    rows: dict[str, tuple[float, float]]   # id -> (mean reward, pass@k)
    avg_at_k: float | None = None          # mean accuracy of the k samples (what RL optimises)
    pass_hat_k: float | None = None        # all k samples correct (tau-bench's reliability measure)


@dataclass(frozen=True)
class Episodes:
    """What an agentic evaluation's episodes took, on average, and how they ended."""

    turns: float
    failed_queries: float
    model_tokens: float
    end_reasons: dict[str, int]
    queries: dict[str, tuple[float, float]] = field(default_factory=dict)   # id -> (queries sent, that ran)


@dataclass(frozen=True)
class EvalResult:
    """One evaluation file (a model on one split)."""

    summary: Score
    by_task: dict[str, Score]
    by_skill: dict[str, Score]
    by_difficulty: dict[str, Score]
    rows: list[EvalRow]
    probe: Probe | None = None
    episodes: Episodes | None = None

    def correct_by_id(self) -> dict[str, float]:
        return {r.id: 1.0 if r.reward >= 1.0 else 0.0 for r in self.rows}

    @classmethod
    def parse(cls, d: Any, where: str) -> EvalResult:
        s = _need(d, "summary", where)
        rows = [EvalRow(str(_need(r, "id", f"{where} rows")), str(r.get("task", "")),
                        _num(_need(r, "reward", f"{where} rows")), str(r.get("completion", "")),
                        bool(r.get("correct", float(r["reward"]) >= 1.0)),
                        f"{r['skill']}/{r['difficulty']}" if "skill" in r and "difficulty" in r else "")
                for r in d.get("rows", [])]
        groups = {key: {k: Score.parse(v, f"{where} summary.{key}.{k}") for k, v in s.get(key, {}).items()}
                  for key in ("by_task", "by_skill", "by_difficulty")}
        probe = None
        if d.get("probe"):
            ps, w = _need(d["probe"], "summary", f"{where} probe"), f"{where} probe.summary"
            probe = Probe(int(_need(ps, "k", w)), float(_need(ps, "temperature", w)), _num(_need(ps, "mean_reward", w)),
                          _num(_need(ps, "pass_at_k", w)),
                          {r["id"]: (float(r["mean_reward"]), float(r["pass_at_k"])) for r in d["probe"].get("rows", [])},
                          _num(ps["correct_rate"]) if "correct_rate" in ps else None,
                          _num(ps["pass_hat_k"]) if "pass_hat_k" in ps else None)
        episodes = None
        if "agentic" in d:
            a, w = d["agentic"], f"{where} agentic"
            episodes = Episodes(float(_need(a, "turns", w)), float(_need(a, "failed_queries", w)),
                                float(_need(a, "model_tokens", w)), dict(a.get("end_reasons", {})),
                                {str(r["id"]): (float(r["queries"]), float(r["queries_ran"]))
                                 for r in d.get("rows", []) if "queries" in r and "queries_ran" in r})
        return cls(Score.parse(s, f"{where} summary"), groups["by_task"], groups["by_skill"],
                   groups["by_difficulty"], rows, probe, episodes)

    @classmethod
    def read(cls, path: Path) -> EvalResult:
        return cls.parse(json.loads(path.read_text()), str(path))


@dataclass(frozen=True)
class Baselines:
    """The trivial baselines on one split's evaluation instances (``eval/baselines_<split>.json``)."""

    overall: dict[str, float]
    best: float

    @classmethod
    def read(cls, path: Path) -> Baselines:
        d = json.loads(path.read_text())
        return cls({k: float(v) for k, v in _need(d, "overall", str(path)).items()}, float(_need(d, "best", str(path))))


@dataclass
class RunResult:
    """One training run: its metrics log and the evaluations of its final model."""

    curriculum: str
    seed: int
    metrics: list[dict[str, Any]]                       # metrics.jsonl lines
    evals: dict[str, EvalResult]                        # split -> evaluation of the final model
    curve: dict[int, float] = field(default_factory=dict)  # step -> validation accuracy
    timing: dict[str, float] = field(default_factory=dict)  # train_s, eval_s

    def acc(self, split: str, key: str = "accuracy") -> float:
        e = self.evals.get(split)
        return getattr(e.summary, key) if e else math.nan


@dataclass
class ExperimentResult:
    """Start models, runs (curriculum -> seed -> run) and the files that describe them."""

    path: Path
    kind: str                                           # "experiment" or "run"
    plan: dict[str, Any]                                # experiment.json (empty for a run directory)
    stages: dict[str, dict[str, EvalResult]]            # stage -> split -> evaluation
    runs: dict[str, dict[int, RunResult]] = field(default_factory=dict)
    baselines: dict[str, Baselines] = field(default_factory=dict)   # split -> baselines
    timings: dict[str, float] = field(default_factory=dict)
    warmup_decision: dict[str, Any] = field(default_factory=dict)
    run_info: dict[str, Any] = field(default_factory=dict)
    warmup_checks: list[dict[str, Any]] = field(default_factory=list)  # the warm-up's greedy probes
    train_order: list[str] = field(default_factory=list)  # runs with a metrics log, as the folders sort

    def start_stage(self) -> str | None:
        """The stage every run started from: the warm-up when there was one, else the base model."""
        return "warmup" if "warmup" in self.stages else ("base" if "base" in self.stages else None)

    def start(self, split: str) -> EvalResult | None:
        return self.stages.get(self.start_stage() or "", {}).get(split)

    def stage(self, stage: str, split: str) -> EvalResult | None:
        return self.stages.get(stage, {}).get(split)

    @property
    def seeds(self) -> list[int]:
        return sorted({r.seed for runs in self.runs.values() for r in runs.values()})


def is_experiment_dir(path: str | Path) -> bool:
    return (Path(path) / "experiment.json").is_file() or (Path(path) / "runs").is_dir()


def load_evals(d: Path) -> dict[str, dict[str, EvalResult]]:
    """stage -> split -> evaluation, from ``d/eval/<stage>_<split>.json`` (baselines apart)."""
    out: dict[str, dict[str, EvalResult]] = {}
    for f in sorted((d / "eval").glob("*_*.json")):
        stage, _, split = f.stem.rpartition("_")
        if stage != "baselines":
            out.setdefault(stage, {})[split] = EvalResult.read(f)
    return out


def load_baselines(d: Path) -> dict[str, Baselines]:
    """split -> baselines, from ``d/eval/baselines_<split>.json``."""
    return {f.stem.removeprefix("baselines_"): Baselines.read(f) for f in sorted((d / "eval").glob("baselines_*.json"))}


def _load_run(d: Path, steps: int) -> RunResult:
    metrics = read_metrics(d / "metrics.jsonl") if (d / "metrics.jsonl").is_file() else []
    evals = {s: EvalResult.read(f) for s in ("val", "test") if (f := d / f"eval_{s}.json").is_file()}
    curve = {int(f.stem.rpartition("step")[2]): EvalResult.read(f).summary.accuracy
             for f in d.glob("eval_val_step*.json")}
    last = max([r["step"] for r in metrics] + [steps])
    if "val" in evals and last:
        curve[last] = evals["val"].summary.accuracy
    return RunResult(d.parent.name, int(d.name[4:]), metrics, evals, dict(sorted(curve.items())),
                     _read_json(d / "timing.json", {}))


def load_experiment(exp_dir: str | Path) -> ExperimentResult:
    """Read an experiment directory's plan, stage evaluations and every run's logs and evaluations."""
    exp_dir = Path(exp_dir)
    plan = _read_json(exp_dir / "experiment.json", {})
    exp = ExperimentResult(exp_dir, "experiment", plan, load_evals(exp_dir), baselines=load_baselines(exp_dir),
                           timings=_read_json(exp_dir / "timings.json", {}),
                           warmup_decision=_read_json(exp_dir / "warmup_decision.json", {}))
    runs: dict[str, dict[int, RunResult]] = {}
    for d in sorted((exp_dir / "runs").glob("*/seed*")):
        if d.is_dir() and d.name[4:].isdigit():
            runs.setdefault(d.parent.name, {})[int(d.name[4:])] = _load_run(d, int(plan.get("steps", 0)))
    order = [c for c in CURRICULUM_ORDER if c in runs] + sorted(c for c in runs if c not in CURRICULUM_ORDER)
    exp.runs = {c: dict(sorted(runs[c].items())) for c in order}
    exp.warmup_checks = _warmup_checks(exp_dir)
    return exp


def _warmup_checks(d: Path) -> list[dict[str, Any]]:
    warm = d / "warmup" / "warmup_metrics.jsonl"
    return [r for r in read_metrics(warm) if r.get("check")] if warm.is_file() else []


def load_run(run_dir: str | Path) -> ExperimentResult:
    """Read a run directory (``seccrm demo``) as an experiment with one seed (0) per RL stage: the
    stages ``base`` and ``warmup`` are start models; every other evaluated stage, and every folder
    with a ``metrics.jsonl`` (the directory itself included), is a run."""
    run_dir = Path(run_dir)
    if is_experiment_dir(run_dir):
        exp = load_experiment(run_dir)
        if len(exp.runs) != 1 or len(exp.seeds) != 1:
            raise ValueError(f"{run_dir} holds {sum(map(len, exp.runs.values()))} runs: report it as an experiment")
        exp.kind = "run"
        exp.runs = {c: {0: next(iter(runs.values()))} for c, runs in exp.runs.items()}
        exp.train_order = [c for c, runs in exp.runs.items() if runs[0].metrics]
        return exp
    evals = load_evals(run_dir)
    train = {d.name: d for d in sorted(run_dir.iterdir()) if (d / "metrics.jsonl").is_file()}
    if (run_dir / "metrics.jsonl").is_file():
        train[run_dir.name] = run_dir
    if not evals and not train:
        raise FileNotFoundError(f"{run_dir}: no eval/*.json and no metrics.jsonl: is this a run directory?")
    stages = {s: evals.pop(s) for s in STAGE_ORDER if s in evals}
    names = sorted(evals) + [n for n in train if n not in evals]
    runs = {n: {0: RunResult(n, 0, read_metrics(train[n] / "metrics.jsonl") if n in train else [], evals.get(n, {}))}
            for n in names}
    return ExperimentResult(run_dir, "run", {}, stages, runs, load_baselines(run_dir),
                            run_info=_read_json(run_dir / "run_info.json", {}), warmup_checks=_warmup_checks(run_dir),
                            train_order=list(train))
