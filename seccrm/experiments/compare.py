"""The experiment driver: the same model, suite, steps and samples under every curriculum and seed.

``seccrm experiment --data DIR --model M --out EXP_DIR`` runs, in order:

1. the base model's evaluation on validation and test (once; on the first ``eval_base`` instances of
   each set when the preset says so: a model without the answer format scores 0 at full cost);
2. one shared supervised format warm-up, when the model needs one (``--warmup-steps auto``: when
   the base model's validation format rate is below 50%), stored in ``EXP_DIR/warmup/model`` and
   evaluated once; it is the starting point of every run, so every curriculum starts alike;
3. for each seed, for each curriculum (seed-major, so that a cut-short experiment still has
   complete, comparable seeds): a GRPO run in ``EXP_DIR/runs/<curriculum>/seed<k>``, then the
   evaluation of its checkpoints on the same validation subset (the learning curve,
   ``eval_val_step<N>.json``, where the preset keeps one) and of its final model on validation and
   test (``eval_val.json``, ``eval_test.json``); then the run's checkpoints are reduced to
   ``final_model/`` (no optimizer).

``seccrm demo`` is this driver with the ``demo`` preset (one curriculum, SEC, one seed), after
building its own suite. On a single-turn suite the driver first times the units of work on this
machine (``eval/calibration.json``, about half a minute) and prints the whole job's estimated time,
then one line per stage with what is left (``seccrm.experiments.clock``).

Layout and resumption: the settings are fixed in ``EXP_DIR/experiment.json`` on the first call; a
later call with other settings (model, data, steps, training config, evaluation sizes) is refused,
but it may add curricula or seeds. Every stage writes its output atomically and is skipped when the
output exists; a half-finished run resumes from its newest checkpoint (``TrainConfig.resume``).

Evaluation uses fixed, stratified subsets of the validation and test splits (every (task, level)
group in turn, instances drawn at random within a group; optionally only prompts up to a length,
which a CPU budget needs), chosen once and stored in ``EXP_DIR/eval/sets.json``: every model is
scored on the same instances, so that runs can be compared instance by instance (the paired tests
of ``seccrm report``). Where the preset sets ``probe_k``, every full validation evaluation also
samples ``probe_k`` completions of its first ``probe_n`` instances at the rollout temperature (the
sampled reward and avg@k that RL optimises). Reports are written by ``seccrm report EXP_DIR``.

Presets (``--preset``): ``cpu-exp`` for the embedded SmolLM2-135M on a 2-core CPU (SEC, uniform and
learnability, 5 seeds, short prompts, a few steps: see docs/results.md for what it measured),
``gpu-exp`` for one GPU (every curriculum, 100 steps of 64 prompts, the full suite; any local model
folder) and ``demo`` (the main job's recipe); they are in ``seccrm.experiments.presets``.

On an agentic suite (``seccrm build --mode agentic``) the experiment is agentic: the warm-up imitates
the scripted analysts' episodes, every run trains on episodes (the preset's ``agentic`` settings)
and every evaluation plays them (accuracy, format rate, turns, failed queries, tokens; the
trajectories are saved beside each evaluation).
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

from seccrm.data import load_split, suite_mode
from seccrm.data.baselines import write_baselines
from seccrm.engine import precision
from seccrm.engine.models import load_model_and_tokenizer, load_tokenizer, pick_device, release_memory
from seccrm.engine.rollout import encode_prompts
from seccrm.evaluation.agentic import evaluate_model_episodes, sample_probe_episodes
from seccrm.evaluation.evaluate import evaluate_instances, sample_probe
from seccrm.experiments.clock import RunClock, calibrate, estimate, units_from_json
from seccrm.experiments.presets import ALL_CURRICULA, EXPERIMENT_PRESETS, OPTIONAL_SETTINGS
from seccrm.files import write_folder_atomic, write_json_atomic, write_text_atomic
from seccrm.rl.checkpoint import OPTIMIZER_FILE, complete_checkpoints, latest_checkpoint, verify_checkpoint
from seccrm.rl.config import TrainConfig
from seccrm.rl.metrics import machine_summary
from seccrm.rl.trainer import Trainer
from seccrm.rl.warmup import run_warmup
from seccrm.world.episode import EpisodeSettings

WARMUP_FORMAT_THRESHOLD = 0.5  # auto warm-up: below this base format rate on validation

def _log(msg: str) -> None:
    print(f"[seccrm experiment] {msg}", file=sys.stderr, flush=True)


def make_plan(data: str, model: str, out: str, preset: str = "cpu-exp", curricula: list[str] | None = None,
              seeds: list[int] | None = None, steps: int | None = None, warmup_steps: int | str | None = None,
              eval_val: int | None = None, eval_test: int | None = None, eval_max_prompt_tokens: int | None = None,
              train_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The experiment's settings as a JSON-ready dict (a preset, then the explicit arguments)."""
    if preset not in EXPERIMENT_PRESETS:
        raise ValueError(f"unknown experiment preset {preset!r}; known: {', '.join(EXPERIMENT_PRESETS)}")
    p = {**OPTIONAL_SETTINGS, **json.loads(json.dumps(EXPERIMENT_PRESETS[preset]))}  # a deep copy, tuples as lists
    agentic = p.pop("agentic")
    if suite_mode(data) == "agentic":
        p = {**p, **agentic, "train": {**p["train"], **agentic["train"]}}
    unknown = [c for c in (curricula or []) if c not in ALL_CURRICULA]
    if unknown:
        raise ValueError(f"unknown curricula {unknown}; known: {', '.join(ALL_CURRICULA)}")
    plan = {
        **{k: p[k] for k in ("warmup_default_steps", "warmup_batch", "warmup_lr", "warmup_check_every",
                             "warmup_probe", "warmup_target_format", "eval_base", "probe_k", "probe_n",
                             "learning_curve", "eval_max_new_tokens", "note")},
        "data": str(Path(data).resolve()), "model": model, "out": str(out), "preset": preset,
        "curricula": list(curricula or p["curricula"]), "seeds": [int(s) for s in (seeds or p["seeds"])],
        "steps": int(steps or p["steps"]),
        "warmup_steps": p["warmup_steps"] if warmup_steps is None else warmup_steps,
        "eval_val": int(p["eval_val"] if eval_val is None else eval_val),
        "eval_test": int(p["eval_test"] if eval_test is None else eval_test),
        "eval_max_prompt_tokens": int(p["eval_max_prompt_tokens"] if eval_max_prompt_tokens is None
                                      else eval_max_prompt_tokens),
        "eval_test_max_prompt_tokens": int(p["eval_test_max_prompt_tokens"] if eval_max_prompt_tokens is None
                                           else eval_max_prompt_tokens),
        "train": {**p["train"], **(train_overrides or {})},
    }
    if suite_mode(data) == "agentic" and plan["train"].get("mode") != "agentic":
        raise ValueError(f"{data} is an agentic suite: its runs train on episodes (leave --train mode unset)")
    plan["train"].pop("model", None)  # the starting model is the experiment's, not the preset's
    if isinstance(plan["warmup_steps"], str) and plan["warmup_steps"] != "auto":
        plan["warmup_steps"] = int(plan["warmup_steps"])
    _train_config(plan, "sec", plan["seeds"][0], "start", "run")  # refuse impossible settings now
    return plan


# Settings a rerun may not change: they decide what every run and evaluation means.
_FIXED = ("data", "model", "steps", "warmup_steps", "warmup_default_steps", "warmup_batch", "warmup_lr",
          "eval_val", "eval_test", "eval_base", "probe_k", "probe_n", "eval_max_new_tokens",
          "eval_max_prompt_tokens", "eval_test_max_prompt_tokens", "train")


def _effective_train(plan: dict[str, Any]) -> dict[str, Any]:
    """The training settings every run gets, as the trainer sees them (defaults filled in), so that
    writing a preset differently but equivalently does not count as a change."""
    cfg = json.loads(_train_config(plan, "sec", 0, "start", "run").to_json())
    return {k: v for k, v in cfg.items() if k not in ("curriculum", "seed", "model", "out", "steps")}


def merge_plan(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The stored plan extended by ``new``'s curricula and seeds; ValueError when fixed settings differ."""
    old = {**OPTIONAL_SETTINGS, **old}   # plans stored before a setting existed had its default
    differ = [k for k in _FIXED if k != "train" and old.get(k) != new.get(k)]
    if _effective_train(old) != _effective_train(new):
        differ.append("train")
    if differ:
        raise ValueError(f"{new['out']} holds an experiment with other settings ({', '.join(differ)}); "
                         "rerun with the same settings to resume (add curricula or seeds freely) or use a new --out")
    merged = dict(old)
    merged["curricula"] = old["curricula"] + [c for c in new["curricula"] if c not in old["curricula"]]
    merged["seeds"] = old["seeds"] + [s for s in new["seeds"] if s not in old["seeds"]]
    return merged


def _train_config(plan: dict[str, Any], curriculum: str, seed: int, start_model: str, run_dir: str) -> Any:
    return TrainConfig(**{**plan["train"], "data": plan["data"], "model": start_model, "out": run_dir,
                          "steps": plan["steps"], "seed": seed, "curriculum": curriculum, "resume": True})


def run_dir_of(exp_dir: Path, curriculum: str, seed: int) -> Path:
    return exp_dir / "runs" / curriculum / f"seed{seed}"


# ------------------------------------------------------------------------------------ evaluation
def choose_eval_sets(instances: list[dict[str, Any]], n: int, seed: int = 0, split: str = "val",
                     fits: set[str] | None = None) -> list[dict[str, Any]]:
    """``n`` instances taking every (task, difficulty) group in turn, drawn at random within a group,
    among those whose id is in ``fits`` (all when None).

    Deterministic for a seed and the same for every model, so that evaluations pair instance by
    instance; every group is represented once ``n`` reaches the number of groups. The order is drawn
    over the whole split before the ``fits`` filter, so a prompt limit only removes instances.
    """
    insts = list(instances)
    random.Random(f"{seed}/{split}").shuffle(insts)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for inst in insts:
        if fits is None or inst["id"] in fits:
            groups[(inst["task"], inst["difficulty"])].append(inst)
    chosen: list[dict[str, Any]] = []
    keys = sorted(groups)
    while len(chosen) < n and any(groups[k] for k in keys):
        for k in keys:
            if groups[k] and len(chosen) < n:
                chosen.append(groups[k].pop())
    return chosen


class Evaluator:
    """Evaluates model folders on the experiment's fixed validation and test subsets."""

    def __init__(self, plan: dict[str, Any], sets_file: Path | None = None):
        self.plan = plan
        splits = {s: load_split(plan["data"], s) for s in ("val", "test")}
        if sets_file is not None and sets_file.exists():  # a resumed experiment: the same instances
            ids = json.loads(sets_file.read_text())
            by_id = {s: {i["id"]: i for i in splits[s]} for s in splits}
            missing = [i for s in ids for i in ids[s] if i not in by_id[s]]
            if missing:
                raise ValueError(f"{sets_file} names instances the suite lacks ({missing[:3]}...): "
                                 "was the suite rebuilt? Use the suite the experiment started with.")
            self.subsets = {s: [by_id[s][i] for i in ids[s]] for s in ids}
            return
        seed = plan["seeds"][0]
        self.subsets = {s: choose_eval_sets(splits[s], plan[f"eval_{s}"], seed, s, self._fitting(splits[s], s))
                        for s in splits}
        if sets_file is not None:
            write_json_atomic(sets_file, {s: [i["id"] for i in v] for s, v in self.subsets.items()})

    def _fitting(self, instances: list[dict[str, Any]], split: str) -> set[str] | None:
        """The ids of the instances whose prompt fits the split's limit (``eval_max_prompt_tokens``, for
        test ``eval_test_max_prompt_tokens``; 0 = all, None), so that a CPU budget is not spent on
        4,000-token prompts; the report states the limits."""
        limit = self.plan.get("eval_test_max_prompt_tokens" if split == "test" else "eval_max_prompt_tokens", 0)
        if not limit:
            return None
        tok = load_tokenizer(self.plan["model"])
        lengths = [len(p) for p in encode_prompts(tok, [inst["messages"] for inst in instances])]
        return {inst["id"] for inst, n in zip(instances, lengths, strict=True) if n <= limit}

    def episodes(self) -> EpisodeSettings | None:
        train = self.plan["train"]
        return (EpisodeSettings(max_turns=int(train.get("max_turns", 6)),
                                max_new_tokens_per_turn=int(self.plan["eval_max_new_tokens"]))
                if train.get("mode") == "agentic" else None)

    def run(self, model_spec: str, targets: dict[str, Path], label: str, limit: int = 0,
            probe: bool = True) -> dict[str, dict[str, Any]]:
        """Evaluate ``model_spec`` on each split of ``targets`` (split -> output file) not yet written:
        greedy on the first ``limit`` instances of each set (0 = all), with the sampled probe on a
        full validation set when the plan has one (and ``probe``); agentic evaluations save their
        trajectories beside the file."""
        out = {s: json.loads(f.read_text()) for s, f in targets.items() if f.exists()}
        todo = [s for s in targets if s not in out]
        if not todo:
            return out
        device = pick_device(self.plan["train"].get("device", "auto"))
        dtype = precision.eval_dtype(self.plan["train"].get("bf16", "auto"), device)
        model, tok = load_model_and_tokenizer(model_spec, dtype=dtype, device=str(device))
        episodes, new = self.episodes(), self.plan["eval_max_new_tokens"]
        k, n_probe = self.plan.get("probe_k", 0), self.plan.get("probe_n", 0)
        for split in todo:
            insts = self.subsets[split][:limit or None]
            if episodes is not None:
                res = evaluate_model_episodes(model, tok, insts, episodes, desc=f"episodes {label} {split}",
                                              keep_trajectories=True)
                write_text_atomic(targets[split].with_name(f"{targets[split].stem}_trajectories.jsonl"),
                                  "".join(json.dumps(t) + "\n" for t in res.pop("trajectories")))
            else:
                res = evaluate_instances(model, tok, insts, max_new_tokens=new, desc=f"eval {label} {split}")
            res.update(model=model_spec, split=split, label=label, dtype=str(dtype).removeprefix("torch."))
            if k and probe and not limit and split == "val":
                sub = insts[:n_probe or None]
                res["probe"] = (sample_probe_episodes(model, tok, sub, k=k, settings=episodes, desc=f"probe {label}")
                                if episodes is not None else
                                sample_probe(model, tok, sub, k=k, max_new_tokens=new, desc=f"probe {label}"))
            write_json_atomic(targets[split], res)
            out[split] = res
            _log(_summary_line(label, split, res))
        del model
        release_memory()
        return out


def _summary_line(label: str, split: str, res: dict[str, Any]) -> str:
    s, probe = res["summary"], res.get("probe", {}).get("summary")
    extra = f"; sampled reward {probe['mean_reward']:.3f}, pass@{probe['k']} {probe['pass_at_k']:.3f}" if probe else ""
    if "agentic" in res:
        extra += f"; {res['agentic']['turns']:.1f} turns, {res['agentic']['failed_queries']:.1f} failed queries per episode"
    return f"{label} {split}: accuracy {s['accuracy']:.3f}, format rate {s['format_rate']:.3f} (n={s['n']}){extra}"


# ------------------------------------------------------------------------------------ the stages
def _warmup_stage(plan: dict[str, Any], exp_dir: Path, base_val: dict[str, Any], timings: _Timings) -> str:
    """Decide on and run the shared format warm-up; returns the model every run starts from."""

    steps = plan["warmup_steps"]
    rate = base_val["summary"]["format_rate"]
    if steps == "auto":
        steps = plan["warmup_default_steps"] if rate < WARMUP_FORMAT_THRESHOLD else 0
        why = (f"auto: base validation format rate {rate:.2f} "
               f"{'<' if steps else '>='} {WARMUP_FORMAT_THRESHOLD}")
    else:
        why = "set by --warmup-steps or the preset"
    write_json_atomic(exp_dir / "warmup_decision.json", {"steps": steps, "reason": why})
    if not steps:
        _log(f"no format warm-up ({why})")
        return plan["model"]
    model_dir = exp_dir / "warmup" / "model"
    if not (model_dir / "config.json").exists():
        _log(f"format warm-up: {steps} supervised steps ({why})")
        run_warmup(plan["data"], plan["model"], exp_dir / "warmup", steps, plan["warmup_batch"],
                   plan["warmup_lr"], seed=plan["seeds"][0], max_prompt_tokens=plan["train"].get("max_prompt_tokens", 0),
                   bf16=plan["train"].get("bf16", "auto"), check_every=plan.get("warmup_check_every", 0),
                   probe_size=plan.get("warmup_probe", 32), target_format=plan.get("warmup_target_format", 0.9))
        timings.tick("warmup_s")
    return str(model_dir)


def _stage_eval(ev: Evaluator, timings: _Timings, model: str, exp_dir: Path, stage: str, limit: int = 0
                ) -> dict[str, dict[str, Any]]:
    """A start model's evaluation (``eval/<stage>_<split>.json``), timed when it ran."""
    files = {s: exp_dir / "eval" / f"{stage}_{s}.json" for s in ("val", "test")}
    fresh = not all(f.exists() for f in files.values())
    res = ev.run(model, files, stage, limit=limit)
    if fresh:
        timings.tick(f"eval_{stage}_s")
    return res


def _train(plan: dict[str, Any], curriculum: str, seed: int, start_model: str, run_dir: Path) -> None:
    """Train (or resume) one run up to the plan's steps."""

    ckpt = latest_checkpoint(run_dir)
    if ckpt is not None and int(verify_checkpoint(ckpt)["step"]) >= plan["steps"]:
        return
    trainer = Trainer(_train_config(plan, curriculum, seed, start_model, str(run_dir)))
    trainer.train()
    del trainer
    release_memory()


def _evaluate_run(plan: dict[str, Any], ev: Evaluator, run_dir: Path) -> dict[str, dict[str, Any]]:
    """The learning curve (every earlier checkpoint on validation, where the plan keeps one) and the
    final model on val and test."""

    final = run_dir / "final_model"
    ckpts = complete_checkpoints(run_dir)
    label = f"{run_dir.parent.name}/{run_dir.name}"
    for c in ckpts[:-1] if plan.get("learning_curve", True) else []:
        step = int(c.name.split("_")[-1])
        ev.run(str(c), {"val": run_dir / f"eval_val_step{step}.json"}, f"{label}@{step}", probe=False)
    model = str(final) if final.is_dir() else str(ckpts[-1])
    return ev.run(model, {"val": run_dir / "eval_val.json", "test": run_dir / "eval_test.json"}, label)


def _finalise(run_dir: Path) -> None:
    """Keep the final model as a plain HF folder; drop checkpoints and optimizer state (1 GB each
    for SmolLM2 in float32). Only called once the run's evaluations are all written."""

    last = latest_checkpoint(run_dir)
    if last is None:
        return
    write_folder_atomic(run_dir / "final_model", lambda tmp: shutil.copytree(
        last, tmp, ignore=shutil.ignore_patterns(OPTIMIZER_FILE, "COMPLETE"), dirs_exist_ok=True))
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)


class _Timings:
    """Seconds per stage in a timings file, added up over invocations (a killed process loses only the
    time since the last tick), with the whole job's progress line when a clock was calibrated."""

    def __init__(self, path: Path, clock: RunClock | None = None):
        self.path, self.clock, self.last = path, clock, time.perf_counter()

    def tick(self, key: str, run_file: Path | None = None) -> None:
        now = time.perf_counter()
        seconds, self.last = now - self.last, now
        for path, k in ((self.path, key), (self.path, "total_s"), (run_file, key.split("/")[0] + "_s"),
                        (run_file, "total_s")):
            if path is not None:
                t = json.loads(path.read_text()) if path.exists() else {}
                t[k] = t.get(k, 0.0) + seconds
                write_json_atomic(path, t)
        release_memory()
        if self.clock is not None:
            self.clock.finished(key, json.loads(self.path.read_text())[key])


def _clock(plan: dict[str, Any], exp_dir: Path, ev: Evaluator, jobs: list[tuple[str, int]]) -> RunClock | None:
    """Time the units of work on this machine once (``eval/calibration.json``, kept for a resumed job)
    and print the job's estimated total; None for agentic plans and empty evaluation sets."""
    if ev.episodes() is not None or not ev.subsets.get("val"):
        return None
    path = exp_dir / "eval" / "calibration.json"
    if path.exists():
        units = units_from_json(json.loads(path.read_text()))
    else:
        _log("calibrating on this machine (about half a minute) to estimate the job's time")
        device = pick_device(plan["train"].get("device", "auto"))
        m, tok = load_model_and_tokenizer(plan["model"], dtype=precision.eval_dtype(plan["train"].get("bf16", "auto"), device),
                                          device=str(device))
        units = calibrate(m, tok, ev.subsets["val"][:8], plan["eval_max_new_tokens"], plan["train"]["group_size"])
        del m
        write_json_atomic(path, asdict(units))
    estimates = estimate(units, plan, len(ev.subsets["val"]), len(ev.subsets["test"]), [f"{c}/seed{s}" for c, s in jobs])
    done = json.loads((exp_dir / "timings.json").read_text()) if (exp_dir / "timings.json").exists() else {}
    write_json_atomic(exp_dir / "timings.json", {**done, "estimated_total_s": sum(estimates.values())})
    clock = RunClock(estimates, machine_summary().split(",")[0], done={k: v for k, v in done.items() if k in estimates})
    clock.announce(units)
    return clock


def _open_plan(plan: dict[str, Any], exp_dir: Path) -> dict[str, Any]:
    """Store the plan on the first call; on later calls check it and extend it."""
    path = exp_dir / "experiment.json"
    if path.exists():
        plan = merge_plan(json.loads(path.read_text()), plan)
    else:
        device = pick_device(plan["train"].get("device", "auto"))
        plan = {**plan, "machine": machine_summary(), "precision": precision.resolve(plan["train"].get("bf16", "auto"), device),
                "command": " ".join(["seccrm", *sys.argv[1:]]) if sys.argv[1:2] in (["experiment"], ["demo"])
                else "run_experiment()"}
    write_json_atomic(path, plan)
    return plan


def run_experiment(plan: dict[str, Any]) -> Path:
    """Run every stage of ``plan`` that has not run yet (see the module docstring); returns EXP_DIR."""
    exp_dir = Path(plan["out"])
    exp_dir.mkdir(parents=True, exist_ok=True)
    plan = _open_plan(plan, exp_dir)
    t_start = time.perf_counter()
    ev = Evaluator(plan, exp_dir / "eval" / "sets.json")
    if any(ev.subsets.values()):   # the trivial baselines on the same instances, for the report
        write_baselines(exp_dir, Path(plan["data"]), {k: [i["id"] for i in v] for k, v in ev.subsets.items()})
    jobs = [(c, s) for s in plan["seeds"] for c in plan["curricula"]]
    timings = _Timings(exp_dir / "timings.json", _clock(plan, exp_dir, ev, jobs))
    base = _stage_eval(ev, timings, plan["model"], exp_dir, "base", limit=plan.get("eval_base", 0))
    start_model = _warmup_stage(plan, exp_dir, base["val"], timings)
    if start_model != plan["model"]:
        _stage_eval(ev, timings, start_model, exp_dir, "warmup")

    for k, (cur, seed) in enumerate(jobs, 1):
        run_dir = run_dir_of(exp_dir, cur, seed)
        if (run_dir / "eval_test.json").exists() and (run_dir / "final_model").is_dir():
            _log(f"run {k}/{len(jobs)} {cur}/seed{seed}: done before, skipped")
            continue
        _train(plan, cur, seed, start_model, run_dir)
        timings.tick(f"train/{cur}/seed{seed}", run_dir / "timing.json")
        res = _evaluate_run(plan, ev, run_dir)
        _finalise(run_dir)
        timings.tick(f"eval/{cur}/seed{seed}", run_dir / "timing.json")
        _log(f"run {k}/{len(jobs)} {cur}/seed{seed}: {plan['steps']} steps, val acc "
             f"{res['val']['summary']['accuracy']:.3f}, test acc {res['test']['summary']['accuracy']:.3f} "
             f"(format {res['test']['summary']['format_rate']:.2f}); "
             f"{(time.perf_counter() - t_start) / 60:.1f} min in this call")
    _log(f"all {len(jobs)} runs done; write the report with `seccrm report {exp_dir}`")
    return exp_dir
