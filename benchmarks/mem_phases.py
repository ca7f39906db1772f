"""Peak resident memory of each phase of the demo's GRPO steps (rollout draws, forward, backward,
optimizer step), on Linux.

Before each phase the process's high-water mark is reset (``/proc/self/clear_refs`` = 5) and read
after it (``VmHWM``), so every row is that phase's own peak, model and optimizer state included.

    python benchmarks/mem_phases.py --data SUITE --model WARMUP_MODEL --out RUN_DIR --steps 1

``--mmap-threshold N`` fixes glibc's mmap threshold (``mallopt(M_MMAP_THRESHOLD, N)``) first, to see
whether heap fragmentation is part of a peak.
"""

from __future__ import annotations

import argparse
import ctypes
import sys
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
    args = ap.parse_args()
    if args.mmap_threshold:
        ctypes.CDLL("libc.so.6").mallopt(-3, args.mmap_threshold)   # -3: M_MMAP_THRESHOLD
    import torch

    import seccrm.rl.trainer as trainer_module
    from seccrm.experiments.presets import EXPERIMENT_PRESETS
    from seccrm.rl.config import TrainConfig

    rows: list[tuple[str, float, float, float]] = []

    def measured(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        def run(*a: Any, **k: Any) -> Any:
            before = _status("VmRSS")
            _reset_peak()
            out = fn(*a, **k)
            rows.append((label, before, _status("VmHWM"), _status("VmRSS")))
            return out
        return run

    cfg = TrainConfig(**{**EXPERIMENT_PRESETS["demo"]["train"], "data": args.data, "model": args.model,
                         "out": args.out, "steps": args.steps, "seed": 0, "curriculum": "sec",
                         "resume": False, "save_every": 10_000})
    tr = trainer_module.Trainer(cfg)
    tr._rollout_round = measured(tr._rollout_round, "rollout draw")   # type: ignore[method-assign]
    trainer_module.completion_logprobs = measured(trainer_module.completion_logprobs, "forward")  # type: ignore[assignment]
    tr.optimizer.step = measured(tr.optimizer.step, "optimizer step")   # type: ignore[method-assign]
    torch.Tensor.backward = measured(torch.Tensor.backward, "backward")  # type: ignore[method-assign]
    tr.train()
    print("| phase | resident before (GB) | peak during (GB) | resident after (GB) |\n|---|---|---|---|")
    for label, before, peak, after in rows:
        print(f"| {label} | {before:.2f} | {peak:.2f} | {after:.2f} |")
    print(f"process peak: {max(r[2] for r in rows):.2f} GB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
