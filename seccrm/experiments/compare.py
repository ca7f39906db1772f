"""The curriculum comparison: the same model, suite, steps and samples under every curriculum and seed.

``seccrm experiment --data DIR --model M --out EXP_DIR`` runs, in order:

1. the base model's evaluation on validation and test (once);
2. one shared supervised format warm-up, when the model needs one (``--warmup-steps auto``: when
   the base model's validation format rate is below 50%), stored in ``EXP_DIR/warmup/model`` and
   evaluated once; it is the starting point of every run, so every curriculum starts alike;
3. for each seed, for each curriculum (seed-major, so that a cut-short experiment still has
   complete, comparable seeds): a GRPO run in ``EXP_DIR/runs/<curriculum>/seed<k>``, then the
   evaluation of its checkpoints on the same validation subset (the learning curve,
   ``eval_val_step<N>.json``) and of its final model on validation and test (``eval_val.json``,
   ``eval_test.json``); then the run's checkpoints are reduced to ``final_model/`` (no optimizer).

Layout and resumption: the settings are fixed in ``EXP_DIR/experiment.json`` on the first call; a
later call with other settings (model, data, steps, training config, evaluation sizes) is refused,
but it may add curricula or seeds. Every stage writes its output atomically and is skipped when the
output exists; a half-finished run resumes from its newest checkpoint (``TrainConfig.resume``).

Evaluation uses fixed, stratified subsets of the validation and test splits (easy before medium
before hard, the skills in turn within a level; optionally only prompts up to a length, which a CPU
budget needs), chosen once and stored in ``EXP_DIR/eval/sets.json``: every model is scored on the
same instances, so that runs can be compared instance by instance (the paired tests of
``seccrm report``). Reports are written by ``seccrm report EXP_DIR``; nothing here calls into
reporting.

Presets (``--preset``): ``cpu-exp`` for the embedded SmolLM2-135M on a 2-core CPU (every curriculum,
2 seeds, short prompts, a few steps: see docs/results.md for what it measured) and ``gpu-exp`` for one
GPU (every curriculum, 100 steps of 64 prompts, the full suite; any local model folder).

On an agentic suite (``seccrm build --mode agentic``) the experiment is agentic: the warm-up imitates
the scripted analysts' episodes, every run trains on episodes (``AGENTIC_TRAIN`` on top of the
preset) and every evaluation plays them (accuracy, format rate, turns, failed queries, tokens).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from seccrm.curriculum.registry import CURRICULA
from seccrm.data import load_split, suite_mode
from seccrm.data.baselines import write_baselines
from seccrm.engine.models import load_model_and_tokenizer, load_tokenizer, pick_device, release_memory
from seccrm.engine.precision import eval_dtype
from seccrm.engine.rollout import encode_prompts
from seccrm.evaluation.agentic import evaluate_model_episodes
from seccrm.evaluation.evaluate import evaluate_instances
from seccrm.files import write_folder_atomic, write_json_atomic
from seccrm.rl.checkpoint import OPTIMIZER_FILE, complete_checkpoints, latest_checkpoint, verify_checkpoint
from seccrm.rl.config import PRESETS, TrainConfig
from seccrm.rl.metrics import machine_summary
from seccrm.rl.trainer import Trainer
from seccrm.rl.warmup import run_warmup
from seccrm.world.arms import DIFFICULTIES, TASK_SKILLS
from seccrm.world.episode import EpisodeSettings

ALL_CURRICULA: tuple[str, ...] = tuple(CURRICULA)   # the registry's names
WARMUP_FORMAT_THRESHOLD = 0.5  # auto warm-up: below this base format rate on validation

# Each preset: the training settings (a TrainConfig preset plus overrides) and the experiment's own.
EXPERIMENT_PRESETS: dict[str, dict[str, Any]] = {
    # The embedded SmolLM2-135M on a 2-core CPU (about 11 minutes a run, 3.5 of them training, and 3 hours
    # in all: docs/results.md): SEC, uniform and learnability over 5 seeds of 12 short steps. SEC's tau is 0.15, not the paper's 0.5: tau sets how
    # greedy the softmax is relative to the signal's scale, and the correctness signal of a 135M model
    # averages at most 0.2 on its best arm (0.01-0.2 over the arms), against 0.5-0.8 for the paper's
    # |A|. At 0.5, SEC stayed within 0.10-0.17 of uniform and drew exactly uniform's arms for all 12
    # steps of seed 0 (same seed, same draws); tau = 0.15 keeps the paper's greediness on this scale.
    "cpu-exp": dict(
        train=dict(prompts_per_step=4, group_size=8, max_new_tokens=32, max_prompt_tokens=1024, lr=2e-5,
                   scale_adv_by_std=False, micro_batch_groups=4, eval_every=0, eval_limit=48,
                   eval_max_new_tokens=32, save_every=100, keep_checkpoints=0, tau=0.15),
        curricula=("sec", "uniform", "learnability"), seeds=(0, 1, 2, 3, 4), steps=12,
        warmup_steps="auto", warmup_default_steps=12, warmup_batch=4, warmup_lr=1e-4, warmup_check_every=3,
        eval_val=200, eval_test=48, eval_max_new_tokens=32, eval_max_prompt_tokens=1024,
        eval_test_max_prompt_tokens=1536,   # the held-out prompts show several policy articles
        note="CPU budget: SEC, uniform and learnability over 5 seeds, 12 steps of 4 prompts x 8 completions "
             "at lr 2e-5 without std scaling, SEC at tau 0.15 (the paper's 0.5 is for a signal about three "
             "times larger), prompts of at most 1,024 tokens, evaluation on 200 validation and 48 test "
             "instances (add curricula with --curricula)."),
    # One GPU, the same protocol with every curriculum; for SmolLM2, Qwen2.5-3B or any local folder.
    "gpu-exp": dict(
        train={**{k: v for k, v in PRESETS["gpu"].items() if k != "steps"}, "save_every": 20,
               "keep_checkpoints": 0, "eval_every": 0},
        curricula=ALL_CURRICULA, seeds=(0, 1, 2), steps=100,
        warmup_steps="auto", warmup_default_steps=60, warmup_batch=16, warmup_lr=5e-5,
        eval_val=240, eval_test=300, eval_max_new_tokens=256, eval_max_prompt_tokens=0,
        note="GPU budget: all 7 curricula, 3 seeds, 100 steps of 64 prompts x 8 completions."),
}


# On an agentic suite (``seccrm build --mode agentic``): every run trains on episodes and every
# evaluation plays them. Per-turn lengths long enough for a query; no prompt-length filter (an
# episode's prompt is mostly the schema, about 1,400 SmolLM2 tokens); fewer, smaller groups, since
# an episode costs several turns of decoding.
AGENTIC_TRAIN: dict[str, Any] = dict(mode="agentic", max_turns=6, max_new_tokens=160, eval_max_new_tokens=160,
                                     max_prompt_tokens=3000, prompts_per_step=2, group_size=6,
                                     micro_batch_groups=1, micro_batch_completions=1)


def _log(msg: str) -> None:
    print(f"[seccrm experiment] {msg}", file=sys.stderr, flush=True)


def make_plan(data: str, model: str, out: str, preset: str = "cpu-exp", curricula: list[str] | None = None,
              seeds: list[int] | None = None, steps: int | None = None, warmup_steps: int | str | None = None,
              eval_val: int | None = None, eval_test: int | None = None, eval_max_prompt_tokens: int | None = None,
              train_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The experiment's settings as a JSON-ready dict (a preset, then the explicit arguments)."""
    if preset not in EXPERIMENT_PRESETS:
        raise ValueError(f"unknown experiment preset {preset!r}; known: {', '.join(EXPERIMENT_PRESETS)}")
    p = json.loads(json.dumps(EXPERIMENT_PRESETS[preset]))  # a deep copy, tuples as lists
    agentic = suite_mode(data) == "agentic"
    if agentic:
        p["train"] = {**p["train"], **{k: v for k, v in AGENTIC_TRAIN.items()
                                       if preset == "cpu-exp" or k in ("mode", "max_turns")}}
        p["eval_max_new_tokens"] = p["train"]["eval_max_new_tokens"]
        p["eval_max_prompt_tokens"] = p["eval_test_max_prompt_tokens"] = 0
    unknown = [c for c in (curricula or []) if c not in ALL_CURRICULA]
    if unknown:
        raise ValueError(f"unknown curricula {unknown}; known: {', '.join(ALL_CURRICULA)}")
    plan = {
        "data": str(Path(data).resolve()), "model": model, "out": str(out), "preset": preset,
        "curricula": list(curricula or p["curricula"]), "seeds": [int(s) for s in (seeds or p["seeds"])],
        "steps": int(steps or p["steps"]),
        "warmup_steps": p["warmup_steps"] if warmup_steps is None else warmup_steps,
        "warmup_default_steps": p["warmup_default_steps"], "warmup_batch": p["warmup_batch"],
        "warmup_lr": p["warmup_lr"], "warmup_check_every": p.get("warmup_check_every", 0),
        "eval_val": int(eval_val or p["eval_val"]),
        "eval_test": int(eval_test or p["eval_test"]), "eval_max_new_tokens": p["eval_max_new_tokens"],
        "eval_max_prompt_tokens": int(p["eval_max_prompt_tokens"] if eval_max_prompt_tokens is None
                                      else eval_max_prompt_tokens),
        "eval_test_max_prompt_tokens": int(p.get("eval_test_max_prompt_tokens", 0) if eval_max_prompt_tokens is None
                                           else eval_max_prompt_tokens),
        "train": {**p["train"], **(train_overrides or {})}, "note": p["note"],
    }
    if agentic and plan["train"].get("mode") != "agentic":
        raise ValueError(f"{data} is an agentic suite: its runs train on episodes (leave --train mode unset)")
    plan["train"].pop("model", None)  # the starting model is the experiment's, not the preset's
    if isinstance(plan["warmup_steps"], str) and plan["warmup_steps"] != "auto":
        plan["warmup_steps"] = int(plan["warmup_steps"])
    _train_config(plan, "sec", plan["seeds"][0], "start", "run")  # refuse impossible settings now
    return plan


# Settings a rerun may not change: they decide what every run and evaluation means.
_FIXED = ("data", "model", "steps", "warmup_steps", "warmup_default_steps", "warmup_batch", "warmup_lr",
          "eval_val", "eval_test", "eval_max_new_tokens", "eval_max_prompt_tokens", "eval_test_max_prompt_tokens",
          "train")


def _effective_train(plan: dict[str, Any]) -> dict[str, Any]:
    """The training settings every run gets, as the trainer sees them (defaults filled in), so that
    writing a preset differently but equivalently does not count as a change."""
    cfg = json.loads(_train_config(plan, "sec", 0, "start", "run").to_json())
    return {k: v for k, v in cfg.items() if k not in ("curriculum", "seed", "model", "out", "steps")}


def merge_plan(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The stored plan extended by ``new``'s curricula and seeds; ValueError when fixed settings differ."""
    # plans stored before the test split had its own prompt limit used the validation one for both
    old = {"eval_test_max_prompt_tokens": old.get("eval_max_prompt_tokens", 0), **old}
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
def stratified_subset(instances: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """``n`` instances taking every (task, difficulty) group in turn, in file order within a group.

    Deterministic, and the same for every model, so that evaluations pair instance by instance. The
    split files are ordered by task, so a plain prefix would hold only the first tasks.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for inst in instances:
        groups[(inst["task"], inst["difficulty"])].append(inst)
    tasks = list(dict.fromkeys(inst["task"] for inst in instances))
    skills = list(dict.fromkeys(TASK_SKILLS.get(t, t) for t in tasks))
    rank = {t: sum(TASK_SKILLS.get(u, u) == TASK_SKILLS.get(t, t) for u in tasks[:i]) for i, t in enumerate(tasks)}

    # Every task at one level before the next level, and the skills in turn within a level (the
    # first task of each skill, then the second, ...), so that a small n still covers every skill.
    def order(k: tuple[str, str]) -> tuple[int, int, int]:
        return (_level(k[1]), rank[k[0]], skills.index(TASK_SKILLS.get(k[0], k[0])))

    queues = [groups[k] for k in sorted(groups, key=order)]
    out: list[dict[str, Any]] = []
    depth = 0
    while len(out) < n and any(depth < len(q) for q in queues):
        out.extend(q[depth] for q in queues if depth < len(q) and len(out) < n)
        depth += 1
    return out


def _level(difficulty: str) -> int:
    return DIFFICULTIES.index(difficulty) if difficulty in DIFFICULTIES else len(DIFFICULTIES)


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
        self.subsets = {s: stratified_subset(self._fitting(splits[s], s), plan[f"eval_{s}"]) for s in splits}
        if sets_file is not None:
            write_json_atomic(sets_file, {s: [i["id"] for i in v] for s, v in self.subsets.items()})

    def _fitting(self, instances: list[dict[str, Any]], split: str) -> list[dict[str, Any]]:
        """The instances whose prompt fits the split's limit (``eval_max_prompt_tokens``, for test
        ``eval_test_max_prompt_tokens``; 0 = all), so that a CPU budget is not spent on 4,000-token
        prompts; the report states the limits."""
        key = "eval_test_max_prompt_tokens" if split == "test" and "eval_test_max_prompt_tokens" in self.plan \
            else "eval_max_prompt_tokens"
        limit = self.plan.get(key, 0)
        if not limit:
            return instances
        tok = load_tokenizer(self.plan["model"])
        lengths = [len(p) for p in encode_prompts(tok, [inst["messages"] for inst in instances])]
        return [inst for inst, n in zip(instances, lengths, strict=True) if n <= limit]

    def run(self, model_spec: str, targets: dict[str, Path], label: str) -> dict[str, dict[str, Any]]:
        """Evaluate ``model_spec`` on each split of ``targets`` (split -> output file) not yet written."""

        out = {s: json.loads(f.read_text()) for s, f in targets.items() if f.exists()}
        todo = [s for s in targets if s not in out]
        if not todo:
            return out
        device = pick_device(self.plan["train"].get("device", "auto"))
        dtype = eval_dtype(self.plan["train"].get("bf16", "auto"), device)
        model, tok = load_model_and_tokenizer(model_spec, dtype=dtype, device=str(device))
        train = self.plan["train"]
        episodes = (EpisodeSettings(max_turns=int(train.get("max_turns", 6)),
                                    max_new_tokens_per_turn=int(self.plan["eval_max_new_tokens"]))
                    if train.get("mode") == "agentic" else None)
        for split in todo:
            if episodes is not None:
                res = evaluate_model_episodes(model, tok, self.subsets[split], episodes,
                                              desc=f"episodes {label} {split}")
            else:
                res = evaluate_instances(model, tok, self.subsets[split], desc=f"eval {label} {split}",
                                         max_new_tokens=self.plan["eval_max_new_tokens"])
            res.update(model=model_spec, split=split, label=label, dtype=str(dtype).removeprefix("torch."))
            write_json_atomic(targets[split], res)
            out[split] = res
        del model
        release_memory()
        return out


# ------------------------------------------------------------------------------------ the stages
def _warmup_stage(plan: dict[str, Any], exp_dir: Path, ev: Evaluator, base_val: dict[str, Any]) -> str:
    """Decide on and run the shared format warm-up; returns the model every run starts from."""

    steps = plan["warmup_steps"]
    rate = base_val["summary"]["format_rate"]
    if steps == "auto":
        steps = plan["warmup_default_steps"] if rate < WARMUP_FORMAT_THRESHOLD else 0
        why = (f"auto: base validation format rate {rate:.2f} "
               f"{'<' if steps else '>='} {WARMUP_FORMAT_THRESHOLD}")
    else:
        why = "set by --warmup-steps"
    write_json_atomic(exp_dir / "warmup_decision.json", {"steps": steps, "reason": why})
    if not steps:
        _log(f"no format warm-up ({why})")
        return plan["model"]
    model_dir = exp_dir / "warmup" / "model"
    if not (model_dir / "config.json").exists():
        _log(f"format warm-up: {steps} supervised steps ({why})")
        run_warmup(plan["data"], plan["model"], exp_dir / "warmup", steps, plan["warmup_batch"],
                   plan["warmup_lr"], seed=0, max_prompt_tokens=plan["train"].get("max_prompt_tokens", 0),
                   bf16=plan["train"].get("bf16", "auto"), check_every=plan.get("warmup_check_every", 0))
    ev.run(str(model_dir), {s: exp_dir / "eval" / f"warmup_{s}.json" for s in ("val", "test")}, "warmup")
    return str(model_dir)


def _train(plan: dict[str, Any], curriculum: str, seed: int, start_model: str, run_dir: Path) -> None:
    """Train (or resume) one run up to the plan's steps."""

    ckpt = latest_checkpoint(run_dir)
    if ckpt is not None and int(verify_checkpoint(ckpt)["step"]) >= plan["steps"]:
        return
    trainer = Trainer(_train_config(plan, curriculum, seed, start_model, str(run_dir)))
    trainer.train()
    del trainer
    release_memory()


def _evaluate_run(ev: Evaluator, run_dir: Path) -> dict[str, dict[str, Any]]:
    """The learning curve (every checkpoint on validation) and the final model on val and test."""

    final = run_dir / "final_model"
    ckpts = complete_checkpoints(run_dir)
    for c in ckpts[:-1]:  # intermediate checkpoints: validation only
        step = int(c.name.split("_")[-1])
        ev.run(str(c), {"val": run_dir / f"eval_val_step{step}.json"}, f"{run_dir.parent.name}/{run_dir.name}@{step}")
    model = str(final) if final.is_dir() else str(ckpts[-1])
    return ev.run(model, {"val": run_dir / "eval_val.json", "test": run_dir / "eval_test.json"},
                  f"{run_dir.parent.name}/{run_dir.name}")


def _finalise(run_dir: Path) -> None:
    """Keep the final model as a plain HF folder; drop checkpoints and optimizer state (1 GB each
    for SmolLM2 in float32). Only called once the run's evaluations are all written."""

    last = latest_checkpoint(run_dir)
    if last is None:
        return
    write_folder_atomic(run_dir / "final_model", lambda tmp: shutil.copytree(
        last, tmp, ignore=shutil.ignore_patterns(OPTIMIZER_FILE, "COMPLETE"), dirs_exist_ok=True))
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)


def _add_time(path: Path, key: str, seconds: float) -> dict[str, float]:
    t: dict[str, float] = json.loads(path.read_text()) if path.exists() else {}
    t[key] = t.get(key, 0.0) + seconds
    write_json_atomic(path, t)
    return t


class _Clock:
    """Adds the seconds since its last tick to a key of a timings file, and to ``total_s``, at
    every tick: a killed process loses only the time since the last tick (a resumed experiment's
    times add up over its invocations)."""

    def __init__(self, path: Path):
        self.path = path
        self.last = time.perf_counter()

    def tick(self, key: str) -> float:
        now = time.perf_counter()
        seconds, self.last = now - self.last, now
        _add_time(self.path, key, seconds)
        _add_time(self.path, "total_s", seconds)
        return seconds


def _machine() -> str:
    return machine_summary()


def _open_plan(plan: dict[str, Any], exp_dir: Path) -> dict[str, Any]:
    """Store the plan on the first call; on later calls check it and extend it."""
    path = exp_dir / "experiment.json"
    if path.exists():
        plan = merge_plan(json.loads(path.read_text()), plan)
    else:
        plan = {**plan, "machine": _machine(), "command": " ".join(["seccrm", *sys.argv[1:]])
                if Path(sys.argv[0]).name == "seccrm" else "run_experiment()"}
    write_json_atomic(path, plan)
    return plan


def run_experiment(plan: dict[str, Any]) -> Path:
    """Run every stage of ``plan`` that has not run yet (see the module docstring); returns EXP_DIR."""
    exp_dir = Path(plan["out"])
    exp_dir.mkdir(parents=True, exist_ok=True)
    plan = _open_plan(plan, exp_dir)
    t_start = time.perf_counter()
    clock = _Clock(exp_dir / "timings.json")
    ev = Evaluator(plan, exp_dir / "eval" / "sets.json")
    if any(ev.subsets.values()):   # the trivial baselines on the same instances, for the report
        write_baselines(exp_dir, Path(plan["data"]), {k: [i["id"] for i in v] for k, v in ev.subsets.items()})
    base = ev.run(plan["model"], {s: exp_dir / "eval" / f"base_{s}.json" for s in ("val", "test")}, "base")
    start_model = _warmup_stage(plan, exp_dir, ev, base["val"])
    clock.tick("base_and_warmup_s")

    jobs = [(c, s) for s in plan["seeds"] for c in plan["curricula"]]
    for k, (cur, seed) in enumerate(jobs, 1):
        run_dir = run_dir_of(exp_dir, cur, seed)
        if (run_dir / "eval_test.json").exists() and (run_dir / "final_model").is_dir():
            _log(f"run {k}/{len(jobs)} {cur}/seed{seed}: done before, skipped")
            continue
        run_clock = _Clock(run_dir / "timing.json")
        _train(plan, cur, seed, start_model, run_dir)
        clock.tick("train_s")
        run_clock.tick("train_s")
        res = _evaluate_run(ev, run_dir)
        _finalise(run_dir)
        clock.tick("eval_s")
        run_clock.tick("eval_s")
        _log(f"run {k}/{len(jobs)} {cur}/seed{seed}: {plan['steps']} steps, val acc "
             f"{res['val']['summary']['accuracy']:.3f}, test acc {res['test']['summary']['accuracy']:.3f} "
             f"(format {res['test']['summary']['format_rate']:.2f}); "
             f"{(time.perf_counter() - t_start) / 60:.1f} min in this call")
    _log(f"all {len(jobs)} runs done; write the report with `seccrm report {exp_dir}`")
    return exp_dir
