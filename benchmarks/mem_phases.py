"""Peak resident memory of each phase of the demo's GRPO steps (rollout draws, forward, backward,
optimizer step), on Linux.

Before each phase the process's high-water mark is reset (``/proc/self/clear_refs`` = 5) and read
after it (``VmHWM``), so every row is that phase's own peak, model and optimizer state included.

    python benchmarks/mem_phases.py --data SUITE --model WARMUP_MODEL --out RUN_DIR --steps 1

``--mmap-threshold N`` fixes glibc's mmap threshold (``mallopt(M_MMAP_THRESHOLD, N)``) first, to see
whether heap fragmentation is part of a peak; ``--heap-update`` leaves the policy update's large
blocks on the heap, as the trainer did before it mapped them (``mapped_large_blocks``);
``--set KEY=INT`` overrides an integer setting of the demo's recipe. Each phase's time is printed too.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import sys
import time
from collections.abc import Callable
from typing import Any


def _status(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1e6
    return float("nan")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--mmap-threshold", type=int, default=0)
    ap.add_argument("--heap-update", action="store_true",
                    help="leave the policy update's large blocks on glibc's heap (the trainer maps them on CPU)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=INT",
                    help="override integer training settings of the demo's recipe, e.g. logits_chunk=128")
    ap.add_argument("--pre-eval", type=int, default=0, metavar="N",
                    help="first evaluate N validation instances in this process, as the demo does before training")
    ap.add_argument("--pre-warmup", type=int, default=0, metavar="STEPS",
                    help="first run the demo's format warm-up of the base model for STEPS steps in this process")
    args = ap.parse_args()
    if args.mmap_threshold:
        ctypes.CDLL("libc.so.6").mallopt(-3, args.mmap_threshold)   # -3: M_MMAP_THRESHOLD
    import torch

    import seccrm.rl.trainer as trainer_module
    from seccrm.experiments.presets import EXPERIMENT_PRESETS
    from seccrm.rl.config import TrainConfig

    rows: list[tuple[str, float, float, float, float]] = []
    if args.pre_warmup:
        import tempfile

        from seccrm.engine.models import release_memory
        from seccrm.rl.warmup import run_warmup

        demo = EXPERIMENT_PRESETS["demo"]
        with tempfile.TemporaryDirectory() as tmp:
            run_warmup(args.data, "smollm2", tmp, args.pre_warmup, demo["warmup_batch"], demo["warmup_lr"],
                       max_prompt_tokens=demo["train"]["max_prompt_tokens"], check_every=demo["warmup_check_every"],
                       probe_size=demo["warmup_probe"], target_format=demo["warmup_target_format"])
        release_memory()
        print(f"after the warm-up: resident {_status('VmRSS'):.2f} GB, peak {_status('VmHWM'):.2f} GB",
              file=sys.stderr)
    if args.pre_eval:
        from seccrm.data import load_split
        from seccrm.engine.models import load_model_and_tokenizer, release_memory
        from seccrm.evaluation.evaluate import evaluate_instances

        model, tok = load_model_and_tokenizer(args.model, dtype=torch.float32, device="cpu")
        with torch.no_grad():
            evaluate_instances(model, tok, load_split(args.data, "val")[:args.pre_eval], progress=False)
        del model
        release_memory()
        print(f"after the evaluation: resident {_status('VmRSS'):.2f} GB, peak {_status('VmHWM'):.2f} GB",
              file=sys.stderr)

    def measured(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        def run(*a: Any, **k: Any) -> Any:
            before = _status("VmRSS")
            _reset_peak()
            t0 = time.perf_counter()
            out = fn(*a, **k)
            rows.append((label, before, _status("VmHWM"), _status("VmRSS"), time.perf_counter() - t0))
            return out
        return run

    cfg = TrainConfig(**{**EXPERIMENT_PRESETS["demo"]["train"], "data": args.data, "model": args.model,
                         "out": args.out, "steps": args.steps, "seed": 0, "curriculum": "sec",
                         "resume": False, "save_every": 10_000,
                         **{k: int(v) for k, v in (kv.split("=", 1) for kv in args.set)}})
    tr = trainer_module.Trainer(cfg)
    tr._rollout_round = measured(tr._rollout_round, "rollout draw")   # type: ignore[method-assign]
    trainer_module.completion_logprobs = measured(trainer_module.completion_logprobs, "forward")  # type: ignore[assignment]
    tr.optimizer.step = measured(tr.optimizer.step, "optimizer step")   # type: ignore[method-assign]
    torch.Tensor.backward = measured(torch.Tensor.backward, "backward")  # type: ignore[method-assign]
    if args.heap_update:
        trainer_module.mapped_large_blocks = lambda *a, **k: contextlib.nullcontext()  # type: ignore[assignment]
    t_train = time.perf_counter()
    tr.train()
    t_train = time.perf_counter() - t_train
    print("| phase | resident before (GB) | peak during (GB) | resident after (GB) | time (s) |\n|---|---|---|---|---|")
    for label, before, peak, after, sec in rows:
        print(f"| {label} | {before:.2f} | {peak:.2f} | {after:.2f} | {sec:.1f} |")
    for label in dict.fromkeys(r[0] for r in rows):
        print(f"{label}: {sum(r[4] for r in rows if r[0] == label):.1f} s in all", file=sys.stderr)
    print(f"process peak: {max(r[2] for r in rows):.2f} GB; training {t_train:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
