"""Which learning signal should the curriculum follow? The three options on the same rollouts.

    python benchmarks/bench_curriculum_signal.py --data runs/demo/data --model runs/demo/warmup/model

Samples ``--group-size`` completions (temperature 0.7, top-p 0.9, as training does) for up to
``--per-arm`` training instances of every arm, then prints per arm: the success rate, the share of
groups that mix right and wrong answers, the share that differ only by the 0.1 format reward, and
r(a) = mean |A| under each signal of ``seccrm.rl.grpo.signal_advantages`` (``advantage``: std-scaled
rewards, the SEC paper's; ``unscaled``; ``correctness``). A signal worth following ranks the arms
by how many groups can teach right-versus-wrong, not by format noise.
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--per-arm", type=int, default=6)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--max-prompt-tokens", type=int, default=1024)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()

    from seccrm.data import load_split
    from seccrm.engine import precision
    from seccrm.engine.models import load_model_and_tokenizer
    from seccrm.engine.rollout import encode_prompts, generate_rollouts
    from seccrm.rl.grpo import group_has_signal, signal_advantages
    from seccrm.world.rewards import score

    model, tok = load_model_and_tokenizer(args.model, dtype=precision.eval_dtype("auto", "cpu"), device="cpu")
    train = load_split(args.data, "train")
    random.Random(0).shuffle(train)
    lengths = [len(p) for p in encode_prompts(tok, [i["messages"] for i in train])]
    by_arm: dict[str, list[dict]] = defaultdict(list)
    for inst, n in zip(train, lengths, strict=True):
        if n <= args.max_prompt_tokens and len(by_arm[inst["arm"]]) < args.per_arm:
            by_arm[inst["arm"]].append(inst)
    n = args.group_size
    print(f"model {args.model}; {n} samples per instance, up to {args.per_arm} instances per arm\n")
    print("| arm | groups | success rate | groups mixing right and wrong | format-only groups "
          "| r(a): advantage | unscaled | correctness |")
    print("|---|---|---|---|---|---|---|---|")
    for arm in sorted(by_arm):
        insts = by_arm[arm]
        prompts = encode_prompts(tok, [i["messages"] for i in insts])
        with torch.no_grad():
            ro = generate_rollouts(model, tok, prompts, n=n, max_new_tokens=args.max_new_tokens, temperature=0.7,
                                   top_p=0.9, seed=1)
        rewards = torch.tensor([score(insts[k // n], t) for k, t in enumerate(ro.texts)], dtype=torch.float32)
        grouped = rewards.view(-1, n)
        mixed = group_has_signal(rewards, n)
        format_only = (grouped.std(dim=1) > 0) & ~mixed
        r = {m: float(signal_advantages(rewards, n, m).abs().mean()) for m in ("advantage", "unscaled", "correctness")}
        print(f"| {arm} | {len(insts)} | {float((rewards >= 1).float().mean()):.0%} | {float(mixed.float().mean()):.0%} "
              f"| {float(format_only.float().mean()):.0%} | {r['advantage']:.2f} | {r['unscaled']:.2f} "
              f"| {r['correctness']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
