"""The main job: build a small org and suite, then run the experiment driver's ``demo`` preset on it
(evaluate the base model, warm up the answer format, train with SEC, evaluate again) and write a
report with tables and curriculum plots.

``--mode agentic`` runs the same stages on episodes: the suite is built question-only (the model
queries the org through the sandbox, `seccrm.world.episode`), the warm-up imitates the scripted
analysts' episodes (`seccrm.world.oracle`), GRPO trains on whole episodes, and every evaluation plays
episodes (accuracy, format rate, turns, failed queries, tokens; trajectories saved beside each
evaluation and a few shown in the report). The preset's agentic settings are smaller: an episode
costs several turns of decoding.

The demo's directory is an experiment directory (``seccrm.experiments.compare``): the suite in
``data/``, the warm-up in ``warmup/``, the SEC run in ``runs/sec/seed<k>/`` (its ``final_model/`` a
Hugging Face folder), the evaluations in ``eval/`` and beside the run. Every stage writes its output
atomically and is skipped when its output already exists, so a killed demo continues where it
stopped when run again with the same ``--out``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from seccrm.data import build_suite, suite_mode
from seccrm.data.load import suite_manifest
from seccrm.evaluation.report import write_run_report
from seccrm.experiments.compare import make_plan, run_experiment
from seccrm.experiments.presets import EXPERIMENT_PRESETS, OPTIONAL_SETTINGS

# How the demo's suite is built: a small org, the compact rendering for single-turn prompts (sized for
# a laptop CPU); agentic suites are question-only, so their rendering is the full one.
DEMO_BUILD: dict[str, Any] = dict(size="small", rendering="compact", train_per_task=120, test_per_task=48)


def _log(msg: str) -> None:
    print(f"[seccrm demo] {msg}", file=sys.stderr, flush=True)


def run_demo(out: str | Path, model: str = "smollm2", seed: int = 0, mode: str = "single",
             steps: int | None = None, warmup_steps: int | None = None, eval_val: int | None = None,
             eval_test: int | None = None, bf16: str | None = None,
             train_overrides: dict[str, Any] | None = None, **settings: Any) -> Path:
    """Build the suite in ``out/data``, run the ``demo`` preset, write ``out/report.md``; returns its path.

    ``settings`` override ``DEMO_BUILD`` (size, rendering, train_per_task, test_per_task) or the plan's
    own settings (eval_base, probe_k, probe_n, eval_max_new_tokens, ...); None leaves the default."""
    settings = {k: v for k, v in settings.items() if v is not None}
    build = {k: settings.pop(k) for k in list(settings) if k in DEMO_BUILD}
    unknown = sorted(set(settings) - set(EXPERIMENT_PRESETS["demo"]) - set(OPTIONAL_SETTINGS))
    if unknown:
        raise ValueError(f"unknown demo settings {unknown}")
    if mode not in ("single", "agentic"):
        raise ValueError(f"mode must be single or agentic, got {mode!r}")
    opts = {**DEMO_BUILD, **({"rendering": "full"} if mode == "agentic" else {}),
            **build}
    out = Path(out)
    data = out / "data"
    t0 = time.perf_counter()
    _log(f"build the org and the task suite -> {data}")
    if (data / "test.jsonl").exists():
        if suite_mode(data) != mode:
            raise ValueError(f"{out} holds a {suite_mode(data)} demo; run --mode {mode} with another --out")
        if suite_manifest(data).get("rendering", "full") != opts["rendering"]:
            raise ValueError(f"{out} holds a demo with the {suite_manifest(data).get('rendering', 'full')} "
                             f"rendering; run --rendering {opts['rendering']} with another --out")
    else:
        build_suite(data, seed=seed, size=opts["size"], train_per_task=opts["train_per_task"],
                    test_per_task=opts["test_per_task"], mode=mode, rendering=opts["rendering"])
    plan = make_plan(str(data), model, str(out), preset="demo", seeds=[seed], steps=steps,
                     warmup_steps=warmup_steps, eval_val=eval_val, eval_test=eval_test,
                     train_overrides={**({"bf16": bf16} if bf16 else {}), **(train_overrides or {})})
    run_experiment({**plan, **settings})
    md = write_run_report(out)
    _log(f"done in {(time.perf_counter() - t0) / 60:.1f} min: report {md}")
    return md
