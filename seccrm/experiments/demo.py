"""The main job: build a small org and suite, evaluate the base model, warm up the answer format, train
with SEC, evaluate again, and write a report with tables and curriculum plots.

``--mode agentic`` runs the same stages on episodes: the suite is built question-only (the model
queries the org through the sandbox, `seccrm.world.episode`), the warm-up imitates the scripted
analysts' episodes (`seccrm.world.oracle`), GRPO trains on whole episodes, and every evaluation plays
episodes (accuracy, format rate, turns, failed queries, tokens; trajectories saved beside each
evaluation and a few shown in the report). Its defaults (``AGENTIC_DEMO``) are smaller: an episode
costs several turns of decoding.

Every stage writes its output atomically and is skipped when its output already exists, so a killed
demo continues where it stopped when run again with the same ``--out``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from seccrm.data import build_suite, load_split, suite_mode
from seccrm.data.baselines import write_baselines
from seccrm.data.load import suite_manifest
from seccrm.engine import precision
from seccrm.engine.models import load_model_and_tokenizer, load_tokenizer, release_memory
from seccrm.engine.rollout import encode_prompts
from seccrm.evaluation.agentic import evaluate_model_episodes, sample_probe_episodes
from seccrm.evaluation.evaluate import evaluate_instances, sample_probe
from seccrm.evaluation.report import write_run_report
from seccrm.experiments.clock import RunClock, calibrate, estimate, units_from_json
from seccrm.files import write_json_atomic, write_text_atomic
from seccrm.rl.checkpoint import latest_checkpoint
from seccrm.rl.config import PRESETS, TrainConfig
from seccrm.rl.metrics import machine_summary
from seccrm.rl.trainer import Trainer
from seccrm.rl.warmup import run_warmup
from seccrm.world.episode import EpisodeSettings

DEMO_DEFAULTS: dict[str, Any] = dict(
    size="small", rendering="compact", train_per_task=120, test_per_task=48, eval_val=200, eval_test=48, eval_base=12, probe_k=4, probe_n=48,
    warmup_steps=12, warmup_batch=4, warmup_lr=1e-4, warmup_check_every=3, warmup_probe=16, steps=40,
    max_prompt_tokens=1024,
    test_max_prompt_tokens=1536,
    bf16="auto", max_new_tokens=64,
)


# The demo's GRPO recipe on top of the cpu-demo preset, chosen by measurement (docs/results.md, run R1):
# up to 3 extra draws of 4 prompts a step, so that most steps train on groups that mix right and wrong
# answers (2.6 of 4 on average, against 0.7 without); one group per backward pass with activation
# checkpointing, so the update's memory is one group's.
DEMO_TRAIN: dict[str, Any] = dict(eval_limit=0, dynamic_sampling=3, micro_batch_groups=1,
                                  gradient_checkpointing="on")

# Agentic mode: what changes. Prompts are the question and the schema (about 1,400 SmolLM2 tokens);
# max_new_tokens is per turn; the warm-up imitates the analysts' episodes of training instances.
# Sized for a 2-core CPU, where one greedy episode of the imitated model takes about 16 s: no sampled
# probe (the training log has each step's sampled reward), 32 validation and 8 test episodes.
AGENTIC_DEMO: dict[str, Any] = dict(
    rendering="full", eval_val=32, eval_test=8, eval_base=8, probe_k=0, warmup_steps=24, warmup_check_every=0, steps=6, max_prompt_tokens=3000, test_max_prompt_tokens=3000, max_new_tokens=160, max_turns=6)
AGENTIC_TRAIN: dict[str, Any] = dict(mode="agentic", prompts_per_step=2, group_size=6, micro_batch_groups=1,
                                     micro_batch_completions=1,
                                     dynamic_sampling=0)


def _log(msg: str) -> None:
    print(f"[seccrm demo] {msg}", file=sys.stderr, flush=True)


def choose_eval_sets(out: Path, data: Path, tokenizer: Any, limits: dict[str, int], max_prompt_tokens: int,
                     seed: int = 0, split_max_tokens: dict[str, int] | None = None) -> dict[str, list[str]]:
    """The instances every stage is evaluated on (the same ones, so stages compare pairwise).

    Round-robin over (task, difficulty) so that every task and level is represented, keeping only
    prompts of at most ``max_prompt_tokens`` tokens when that is set (a CPU budget; the report says so),
    or of ``split_max_tokens[split]`` for a split named there (the held-out test prompts show five or
    more policy articles, longer than the training limit).
    Stored in ``eval/sets.json`` so a resumed demo evaluates the same instances.
    """
    import random
    from collections import defaultdict


    path = out / "eval" / "sets.json"
    if path.exists():
        sets: dict[str, list[str]] = json.loads(path.read_text())
        return sets
    sets = {}
    for split, limit in limits.items():
        insts = load_split(data, split)
        random.Random(f"{seed}/{split}").shuffle(insts)
        lengths = [len(p) for p in encode_prompts(tokenizer, [i["messages"] for i in insts])]
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        for inst, n in zip(insts, lengths, strict=True):
            limit_tokens = (split_max_tokens or {}).get(split, max_prompt_tokens)
            if not limit_tokens or n <= limit_tokens:
                groups[(inst["task"], inst["difficulty"])].append(inst["id"])
        chosen: list[str] = []
        keys = sorted(groups)
        while len(chosen) < limit and any(groups[k] for k in keys):
            for k in keys:
                if groups[k] and len(chosen) < limit:
                    chosen.append(groups[k].pop())
        sets[split] = chosen
    write_json_atomic(path, sets)
    return sets


def _eval_stage(out: Path, stage: str, model_spec: str, data: Path, sets: dict[str, list[str]],
                max_new_tokens: int, timings: dict[str, float], bf16: str = "auto", probe_k: int = 0,
                limit: int = 0, probe_n: int = 0, episodes: EpisodeSettings | None = None) -> None:
    """Evaluate one stage on the chosen sets (the first ``limit`` of each when set), greedy, plus the
    sampled probe on validation when ``probe_k``; with ``episodes``, as agentic episodes under those
    settings, their trajectories saved in ``eval/<stage>_<split>_trajectories.jsonl``."""

    todo = [s for s in ("val", "test") if not (out / "eval" / f"{stage}_{s}.json").exists()]
    if not todo:
        return
    t0 = time.perf_counter()
    dtype = precision.eval_dtype(bf16, "cpu")
    model, tok = load_model_and_tokenizer(model_spec, dtype=dtype, device="cpu")
    for split in todo:
        by_id = {i["id"]: i for i in load_split(data, split)}
        insts = [by_id[i] for i in sets[split]][:limit or None]
        if episodes is not None:
            res = evaluate_model_episodes(model, tok, insts, episodes, desc=f"episodes {stage} {split}",
                                          keep_trajectories=True)
            write_text_atomic(out / "eval" / f"{stage}_{split}_trajectories.jsonl",
                              "".join(json.dumps(t) + "\n" for t in res.pop("trajectories")))
        else:
            res = evaluate_instances(model, tok, insts, max_new_tokens=max_new_tokens, desc=f"eval {stage} {split}")
        res.update(model=model_spec, split=split, stage=stage, dtype=str(dtype).removeprefix("torch."))
        if probe_k and split == "val":
            probe_set = insts[:probe_n or None]
            res["probe"] = (sample_probe_episodes(model, tok, probe_set, k=probe_k, settings=episodes,
                                                  desc=f"probe {stage} {split}") if episodes is not None else
                            sample_probe(model, tok, probe_set, k=probe_k, max_new_tokens=max_new_tokens,
                                         desc=f"probe {stage} {split}"))
        write_json_atomic(out / "eval" / f"{stage}_{split}.json", res)
        s = res["summary"]
        probe = res.get("probe", {}).get("summary")
        extra = (f"; sampled reward {probe['mean_reward']:.3f}, pass@{probe['k']} {probe['pass_at_k']:.3f}"
                 if probe else "")
        if "agentic" in res:
            extra += (f"; {res['agentic']['turns']:.1f} turns, {res['agentic']['failed_queries']:.1f} failed "
                      "queries per episode")
        _log(f"{stage:7s} {split:4s}: accuracy {s['accuracy']:.3f}, format rate {s['format_rate']:.3f} "
             f"(n={s['n']}){extra}")
    timings[f"eval_{stage}_s"] = time.perf_counter() - t0


def _clock(out: Path, model_spec: str, data: Path, sets: dict[str, list[str]], opts: dict[str, Any],
           train: dict[str, Any], timings: dict[str, float]) -> RunClock:
    """The run's clock: calibrated once on this machine (``eval/calibration.json``, kept for a resumed run)."""
    path = out / "eval" / "calibration.json"
    if path.exists():
        units = units_from_json(json.loads(path.read_text()))
    else:
        _log("calibrating on this CPU (about half a minute) to estimate the run's time")
        dtype = precision.eval_dtype(opts["bf16"], "cpu")
        m, tok = load_model_and_tokenizer(model_spec, dtype=dtype, device="cpu")
        by_id = {i["id"]: i for i in load_split(data, "val")}
        units = calibrate(m, tok, [by_id[i] for i in sets["val"][:8]], opts["max_new_tokens"], train["group_size"])
        del m
        write_json_atomic(path, asdict(units))
    estimates = estimate(units, opts, len(sets["val"]), len(sets["test"]), train)
    timings["estimated_total_s"] = sum(estimates.values())
    clock = RunClock(estimates, machine_summary().split(",")[0],
                     done={k: v for k, v in timings.items() if k in estimates})
    clock.announce(units)
    return clock


def run_demo(out: str | Path, model: str = "smollm2", seed: int = 0, mode: str = "single", **overrides: Any) -> Path:
    if mode not in ("single", "agentic"):
        raise ValueError(f"mode must be single or agentic, got {mode!r}")
    agentic = mode == "agentic"
    opts = {**DEMO_DEFAULTS, **(AGENTIC_DEMO if agentic else {}),
            **{k: v for k, v in overrides.items() if v is not None}}
    episodes = (EpisodeSettings(max_turns=opts["max_turns"], max_new_tokens_per_turn=opts["max_new_tokens"])
                if agentic else None)
    out = Path(out)
    (out / "eval").mkdir(parents=True, exist_ok=True)
    timings_path = out / "timings.json"
    timings: dict[str, float] = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    t_start = time.perf_counter()
    data = out / "data"
    stages = 5

    _log(f"[1/{stages}] build the org and the task suite -> {data}")
    if (data / "test.jsonl").exists() and suite_mode(data) != mode:
        raise ValueError(f"{out} holds a {suite_mode(data)} demo; run --mode {mode} with another --out")
    if (data / "test.jsonl").exists() and suite_manifest(data).get("rendering", "full") != opts["rendering"]:
        raise ValueError(f"{out} holds a demo with the {suite_manifest(data).get('rendering', 'full')} rendering; "
                         f"run --rendering {opts['rendering']} with another --out")
    if not (data / "test.jsonl").exists():
        t0 = time.perf_counter()
        build_suite(data, seed=seed, size=opts["size"], train_per_task=opts["train_per_task"],
                    test_per_task=opts["test_per_task"], mode=mode, rendering=opts["rendering"])
        timings["build_s"] = time.perf_counter() - t0
    limits = {"val": opts["eval_val"], "test": opts["eval_test"]}
    max_new = opts["max_new_tokens"]
    sets = choose_eval_sets(out, data, load_tokenizer(model), limits, opts["max_prompt_tokens"], seed,
                            {"test": opts["test_max_prompt_tokens"]})
    write_baselines(out, data, sets)
    probe_k = opts["probe_k"]
    bf16 = opts["bf16"]
    train = {**PRESETS["cpu-demo"], "steps": opts["steps"], "seed": seed, "max_prompt_tokens": opts["max_prompt_tokens"],
             "curriculum": "sec", "resume": True, "bf16": bf16, **DEMO_TRAIN,
             **({**AGENTIC_TRAIN, "max_new_tokens": max_new, "max_turns": opts["max_turns"]} if agentic else {}),
             **opts.get("train_overrides", {})}
    clock = None if agentic else _clock(out, model, data, sets, opts, train, timings)

    def tick(stage: str) -> None:
        """Save the timings (a resumed run keeps them) and print the whole run's progress line."""
        write_json_atomic(timings_path, timings)
        release_memory()
        if clock is not None and stage in timings:
            clock.finished(stage, timings[stage])

    _log(f"[2/{stages}] evaluate the base model ({model}) on {opts['eval_base']} instances of each set")
    # The base model has not learned the answer format (it almost never writes an answer block) and
    # decodes to the token limit: a small sample of each set says so at a fraction of the cost.
    _eval_stage(out, "base", model, data, sets, max_new, timings, bf16, 0, limit=opts["eval_base"],
                episodes=episodes)
    tick("eval_base_s")

    warm_model = out / "warmup" / "model"
    if opts["warmup_steps"] > 0:
        _log(f"[3/{stages}] format warm-up: at most {opts['warmup_steps']} supervised steps on training "
             + ("episodes of the scripted analysts" if agentic else
                f"instances, checked every {opts['warmup_check_every']}"))
        if not (warm_model / "config.json").exists():
            t0 = time.perf_counter()
            run_warmup(str(data), model, out / "warmup", opts["warmup_steps"], opts["warmup_batch"],
                       opts["warmup_lr"], seed=seed, max_prompt_tokens=opts["max_prompt_tokens"], bf16=bf16,
                       check_every=opts["warmup_check_every"], probe_size=opts["warmup_probe"], target_format=0.8)
            timings["warmup_s"] = time.perf_counter() - t0
            tick("warmup_s")
        _eval_stage(out, "warmup", str(warm_model), data, sets, max_new, timings, bf16, probe_k,
                    probe_n=opts["probe_n"], episodes=episodes)
        tick("eval_warmup_s")
        start_model = str(warm_model)
    else:
        start_model = model

    _log(f"[4/{stages}] GRPO with the SEC curriculum{' on episodes' if agentic else ''}: {opts['steps']} steps")
    cfg = TrainConfig(**{**train, "data": str(data), "model": start_model, "out": str(out / "sec")})
    t0 = time.perf_counter()
    trainer = Trainer(cfg)
    if trainer.step < cfg.steps:
        trainer.train()
        timings["train_s"] = timings.get("train_s", 0.0) + time.perf_counter() - t0
        tick("train_s")
    del trainer
    final = latest_checkpoint(out / "sec")
    _eval_stage(out, "sec", str(final), data, sets, max_new, timings, bf16, probe_k, probe_n=opts["probe_n"],
                episodes=episodes)
    tick("eval_sec_s")

    _log(f"[5/{stages}] write the report")
    timings["total_this_invocation_s"] = time.perf_counter() - t_start
    write_json_atomic(timings_path, timings)
    info = {"command": "seccrm demo " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["demo"] else "run_demo()",
            "model": model, "seed": seed, "mode": mode, "machine": machine_summary(),
            "precision": precision.resolve(bf16, "cpu"), **{f"time {k}": f"{v:.0f} s" for k, v in timings.items()},
            **{k: v for k, v in opts.items()}}
    write_json_atomic(out / "run_info.json", info)
    md = write_run_report(out)
    _log(f"done in {timings['total_this_invocation_s'] / 60:.1f} min: report {md}")
    return md
