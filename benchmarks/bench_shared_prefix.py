"""Benchmark: one GRPO step with the prompt computed once per group (shared) vs once per completion.

    python benchmarks/bench_shared_prefix.py                      # 3 steps per variant, writes BENCHMARKS.md
    python benchmarks/bench_shared_prefix.py --steps 1 --no-write

The shape of issue 7: SmolLM2-135M-Instruct (the embedded default), float32, 4 prompts x 8
completions, CRM-like prompts of about 252 tokens (a case table and a question), up to 64 new tokens,
temperature 0.7, top-p 0.9. A step is: rollouts, then a policy-gradient forward and backward over
all 32 completions with fixed stand-in advantages (scoring is left out: it is the same for every
variant), one group (8 completions) per micro-batch with gradient accumulation, then an AdamW step.
One model and optimizer serve all variants (lr 1e-6, so the policy barely moves between them).
Variants:

- ``shared``: ``generate_rollouts`` (each prompt prefilled once, its 8 completions decode against
  the one prompt cache) and ``completion_logprobs(share_prompt=True)`` (the prompt runs once per group
  with gradients).
- ``unshared``: a plain loop, as most GRPO code does it: ``model.generate`` on the prompts repeated
  8 times (each prefilled 8 times), and the policy forward on ``prompt + completion`` rows.
- ``hf-cache`` (optional): ``generate_rollouts`` with the fallback decoder (prompt prefilled once,
  its Hugging Face cache copied 8 times) and the unshared forward.
- ``trl`` (optional, ``pip install trl``): TRL's GRPOTrainer at the same shape, timed per optimizer
  step with a callback; it runs its own loop, so it runs first and is not interleaved.
- ``shared-bf16`` and ``trl-bf16``: the same in mixed precision (float32 weights and AdamW state,
  bf16 autocast; the project decodes from a bf16 copy of the weights refreshed after each step, TRL
  with ``bf16=True``). On CPUs with bf16 matrix units (AMX) a bf16 matmul is several times faster.

Each variant samples its own completions (same seeds), so their lengths differ a little; the table
reports the mean completion length next to the times. The median over ``--steps`` steps is reported,
after one untimed warm-up step per variant; the variants alternate step by step. The table is printed and, unless ``--no-write``, written
with the date, machine, load and command to the section "## Shared-prompt rollouts and training
(issue 7)" of BENCHMARKS.md.
"""

from __future__ import annotations

import os

# Before torch loads OpenMP: idle threads spin on a quiet machine (about 2x faster decoding) and
# sleep when other jobs keep the cores busy (spinning then makes every op several times slower).
from seccrm.engine.openmp import configure

OPENMP = configure()

import argparse
import datetime as dt
import random
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from seccrm.engine import precision
from seccrm.engine.forward import completion_logprobs
from seccrm.engine.models import ensure_default_model, load_model_and_tokenizer
from seccrm.engine.rollout import HFCacheDecoder, RolloutBatch, encode_prompts, generate_rollouts

SECTION = "## Shared-prompt rollouts and training (issue 7)"
SYSTEM = ("You are a CRM analyst in a Salesforce org. Answer from the records given. Give the final "
          "answer inside <answer></answer>.")


def crm_prompts(tokenizer: Any, count: int, target_tokens: int, seed: int
                ) -> tuple[list[list[dict[str, str]]], list[list[int]]]:
    """``count`` chats of a case table and a question, grown to about ``target_tokens``; and their ids."""
    rng = random.Random(seed)
    chats, out = [], []
    for _ in range(count):
        rows = ["Id | OwnerId | Status | Priority | CreatedDate"]
        question = "Question: Which agent (User Id) owns the most open High priority cases?"
        while True:
            rows.append(f"500Wt{rng.randrange(10**13):013d}AAA | 005Wt{rng.randrange(10**13):013d}AAA | "
                        f"{rng.choice(['New', 'Working', 'Closed'])} | {rng.choice(['Low', 'Medium', 'High'])} | "
                        f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}")
            chat = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": "Case (records)\n" + "\n".join(rows) + "\n\n" + question}]
            ids = encode_prompts(tokenizer, [chat])[0]
            if len(ids) >= target_tokens:
                chats.append(chat)
                out.append(ids)
                break
    return chats, out


def rollouts_unshared(model: Any, tokenizer: Any, prompts: list[list[int]], n: int, max_new: int,
                      seed: int) -> RolloutBatch:
    """``model.generate`` on every prompt repeated n times (left-padded), as a plain GRPO loop does."""
    torch.manual_seed(seed)
    rows = [p for p in prompts for _ in range(n)]
    width = max(len(r) for r in rows)
    ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=0.7, top_p=0.9,
                         top_k=0, max_new_tokens=max_new, pad_token_id=tokenizer.pad_token_id)
    comps = []
    for row in out[:, width:].tolist():
        eos = tokenizer.eos_token_id
        comps.append(row[:row.index(eos) + 1] if eos in row else row)
    texts = tokenizer.batch_decode(comps, skip_special_tokens=True)
    return RolloutBatch([list(p) for p in prompts], comps, n, texts, [c[-1] == tokenizer.eos_token_id for c in comps])


def one_step(variant: str, model: Any, tokenizer: Any, prompts: list[list[int]], n: int, max_new: int,
             seed: int, optimizer: torch.optim.Optimizer, micro_groups: int = 1,
             stop_after_answer: bool = False, twin: Any = None) -> dict[str, float]:
    """One rollout + policy-gradient update; returns its timings (s) and mean completion length.

    ``twin`` (for ``shared-bf16``): the bf16 copy that decodes; training then runs under bf16 autocast
    and the copy is refreshed after the optimizer step.
    """
    mode = "mixed" if variant == "shared-bf16" else "fp32"
    t0 = time.perf_counter()
    model.eval()
    with torch.no_grad():
        if variant == "unshared":
            ro = rollouts_unshared(model, tokenizer, prompts, n, max_new, seed)
        else:
            dec = HFCacheDecoder(model, tokenizer.pad_token_id) if variant == "hf-cache" else None
            ro = generate_rollouts(twin if mode == "mixed" else model, tokenizer, prompts, n=n,
                                   max_new_tokens=max_new, seed=seed, decoder=dec,
                                   stop_after_answer=stop_after_answer)
    t1 = time.perf_counter()
    model.train()
    adv = torch.linspace(-1.0, 1.0, len(ro.completion_ids))[:, None]        # stand-in advantages [B, 1]
    n_tokens = sum(len(c) for c in ro.completion_ids)
    for g0 in range(0, ro.num_groups, micro_groups):                         # gradient accumulation
        rows = slice(g0 * n, (g0 + micro_groups) * n)
        with precision.autocast(mode, "cpu"):
            logp, _, mask = completion_logprobs(model, ro.prompt_ids[g0:g0 + micro_groups],
                                                ro.completion_ids[rows], n, share_prompt=(variant != "unshared"
                                                                                          and variant != "hf-cache"))
        (-(adv[rows] * logp * mask).sum() / n_tokens).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if twin is not None:
        precision.sync_copy(model, twin)
    t2 = time.perf_counter()
    lengths = [len(c) for c in ro.completion_ids]
    return {"rollout_s": t1 - t0, "train_s": t2 - t1, "step_s": t2 - t0,
            "mean_len": sum(lengths) / len(lengths), "max_len": max(lengths)}


def trl_steps(model_dir: str, chats: list[list[dict[str, str]]], steps: int, n: int, max_new: int,
              micro_groups: int, bf16: bool = False) -> list[dict[str, float]]:
    """Seconds per optimizer step of TRL's GRPOTrainer at the same shape (first step dropped as warm-up).

    Same model, prompts, n, temperature, top-p, length cap and micro-batches (one group of n
    completions each, gradient accumulation over the groups); no KL (beta 0), one iteration per batch,
    a stand-in reward, and no gradient checkpointing (TRL turns it on by default; the project's paths
    do not recompute activations either). TRL is not a dependency of seccrm: ``pip install trl`` to run this variant.
    """
    import tempfile

    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    class Timer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.t0 = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.times.append(time.perf_counter() - self.t0)
            print(f"trl step {len(self.times) - 1}: step_s {self.times[-1]:.2f}", flush=True)

    def stand_in_reward(completions: list[Any], **kw: Any) -> list[float]:
        return [float(len(str(c)) % 7) for c in completions]

    groups = len(chats)
    timer = Timer()
    with tempfile.TemporaryDirectory() as out:
        cfg = GRPOConfig(output_dir=out, per_device_train_batch_size=n * micro_groups,
                         gradient_accumulation_steps=groups // micro_groups, num_generations=n,
                         max_completion_length=max_new, temperature=0.7, top_p=0.9, learning_rate=1e-6,
                         beta=0.0, max_steps=steps + 1, logging_steps=1, report_to=[], use_cpu=True,
                         bf16=bf16, save_strategy="no", disable_tqdm=True, seed=0,
                         gradient_checkpointing=False,     # TRL's default is on; the others do not recompute
                         model_init_kwargs={"dtype": torch.float32})
        trainer = GRPOTrainer(model=model_dir, reward_funcs=stand_in_reward, args=cfg,
                              train_dataset=Dataset.from_list([{"prompt": c} for c in chats]),
                              callbacks=[timer])
        trainer.train()
    return [{"step_s": t} for t in timer.times[1:]]


def machine() -> str:
    from seccrm.rl.metrics import machine_summary

    return f"{machine_summary()}, {torch.get_num_threads()} threads"


def _trl_version() -> str:
    import trl

    return str(trl.__version__)


def write_section(path: Path, body: str) -> None:
    """Append ``body`` under this benchmark's section of ``path``, leaving other sections alone."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n"
    start = text.index(SECTION) + len(SECTION)
    nxt = text.find("\n## ", start)
    end = len(text) if nxt < 0 else nxt
    section = text[start:end].rstrip("\n") + "\n\n" + body.strip("\n") + "\n"
    path.write_text(text[:start] + section + ("" if nxt < 0 else "\n" + text[end:].lstrip("\n")))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per variant (median reported)")
    ap.add_argument("--variants", default="shared,unshared",
                    help="comma list of shared, shared-bf16, unshared, hf-cache, trl, trl-bf16 "
                    "(trl needs `pip install trl`)")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--prompt-tokens", type=int, default=252)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--micro-groups", type=int, default=1, help="groups per forward/backward micro-batch")
    ap.add_argument("--stop-after-answer", action="store_true",
                    help="shared / hf-cache rollouts also stop after </answer> (the plain loop and TRL stop at EOS only)")
    ap.add_argument("--out", default="BENCHMARKS.md")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()[0]

    variants = args.variants.split(",")
    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    model, tok = load_model_and_tokenizer(args.model, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    chats, prompts = crm_prompts(tok, args.prompts, args.prompt_tokens, seed=0)
    model_dir = str(ensure_default_model()) if args.model == "smollm2" else args.model
    for variant in [v for v in variants if v.startswith("trl")]:  # TRL runs its own loop, first
        results[variant] = trl_steps(model_dir, chats, args.steps, args.n, args.max_new_tokens, args.micro_groups,
                                     bf16=variant == "trl-bf16")
    twin = precision.inference_copy(model) if "shared-bf16" in variants else None
    # The project's variants alternate step by step, so that they see the same background load.
    for step in range(args.steps + 1):                                         # step 0 warms up
        for variant in [v for v in variants if not v.startswith("trl")]:
            if twin is not None:
                precision.sync_copy(model, twin)
            r = one_step(variant, model, tok, prompts, args.n, args.max_new_tokens, seed=step, optimizer=opt,
                         micro_groups=args.micro_groups, stop_after_answer=args.stop_after_answer,
                         twin=twin if variant == "shared-bf16" else None)
            print(f"{variant} step {step}: " + ", ".join(f"{k} {v:.2f}" for k, v in r.items()), flush=True)
            if step > 0:
                results[variant].append(r)

    plen = statistics.mean(len(p) for p in prompts)
    lines = [f"### {dt.date.today().isoformat()}: {args.prompts} prompts x {args.n} completions, "
             f"{plen:.0f}-token prompts, up to {args.max_new_tokens} new tokens, {args.model}, "
             f"micro-batches of {args.micro_groups} group(s)",
             "", f"{OPENMP}; variants alternate step by step.",
             "", f"Machine: {machine()}; 1-minute load average {load_before:.1f} before the run and "
             f"{os.getloadavg()[0]:.1f} after (the machine is shared with other jobs).",
             f"Command: `python {shlex.join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])}`",
             "", "| variant | step s (median) | rollout s | train s | mean / max completion tokens | steps |",
             "|---|---|---|---|---|---|"]
    for variant, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        if variant.startswith("trl"):
            kind = "bf16 autocast" if variant == "trl-bf16" else "float32"
            lines.append(f"| trl {_trl_version()} GRPOTrainer, {kind} | {med['step_s']:.1f} | - | - | - | {len(runs)} |")
            continue
        label = {"shared-bf16": "shared, bf16 autocast, bf16 decoding copy"}.get(variant, f"{variant}, float32")
        lines.append(f"| {label} | {med['step_s']:.1f} | {med['rollout_s']:.1f} | {med['train_s']:.1f} | "
                     f"{statistics.mean(r['mean_len'] for r in runs):.1f} / {max(r['max_len'] for r in runs)} "
                     f"| {len(runs)} |")
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        write_section(Path(args.out), table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
