"""GRPO math as pure tensor functions: tensors in, tensors (and a metrics dict) out, no trainer state.

Shapes: ``B`` completions (rows, group-major: rows ``g*n .. g*n+n-1`` answer the same prompt),
``T`` response tokens per row, ``N`` tokens flattened, ``H`` hidden size, ``V`` vocabulary size.

- :func:`group_advantages`      one advantage per completion from its group's rewards
- :func:`signal_advantages`     what the curriculum learns from (training advantages, unscaled, correctness)
- :func:`group_has_signal`      groups that mix correct and wrong completions (dynamic sampling)
- :func:`masked_mean`, :func:`masked_sum`   reductions that ignore padding (even NaN padding)
- :func:`kl_k3`                 the low-variance k3 estimate of KL(policy || reference), per token
- :func:`policy_loss`           PPO clipped surrogate, token-mean aggregation, optional KL and entropy

The log-prob kernel (log p and entropy from hidden states, chunked) is the network's, in
`seccrm.engine.logprobs`; it is re-exported here under its old names.

Choices made here where the spec (``specs/sec-grpo.md``) leaves room:

- The group std is the *unbiased* one (divide by n - 1), as verl and TRL compute it.
- Log-ratios are clamped to [-20, 20] before ``exp`` so that a stale or padded token cannot turn the
  loss into inf; both PPO and k3 KL use this clamp.
- ``policy/approx_kl`` is the k3 estimate of KL(old || new) on the sampled tokens (non-negative, low
  variance), not the plain mean of ``old - new``.
- Metrics are means over *this call's* masked tokens, independent of ``num_tokens``, so that a trainer
  averages them over micro-batches weighted by ``policy/tokens``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from seccrm.engine.logprobs import (  # noqa: F401  (old home of the kernel)
    chunked_logprobs_entropy,
    entropy_from_logits,
    logprobs_from_logits,
)

# exp(20) ~ 5e8: far beyond any useful ratio, yet finite in float32 (and in bf16).
LOG_RATIO_CLAMP = 20.0


# ------------------------------------------------------------------------------------------------
# Advantages and masked reductions
# ------------------------------------------------------------------------------------------------


def group_advantages(rewards: Tensor, group_size: int, scale_by_std: bool = True, eps: float = 1e-6) -> Tensor:
    """GRPO outcome advantages: each completion's reward relative to its own group.

    Args:
        rewards: ``[B]`` one scalar reward per completion, group-major (rows ``g*n .. g*n+n-1`` share
            a prompt, ``n = group_size``).
        group_size: ``n``, completions per prompt; ``B`` must be a multiple of it.
        scale_by_std: ``A = (r - mean) / (std + eps)`` when True, with the *unbiased* group std
            (n - 1 in the denominator, as verl and TRL do); ``A = r - mean`` when False (Dr. GRPO:
            only the std is dropped here; its other change, the loss aggregation, is not).
        eps: added to the std so that an all-equal group gives ``A = 0`` rather than ``0 / 0``.

    Returns:
        ``[B]`` advantages, float (float32 for integer rewards). A group whose rewards are all equal
        gets exactly 0: it teaches nothing.
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D [B], got shape {tuple(rewards.shape)}")
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 (GRPO compares completions of a prompt), got {group_size}")
    if rewards.numel() % group_size != 0:
        raise ValueError(
            f"{rewards.numel()} rewards do not split into groups of {group_size}: the batch must hold "
            f"a whole number of groups (prompts x completions per prompt)"
        )
    r = rewards if rewards.is_floating_point() else rewards.float()
    grouped = r.view(-1, group_size)  # [G, n]
    centred = grouped - grouped.mean(dim=1, keepdim=True)  # [G, n]
    if scale_by_std:
        centred = centred / (grouped.std(dim=1, unbiased=True, keepdim=True) + eps)
    # All-equal groups get exactly 0: a float mean of eight 0.1s is not exactly 0.1, and the std
    # scaling would blow that rounding up to ~0.007, a signal that is not there.
    equal = (grouped == grouped[:, :1]).all(dim=1, keepdim=True)  # [G, 1]
    return torch.where(equal, torch.zeros_like(centred), centred).reshape(-1)


def signal_advantages(rewards: Tensor, group_size: int, mode: str, scale_by_std: bool = True,
                      correct_at: float = 1.0) -> Tensor:
    """Per-completion advantages a curriculum learns from (its r(a) is the mean of their |.|).

    Args:
        rewards: ``[B]`` rewards, group-major as in :func:`group_advantages`.
        mode: ``"advantage"`` (the training advantages, as the SEC paper: std-scaled when
            ``scale_by_std``), ``"unscaled"`` (``r - mean``), or ``"correctness"`` (``c - mean(c)`` with
            ``c = 1[r >= correct_at]``: a group's mean |.| is then ``2 p (1 - p)`` for its success rate
            ``p``, and groups that differ only by the 0.1 format reward give 0).
    Returns:
        ``[B]`` float advantages.
    """
    if mode == "advantage":
        return group_advantages(rewards, group_size, scale_by_std=scale_by_std)
    if mode == "unscaled":
        return group_advantages(rewards, group_size, scale_by_std=False)
    if mode == "correctness":
        return group_advantages((rewards >= correct_at).float(), group_size, scale_by_std=True)
    raise ValueError(f"unknown curriculum signal {mode!r}; known: advantage, unscaled, correctness")


def group_has_signal(rewards: Tensor, group_size: int, correct_at: float = 1.0) -> Tensor:
    """``[G]`` bool: groups that hold both a correct (``r >= correct_at``) and a wrong completion.

    These are the groups dynamic sampling keeps (DAPO; verl's ``filter_groups`` on accuracy).
    """
    ok = (rewards >= correct_at).view(-1, group_size)   # [G, n]
    return ok.any(dim=1) & ~ok.all(dim=1)


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of ``x`` where ``mask`` is non-zero (a float mask also weights the entries).

    Masked-out entries contribute exactly 0 even when they hold NaN or inf (padding often does).
    ``x``: ``[...]``; ``mask``: broadcastable to ``x``. Returns a scalar, or ``x`` reduced over ``dim``.
    """
    weighted = torch.where(mask != 0, x * mask.to(x.dtype), torch.zeros((), dtype=x.dtype, device=x.device))
    return weighted.sum() if dim is None else weighted.sum(dim=dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over the entries where ``mask`` is non-zero; 0 where nothing is unmasked.

    ``x``: ``[...]``; ``mask``: broadcastable to ``x``. Returns a scalar, or ``x`` reduced over ``dim``.
    """
    weights = mask.to(x.dtype).expand_as(x)
    total = weights.sum() if dim is None else weights.sum(dim=dim)
    # An all-masked row has a numerator of exactly 0; the clamp turns 0 / 0 into 0 / tiny = 0.
    return masked_sum(x, mask, dim) / total.clamp_min(torch.finfo(x.dtype).tiny)


# ------------------------------------------------------------------------------------------------
# KL and the policy loss
# ------------------------------------------------------------------------------------------------


def kl_k3(logp: Tensor, ref_logp: Tensor, max_value: float = 10.0) -> Tensor:
    """k3 estimate of KL(policy || reference) per token: ``exp(d) - d - 1`` with ``d = ref - logp``.

    Unbiased for tokens sampled from the policy, always >= 0 and of lower variance than ``-d``.
    ``d`` is clamped to [-20, 20] so ``exp`` stays finite, and the result to ``[0, max_value]``:
    a token that has drifted by more than ``max_value`` nats then stops pushing (zero gradient),
    which keeps a single runaway token from dominating the loss.

    Args:
        logp: ``[B, T]`` log-probabilities of the sampled tokens under the policy.
        ref_logp: ``[B, T]`` the same tokens under the frozen reference.
    Returns:
        ``[B, T]`` per-token KL estimates.
    """
    d = (ref_logp - logp).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    return (torch.exp(d) - d - 1.0).clamp(0.0, max_value)


def _check_loss_shapes(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor) -> None:
    if logp.dim() != 2:
        raise ValueError(f"logp must be [B, T], got shape {tuple(logp.shape)}")
    for name, t in (("old_logp", old_logp), ("mask", mask)):
        if t.shape != logp.shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, expected logp's {tuple(logp.shape)}")
    if advantages.shape != logp.shape[:1]:
        raise ValueError(
            f"advantages must be one per sequence [B]={logp.shape[0]}, got shape {tuple(advantages.shape)}"
        )


def policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_eps: float = 0.2,
    ref_logp: Tensor | None = None,
    kl_coef: float = 0.0,
    entropy: Tensor | None = None,
    entropy_coef: float = 0.0,
    num_tokens: float | Tensor | None = None,
    row_weight: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """PPO clipped surrogate on token log-ratios with token-mean aggregation.

    Per token: ``ratio = exp(logp - old_logp)``,
    ``pg = max(-A * ratio, -A * clip(ratio, 1 - clip_eps, 1 + clip_eps))``; then
    ``loss = (sum(pg) + kl_coef * sum(kl_k3(logp, ref_logp)) - entropy_coef * sum(entropy)) / num_tokens``
    with sums over the masked tokens.

    Args:
        logp: ``[B, T]`` current log-probabilities of the sampled tokens (carries the gradient).
        old_logp: ``[B, T]`` the same under the policy that generated the batch (detached here).
        advantages: ``[B]`` one per sequence, broadcast over its tokens (detached here).
        mask: ``[B, T]`` 1 for response tokens, 0 for prompt and padding (bool or float).
        ref_logp: ``[B, T]`` reference log-probabilities; required when ``kl_coef != 0``.
        entropy: ``[B, T]`` per-token entropy of the policy; required when ``entropy_coef != 0``.
        num_tokens: response tokens in the whole mini-batch. Dividing every micro-batch's sum by it
            makes gradient accumulation yield exactly the mini-batch token mean. Default: this
            call's ``mask.sum()`` (at least 1, so an empty mask gives a loss of 0).
        row_weight: ``[B]`` optional weight of each row's surrogate tokens (detached here): with
            ``num_tokens / (rows * row_tokens)`` the token mean becomes verl's seq-mean-token-mean.

    Returns:
        ``(loss, metrics)``: a scalar loss, and floats over this call's masked tokens: ``loss/policy``
        (mean pg), ``loss/kl`` (mean k3 KL to the reference, 0.0 without one), ``loss/entropy``
        (mean entropy, 0.0 when not given), ``policy/clip_frac`` (share of tokens whose gradient the
        clip removed), ``policy/ratio_mean``, ``policy/approx_kl`` (k3 KL(old || new)),
        ``policy/tokens`` (unmasked tokens in this call).
    """
    _check_loss_shapes(logp, old_logp, advantages, mask)
    if kl_coef != 0.0 and ref_logp is None:
        raise ValueError("kl_coef is non-zero but no ref_logp was given: pass the reference log-probs")
    if entropy_coef != 0.0 and entropy is None:
        raise ValueError("entropy_coef is non-zero but no entropy was given: pass the per-token entropy")
    keep = mask != 0
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    # Zero the log-ratio on padding *before* exp: a NaN or huge padded logp must not reach the
    # gradient (where() after exp would still back-propagate 0 * inf = NaN).
    log_ratio = torch.where(keep, logp - old_logp.detach(), zero).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = torch.exp(log_ratio)  # [B, T]
    adv = advantages.detach().to(logp.dtype).unsqueeze(1)  # [B, 1]
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)
    pg = torch.maximum(unclipped, clipped)  # [B, T]
    if row_weight is not None:
        pg = pg * row_weight.detach().to(pg.dtype).unsqueeze(1)

    denom = mask.sum() if num_tokens is None else torch.as_tensor(num_tokens)
    denom = denom.to(device=logp.device, dtype=logp.dtype).clamp_min(1.0)
    total = masked_sum(pg, mask)
    kl = None
    if ref_logp is not None:
        kl = kl_k3(torch.where(keep, logp, zero), torch.where(keep, ref_logp.detach(), zero))
        total = total + kl_coef * masked_sum(kl, mask)
    if entropy is not None:
        total = total - entropy_coef * masked_sum(entropy, mask)
    loss = total / denom

    metrics = _loss_metrics(pg, clipped > unclipped, ratio, log_ratio, kl, entropy, mask)
    return loss, metrics


def _loss_metrics(
    pg: Tensor,
    clip_active: Tensor,
    ratio: Tensor,
    log_ratio: Tensor,
    kl: Tensor | None,
    entropy: Tensor | None,
    mask: Tensor,
) -> dict[str, float]:
    """Token means over ``mask`` of the ``[B, T]`` loss pieces, fetched with a single device sync."""
    with torch.no_grad():
        zero = torch.zeros((), dtype=pg.dtype, device=pg.device)
        values = torch.stack(
            [
                masked_mean(pg, mask),
                masked_mean(kl, mask) if kl is not None else zero,
                masked_mean(entropy.to(pg.dtype), mask) if entropy is not None else zero,
                masked_mean(clip_active.to(pg.dtype), mask),
                masked_mean(ratio, mask),
                # KL(old || new) by k3 on tokens sampled from old: exp(new - old) - (new - old) - 1.
                masked_mean(torch.expm1(log_ratio) - log_ratio, mask),
                (mask != 0).sum().to(pg.dtype),
            ]
        ).tolist()
    keys = ("loss/policy", "loss/kl", "loss/entropy", "policy/clip_frac", "policy/ratio_mean",
            "policy/approx_kl", "policy/tokens")
    return dict(zip(keys, (float(v) for v in values), strict=True))
