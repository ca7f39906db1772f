"""How one step's rollouts are cut up: which groups the update keeps, which completions go through one
forward/backward pass together, the loss mask and old log-probs of those rows, and the per-episode
means an agentic step logs."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import torch


def correctness(details: list[dict[str, Any]]) -> torch.Tensor:
    """``[B]`` 1.0 where the verifier says correct, else 0.0."""
    return torch.tensor([float(bool(d["correct"])) for d in details], dtype=torch.float32)


def variance_filter(grouped_rewards: torch.Tensor, groups: list[int], share: float) -> list[int]:
    """The ``share`` of ``groups`` (at least one) whose rewards vary most, in their given order: RAGEN's
    filter against multi-turn collapse. ``grouped_rewards``: shape (num_groups, group_size)."""
    count = max(1, math.ceil(share * len(groups)))
    std = grouped_rewards.std(dim=1)
    best = sorted(groups, key=lambda g: (-float(std[g]), groups.index(g)))[:count]
    return [g for g in groups if g in best]


def micro_batches(buckets: list[list[int]], n: int, completions: int = 0
                  ) -> list[tuple[list[int], list[int], int]]:
    """(groups, completion rows, completions per group) of each forward/backward pass: every bucket
    whole, or with ``completions`` > 0 each group's completions in parts of at most that many."""
    if completions <= 0 or completions >= n:
        return [(mg, [g * n + j for g in mg for j in range(n)], n) for mg in buckets]
    return [([g], [g * n + j for j in range(start, min(start + completions, n))], min(completions, n - start))
            for mg in buckets for g in mg for start in range(0, n, completions)]


def length_buckets(groups: list[int], ro: Any, size: int) -> list[list[int]]:
    """``groups`` in micro-batches of at most ``size``, neighbours in length together.

    Groups are sorted by prompt length, then by their longest completion, so that each micro-batch
    pads its prompts and its completions to lengths close to their own. The mini-batch's loss is a
    sum over its tokens (normalised by its total token count), so the order changes only float rounding.
    """
    n = ro.group_size

    def key(g: int) -> tuple[int, int, int]:
        return (len(ro.prompt_ids[g]), max(len(c) for c in ro.completion_ids[g * n:(g + 1) * n]), g)

    ordered = sorted(groups, key=key)
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


def rollout_metrics(rewards: torch.Tensor, correct: torch.Tensor, has_signal: torch.Tensor,
                    details: list[dict[str, Any]], batch: list[dict[str, Any]], ro: Any, kept: int,
                    agentic: bool) -> dict[str, Any]:
    """What a step's rollouts say: reward, accuracy and format, the verifier's components by name,
    lengths, groups with and without signal, rewards per task, and in agentic mode the episode means.
    ``rewards``, ``correct``: shape (B,), group-major; ``has_signal``: shape (G,)."""
    n = ro.group_size
    grouped = rewards.view(-1, n)
    out: dict[str, Any] = {
        "train/reward": rewards.mean().item(),
        "train/accuracy": correct.mean().item(),
        "train/format_rate": (rewards >= 0.1).float().mean().item(),
        # the verifier's own components, by name (not read back from the 1.0 / 0.1 levels)
        "reward/correct": sum(bool(d["correct"]) for d in details) / len(details),
        "reward/formatted": sum(bool(d["formatted"]) for d in details) / len(details),
        "train/response_len": sum(len(c) for c in ro.completion_ids) / len(ro.completion_ids),
        "train/truncated_rate": 1.0 - sum(ro.finished) / len(ro.finished),
        "train/zero_adv_groups": (grouped.std(dim=1) == 0).float().mean().item(),
        "train/signal_groups": has_signal.float().mean().item(),
        "train/format_only_groups": ((grouped.std(dim=1) > 0) & ~has_signal).float().mean().item(),
        "train/drawn_groups": float(len(batch)),
        "train/updated_groups": float(kept),
        "train/prompt_len": sum(len(p) for p in ro.prompt_ids) / len(ro.prompt_ids),
    }
    by_task: dict[str, list[float]] = defaultdict(list)
    for i, det in enumerate(details):
        by_task[batch[i // n]["task"]].append(det["reward"])
    out.update({f"task_reward/{t}": sum(v) / len(v) for t, v in sorted(by_task.items())})
    if agentic:
        out.update(agent_metrics(details, [batch[i // n]["arm"] for i in range(len(details))]))
    return out


def agent_metrics(details: list[dict[str, Any]], arms: list[str]) -> dict[str, float]:
    """Episode means (turns, failed queries, model tokens, share answered), overall and per arm."""
    out: dict[str, float] = {}
    by_arm: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d, a in zip(details, arms, strict=True):
        by_arm[a].append(d)
    for key, rows in [("", details), *sorted(by_arm.items())]:
        suffix = f"/{key}" if key else ""
        out[f"agent/turns{suffix}"] = sum(d["turns"] for d in rows) / len(rows)
        out[f"agent/failed_queries{suffix}"] = sum(d["failed_queries"] for d in rows) / len(rows)
        if not key:
            out["agent/model_tokens"] = sum(d["model_tokens"] for d in rows) / len(rows)
            out["agent/answered"] = sum(d["end_reason"] == "answer" for d in rows) / len(rows)
    # the episode reward's terms, each under its own name (seccrm.world.episode_reward)
    parts = [d["reward_parts"] for d in details if "reward_parts" in d]
    for name in sorted(parts[0]) if parts else ():
        prefix = "agent/" if name == "queries_ran" else "reward/"
        out[prefix + name] = sum(float(p[name]) for p in parts) / len(parts)
    return out


def model_tokens(ro: Any, row: int) -> int:
    """Tokens of one completion that the loss covers: all of them, or the model's own in an episode."""
    return len(ro.completion_ids[row]) if ro.loss_mask is None else sum(ro.loss_mask[row])


def row_weights(ro: Any, rows: list[int], num_tokens: int, num_rows: int, loss_agg: str) -> torch.Tensor | None:
    """Per-row loss weights for ``--loss-agg``: None for the token mean; for seq-mean-token-mean
    ``num_tokens / (num_rows * tokens of the row)``, so that dividing the weighted token sum by
    ``num_tokens`` averages each row's tokens, then the mini-batch's ``num_rows`` rows."""
    if loss_agg == "token-mean":
        return None
    return torch.tensor([num_tokens / (num_rows * max(model_tokens(ro, r), 1)) for r in rows], dtype=torch.float64)


def loss_mask(ro: Any, rows: list[int], like: torch.Tensor) -> torch.Tensor:
    """[len(rows), T] 0/1 of ``ro.loss_mask`` for ``rows``, padded with 0 to ``like``'s width."""
    out = torch.zeros_like(like)
    for i, r in enumerate(rows):
        m = ro.loss_mask[r][:like.shape[1]]
        out[i, :len(m)] = torch.tensor(m, dtype=like.dtype, device=like.device)
    return out


def gather_rows(old: list[torch.Tensor], rows: list[int], width: int) -> torch.Tensor:
    out = torch.zeros(len(rows), width, dtype=old[0].dtype, device=old[0].device)
    for i, r in enumerate(rows):
        k = min(width, old[r].shape[0])
        out[i, :k] = old[r][:k]
    return out
