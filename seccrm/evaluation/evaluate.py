"""Evaluation of any model or checkpoint: one greedy completion per instance, scored by the verifiers.

Reported: accuracy (share of 1.0 rewards), mean reward, format rate (share of 0.1 or better), each with
a bootstrap 95% interval over instances, overall and by task, skill and difficulty.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from seccrm.engine.rollout import encode_prompts, generate_rollouts
from seccrm.evaluation.stats import bootstrap_ci
from seccrm.evaluation.stats import relative_change as relative_improvement  # noqa: F401  (its old name)
from seccrm.world.rewards import score_details


def summarise(rows: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Accuracy, reward and format rate with intervals: overall and by task, skill, difficulty."""

    def block(sel: list[dict[str, Any]]) -> dict[str, Any]:
        correct = [1.0 if r["reward"] >= 1.0 else 0.0 for r in sel]
        fmt = [1.0 if r["reward"] >= 0.1 else 0.0 for r in sel]
        rew = [r["reward"] for r in sel]
        return {"n": len(sel), "accuracy": float(np.mean(correct)) if sel else float("nan"),
                "accuracy_ci95": bootstrap_ci(correct, seed=seed),
                "mean_reward": float(np.mean(rew)) if sel else float("nan"),
                "format_rate": float(np.mean(fmt)) if sel else float("nan"),
                "format_rate_ci95": bootstrap_ci(fmt, seed=seed)}

    out = block(rows)
    for key in ("task", "skill", "difficulty"):
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            groups[r[key]].append(r)
        out[f"by_{key}"] = {k: block(v) for k, v in sorted(groups.items())}
    return out


def _batches(order: list[int], lengths: list[int], batch_size: int, token_budget: int) -> list[list[int]]:
    """Consecutive slices of ``order`` with at most ``batch_size`` items and ``token_budget`` padded tokens."""
    out: list[list[int]] = []
    for i in order:
        if out and len(out[-1]) < batch_size and max(lengths[j] for j in out[-1] + [i]) * (len(out[-1]) + 1) <= token_budget:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def evaluate_instances(model: Any, tokenizer: Any, instances: list[dict[str, Any]], max_new_tokens: int = 64,
                       batch_size: int = 8, desc: str = "eval", progress: bool = True,
                       token_budget: int = 16384) -> dict[str, Any]:
    """Greedy completions for ``instances`` and their scores. Returns per-instance rows and a summary.

    Prompts are batched by length (similar lengths together, at most ``token_budget`` padded prompt
    tokens per batch) so that a few very long prompts never take the memory of a whole batch.
    """

    was_training = model.training
    model.eval()
    prompts = encode_prompts(tokenizer, [inst["messages"] for inst in instances])
    lengths = [len(p) for p in prompts]
    order = sorted(range(len(instances)), key=lambda i: lengths[i])
    rows: list[dict[str, Any] | None] = [None] * len(instances)
    t0 = time.perf_counter()
    with torch.no_grad(), tqdm(total=len(instances), desc=desc, unit="inst", disable=not progress,
                               dynamic_ncols=True, file=sys.stderr, leave=False) as bar:
        for idx in _batches(order, lengths, batch_size, token_budget):
            ro = generate_rollouts(model, tokenizer, [prompts[i] for i in idx], n=1,
                                   max_new_tokens=max_new_tokens, greedy=True)
            for j, i in enumerate(idx):
                inst, text = instances[i], ro.texts[j]
                d = score_details(inst, text)
                rows[i] = {"id": inst["id"], "task": inst["task"], "skill": inst["skill"],
                           "difficulty": inst["difficulty"], "reward": float(d["reward"]),
                           "prompt_tokens": lengths[i], "completion": text}
            bar.update(len(idx))
    if was_training:
        model.train()
    done = [r for r in rows if r is not None]
    return {"summary": summarise(done), "rows": done, "seconds": time.perf_counter() - t0}


def sample_probe(model: Any, tokenizer: Any, instances: list[dict[str, Any]], k: int = 4,
                 max_new_tokens: int = 64, temperature: float = 0.7, top_p: float = 0.9, seed: int = 0,
                 groups_per_batch: int = 8, desc: str = "probe", progress: bool = True) -> dict[str, Any]:
    """The sampled-reward probe: ``k`` samples per instance at the rollout temperature.

    Sampled reward moves before greedy accuracy does (a policy that puts 30% more mass on the right
    answer may not yet make it the argmax). Per instance: mean reward of the k samples, the share
    correct, and pass@k (any correct). Returns ``{"rows": [...], "summary": {...}}`` with bootstrap
    intervals over instances.
    """

    was_training = model.training
    model.eval()
    prompts = encode_prompts(tokenizer, [inst["messages"] for inst in instances])
    order = sorted(range(len(instances)), key=lambda i: len(prompts[i]))
    rows: list[dict[str, Any] | None] = [None] * len(instances)
    with torch.no_grad(), tqdm(total=len(instances), desc=desc, unit="inst", disable=not progress,
                               dynamic_ncols=True, file=sys.stderr, leave=False) as bar:
        for start in range(0, len(order), groups_per_batch):
            idx = order[start:start + groups_per_batch]
            ro = generate_rollouts(model, tokenizer, [prompts[i] for i in idx], n=k, max_new_tokens=max_new_tokens,
                                   temperature=temperature, top_p=top_p, seed=seed + start)
            for j, i in enumerate(idx):
                rewards = [float(score_details(instances[i], ro.texts[j * k + m])["reward"]) for m in range(k)]
                rows[i] = probe_row(instances[i], rewards)
            bar.update(len(idx))
    if was_training:
        model.train()
    return probe_result([r for r in rows if r is not None], k, temperature)


def probe_row(instance: dict[str, Any], rewards: list[float]) -> dict[str, Any]:
    """One instance's line of the sampled probe, from the rewards of its k samples: mean reward, share
    correct, pass@k (at least one of the k correct), pass^k (all k correct: tau-bench's reliability
    measure) and format rate."""
    k = len(rewards)
    right = [r >= 1.0 for r in rewards]
    return {"id": instance["id"], "task": instance["task"], "mean_reward": sum(rewards) / k,
            "correct_rate": sum(right) / k, "pass_at_k": float(any(right)), "pass_hat_k": float(all(right)),
            "format_rate": sum(r >= 0.1 for r in rewards) / k}


def probe_result(rows: list[dict[str, Any]], k: int, temperature: float) -> dict[str, Any]:
    """The probe's rows and their means, each with a bootstrap interval over instances."""
    summary: dict[str, Any] = {"k": k, "n": len(rows), "temperature": temperature}
    for key in ("mean_reward", "correct_rate", "pass_at_k", "pass_hat_k", "format_rate"):
        vals = [r[key] for r in rows if key in r]
        summary[key] = float(np.mean(vals)) if vals else float("nan")
        summary[f"{key}_ci95"] = bootstrap_ci(vals)
    return {"rows": rows, "summary": summary}
