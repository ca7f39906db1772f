"""Supervised format warm-up: a short stage before RL for models that do not yet write the answer format.

Why: a model that never writes ``<answer>...</answer>`` earns 0.0 on every completion, every GRPO group
has zero advantage and nothing is learned (SmolLM2-135M-Instruct wrote the block in 1 of 64 samples
even with a worked example). A few dozen steps of supervised training on *training* instances, with
the target ``<answer>GOLD</answer>`` and nothing else, make the format reachable. The warm-up never
sees validation or held-out test tasks; it is its own stage with its own row in every table (base,
after warm-up, after RL), and every curriculum starts from the same warm-up checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm


def warmup_target(instance: dict[str, Any]) -> str:
    """The completion the warm-up teaches: the gold answer inside one answer block."""
    return f"<answer>{', '.join(instance['answer'])}</answer>"


def format_warmup(model: Any, tokenizer: Any, instances: list[dict[str, Any]], steps: int, batch_size: int = 8,
                  lr: float = 1e-4, seed: int = 0, max_prompt_tokens: int = 0,
                  progress: bool = True, mode: str = "fp32") -> list[dict[str, float]]:
    """Train ``model`` in place for ``steps`` steps of next-token loss on the target tokens only.

    ``mode`` is a resolved precision (``seccrm.precision``): ``mixed`` runs forward and backward under
    bf16 autocast while the weights and AdamW state stay float32.
    """
    from seccrm import precision
    from seccrm.forward import completion_logprobs
    from seccrm.rollout import encode_prompts

    rng = random.Random(seed)
    prompts = encode_prompts(tokenizer, [inst["messages"] for inst in instances])
    keep = [i for i, p in enumerate(prompts) if not max_prompt_tokens or len(p) <= max_prompt_tokens]
    if not keep:
        raise ValueError("no warm-up instance fits the prompt length limit")
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    targets = {i: tokenizer.encode(warmup_target(instances[i]), add_special_tokens=False) + eos for i in keep}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    model.train()
    log = []
    order: list[int] = []
    for step in tqdm(range(steps), desc="format warm-up", unit="step", disable=not progress,
                     dynamic_ncols=True, file=sys.stderr):
        if len(order) < batch_size:
            more = list(keep)
            rng.shuffle(more)
            order.extend(more)
        idx, order = order[:batch_size], order[batch_size:]
        with precision.autocast(mode, next(model.parameters()).device):
            logp, _, mask = completion_logprobs(model, [prompts[i] for i in idx], [targets[i] for i in idx],
                                                group_size=1, share_prompt=False)
        loss = -(logp * mask).sum() / mask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if torch.isfinite(loss) and torch.isfinite(gnorm):
            opt.step()
        log.append({"warmup/loss": loss.item(), "warmup/grad_norm": gnorm.item(), "step": step + 1})
    model.eval()
    return log


def save_model_atomic(model: Any, tokenizer: Any, out: str | Path) -> Path:
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def run_warmup(data: str, model_spec: str, out: str | Path, steps: int, batch_size: int, lr: float,
               seed: int = 0, max_prompt_tokens: int = 0, bf16: str = "auto") -> Path:
    """Load, warm up on the training split, save a Hugging Face folder at ``out/model``."""
    from seccrm import precision
    from seccrm.data import load_split
    from seccrm.models import load_model_and_tokenizer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    mode = precision.resolve(bf16, device)
    model, tok = load_model_and_tokenizer(model_spec, dtype=precision.weight_dtype(mode), device=device)
    log = format_warmup(model, tok, load_split(data, "train"), steps, batch_size, lr, seed, max_prompt_tokens,
                        mode=mode)
    with open(out / "warmup_metrics.jsonl", "w") as f:
        for row in log:
            f.write(json.dumps(row) + "\n")
    return save_model_atomic(model, tok, out / "model")


def cmd_warmup(args: argparse.Namespace) -> int:
    from seccrm.cli import CLIError
    try:
        path = run_warmup(args.data, args.model, args.out, args.steps, args.batch_size, args.lr, args.seed,
                          args.max_prompt_tokens, args.bf16)
    except (ValueError, FileNotFoundError) as e:
        raise CLIError(str(e)) from e
    print(f"[seccrm] warmed-up model: {path}", file=sys.stderr)
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("warmup", help="Supervised format warm-up before RL (for models that need it).",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--model", default="smollm2")
    p.add_argument("--out", required=True, help="Folder; the model lands in OUT/model.")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-prompt-tokens", type=int, default=0)
    p.add_argument("--bf16", default="auto", choices=("auto", "on", "off"),
                   help="bf16 autocast over float32 weights ('auto': on GPUs and on CPUs with bf16 matrix units).")
    p.set_defaults(func=cmd_warmup)
