"""Float32 against bf16 autocast on this CPU: the same training steps and the same prefill, side by side.

    python benchmarks/bench_precision.py --data runs/demo/data --model smollm2 --steps 2 --repeats 2

What ``--bf16 auto`` should pick depends on the CPU's matrix units, so this measures it instead of
assuming: ``--steps`` GRPO steps of the ``cpu-demo`` preset in each mode (``off`` = float32, ``on`` =
float32 weights with bf16 autocast and bf16 rollouts), alternating modes ``--repeats`` times so that a
change in the machine's load hits both, from the same seed (the same prompts). Also times one prefill
of a ``--prompt-tokens`` prompt in each dtype, and a forward and backward over 4 sequences of
``--prompt-tokens`` + 64 tokens (the loss on the last 64) in float32 and under bf16 autocast. Prints
per-mode medians and what ``auto`` resolves to.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a built suite (seccrm build --out DIR)")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=1000)
    ap.add_argument("--skip-train", action="store_true", help="only the prefill and the forward/backward timings")
    args = ap.parse_args()

    import torch

    from seccrm.engine import precision
    from seccrm.engine.models import load_model_and_tokenizer
    from seccrm.rl.config import PRESETS, TrainConfig
    from seccrm.rl.metrics import machine_summary
    from seccrm.rl.trainer import Trainer

    print(f"machine: {machine_summary()}")
    print(f"amx tiles: {precision.cpu_has_fast_bf16()}; --bf16 auto resolves to {precision.resolve('auto', 'cpu')}")
    prefill: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    for _ in range(args.repeats):
        for dtype in (torch.float32, torch.bfloat16):
            model, _ = load_model_and_tokenizer(args.model, dtype=dtype, device="cpu")
            ids = torch.randint(1000, 20000, (1, args.prompt_tokens), generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                model(input_ids=ids[:, :64], logits_to_keep=1)                      # warm the kernels
                t0 = time.perf_counter()
                model(input_ids=ids, logits_to_keep=1)
                prefill[str(dtype).removeprefix("torch.")].append(time.perf_counter() - t0)
    for name, vals in prefill.items():
        print(f"prefill of {args.prompt_tokens} tokens, {name}: median {statistics.median(vals):.2f} s "
              f"({', '.join(f'{v:.2f}' for v in vals)})")

    model, _ = load_model_and_tokenizer(args.model, dtype=torch.float32, device="cpu")
    model.train()
    ids = torch.randint(1000, 20000, (4, args.prompt_tokens + 64), generator=torch.Generator().manual_seed(0))
    fwd_bwd: dict[str, list[float]] = {"fp32": [], "mixed": []}
    for _ in range(args.repeats):
        for mode in ("fp32", "mixed"):
            t0 = time.perf_counter()
            with precision.autocast(mode, "cpu"):
                logits = model(input_ids=ids, logits_to_keep=64).logits
            logits.float().logsumexp(-1).mean().backward()
            model.zero_grad(set_to_none=True)
            fwd_bwd[mode].append(time.perf_counter() - t0)
    for name, vals in fwd_bwd.items():
        print(f"forward+backward 4 x {args.prompt_tokens + 64} tokens, {name}: median {statistics.median(vals):.2f} s "
              f"({', '.join(f'{v:.2f}' for v in vals)})")
    del model
    if args.skip_train:
        return

    times: dict[str, dict[str, list[float]]] = {m: {"step": [], "rollout": [], "update": []} for m in ("off", "on")}
    for _ in range(args.repeats):
        for mode in ("off", "on"):
            with tempfile.TemporaryDirectory() as out:
                cfg = TrainConfig(**{**PRESETS["cpu-demo"], "data": args.data, "model": args.model, "out": out,
                                     "steps": args.steps, "bf16": mode, "save_every": 1000})
                Trainer(cfg).train()
                for line in (Path(out) / "metrics.jsonl").read_text().splitlines():
                    row = json.loads(line)
                    if "time/step_s" in row:
                        times[mode]["step"].append(row["time/step_s"])
                        times[mode]["rollout"].append(row["time/rollout_s"])
                        times[mode]["update"].append(row["time/update_s"])
    print("| --bf16 | steps | step (s), median | rollouts (s) | update (s) |")
    print("|---|---|---|---|---|")
    for mode, t in times.items():
        print(f"| {mode} | {len(t['step'])} | {statistics.median(t['step']):.1f} | "
              f"{statistics.median(t['rollout']):.1f} | {statistics.median(t['update']):.1f} |")


if __name__ == "__main__":
    main()
