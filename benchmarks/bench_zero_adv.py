"""The policy update with and without skipping zero-advantage groups, on the same rollouts.

    python benchmarks/bench_zero_adv.py --data runs/demo/data --model runs/demo/warmup/model --steps 3

For each of ``--steps`` batches (drawn and rolled out as a training step does), the update runs twice
from the same weights and optimizer state: once over every group (``skip_zero_adv`` off), once over
the groups with a non-zero advantage only. Prints, per batch, the share of zero-advantage groups and
both update times, then the totals; the skip is exact (``tests/test_trainer.py``), so only time differs.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--prompts-per-step", type=int, default=4)
    ap.add_argument("--max-prompt-tokens", type=int, default=1024)
    ap.add_argument("--bf16", default="auto")
    args = ap.parse_args()

    from seccrm.rl.config import PRESETS, TrainConfig
    from seccrm.rl.grpo import group_advantages
    from seccrm.rl.trainer import Trainer

    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(**{**PRESETS["cpu-demo"], "data": args.data, "model": args.model, "out": out,
                             "prompts_per_step": args.prompts_per_step, "max_prompt_tokens": args.max_prompt_tokens,
                             "bf16": args.bf16, "steps": args.steps})
        t = Trainer(cfg)
        total = {False: 0.0, True: 0.0}
        shares = []
        for step in range(args.steps):
            t.step = step
            arms, batch, ro, details = t._rollout_round(0)
            rewards = torch.tensor([d["reward"] for d in details], dtype=torch.float32)
            adv = group_advantages(rewards, cfg.group_size, scale_by_std=cfg.scale_adv_by_std)
            zero = float((rewards.view(-1, cfg.group_size).std(dim=1) == 0).float().mean())
            weights = copy.deepcopy(t.model.state_dict())
            opt = copy.deepcopy(t.optimizer.state_dict())
            times = {}
            for skip in (False, True):
                t.model.load_state_dict(weights)
                t.optimizer.load_state_dict(opt)
                t.cfg.skip_zero_adv = skip
                t0 = time.perf_counter()
                m = t._policy_update(ro, adv)
                times[skip] = time.perf_counter() - t0
                total[skip] += times[skip]
                if skip:
                    assert m["train/update_groups"] == round(len(batch) * (1 - zero))
            shares.append(zero)
            print(f"batch {step + 1}: zero-advantage groups {zero:.0%}; update over all groups "
                  f"{times[False]:.1f} s, skipping them {times[True]:.1f} s", flush=True)
        mean_zero = sum(shares) / len(shares)
        print(f"total: zero-advantage groups {mean_zero:.0%} (mean); update {total[False]:.1f} s -> "
              f"{total[True]:.1f} s ({1 - total[True] / total[False]:.0%} less; the share of zero-advantage "
              f"groups is {mean_zero:.0%})")


if __name__ == "__main__":
    main()
