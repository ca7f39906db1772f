"""GRPO math as pure tensor functions: tensors in, tensors (and a metrics dict) out, no trainer state.

Shapes: ``B`` completions (rows, group-major: rows ``g*n .. g*n+n-1`` answer the same prompt),
``T`` response tokens per row, ``N`` tokens flattened, ``H`` hidden size, ``V`` vocabulary size.

- :func:`group_advantages`      one advantage per completion from its group's rewards
- :func:`signal_advantages`     what the curriculum learns from (training advantages, unscaled, correctness)
- :func:`group_has_signal`      groups that mix correct and wrong completions (dynamic sampling)
- :func:`masked_mean`, :func:`masked_sum`   reductions that ignore padding (even NaN padding)
- :func:`kl_k3`                 the low-variance k3 estimate of KL(policy || reference), per token
- :func:`policy_loss`           PPO clipped surrogate, token-mean aggregation, optional KL and entropy
- :func:`chunked_logprobs_entropy`  log p(target) and entropy from hidden states and the LM head,
  1024 tokens at a time, so the ``[N, V]`` float32 logits never exist whole (forward or backward)
- :func:`logprobs_from_logits`, :func:`entropy_from_logits`  the naive references

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

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

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


# ------------------------------------------------------------------------------------------------
# Log-probabilities and entropy: naive references and the chunked path
# ------------------------------------------------------------------------------------------------


def _upcast(x: Tensor) -> Tensor:
    """bf16 / fp16 -> float32; float32 and float64 stay as they are (float64 keeps gradcheck exact)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def logprobs_from_logits(logits: Tensor, targets: Tensor) -> Tensor:
    """``[..., V]`` logits, ``[...]`` int targets -> ``[...]`` float32 log p(target). Naive reference."""
    logp_all = torch.log_softmax(_upcast(logits), dim=-1)
    return logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """``[..., V]`` logits -> ``[...]`` float32 entropy ``-sum p log p``. Naive reference."""
    logp_all = torch.log_softmax(_upcast(logits), dim=-1)
    return -(logp_all.exp() * logp_all).sum(-1)


def _chunk_logprobs(h: Tensor, weight: Tensor, bias: Tensor | None, temperature: float) -> Tensor:
    """``[c, H]`` hidden -> ``[c, V]`` float32 log-softmax of ``(h @ weight.T + bias) / temperature``.

    The matmul runs in the input dtype (bf16 on GPU); only this chunk is upcast. In-place ops keep
    at most one float32 ``[c, V]`` buffer alive besides the input-dtype logits.
    """
    z = _upcast(torch.nn.functional.linear(h, weight, bias))  # [c, V]; same tensor if already fp32
    if temperature != 1.0:
        z.div_(temperature)
    return z.sub_(torch.logsumexp(z, dim=-1, keepdim=True))


class _ChunkedLogProbsEntropy(torch.autograd.Function):
    """Forward and backward chunk by chunk; backward recomputes each chunk's logits.

    Saved for backward: the inputs (already alive elsewhere) and the ``[N]`` entropies, never logits.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        hidden: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        targets: Tensor,
        chunk_size: int,
        temperature: float,
        with_entropy: bool,
        compute: torch.dtype,
    ) -> tuple[Tensor, Tensor]:
        n, dtype = hidden.shape[0], torch.promote_types(hidden.dtype, torch.float32)
        logp = torch.empty(n, dtype=dtype, device=hidden.device)  # [N]
        ent = torch.empty(n if with_entropy else 0, dtype=dtype, device=hidden.device)
        w_c, b_c = weight.to(compute), (None if bias is None else bias.to(compute))
        for s in range(0, n, chunk_size):
            e = min(s + chunk_size, n)
            lp_all = _chunk_logprobs(hidden[s:e].to(compute), w_c, b_c, temperature)  # [c, V]
            logp[s:e] = lp_all.gather(-1, targets[s:e].unsqueeze(-1)).squeeze(-1)
            if with_entropy:
                ent[s:e] = -lp_all.exp().mul_(lp_all).sum(-1)
        ctx.save_for_backward(hidden, weight, targets, ent, *([] if bias is None else [bias]))
        ctx.set_materialize_grads(False)  # an unused output arrives as None: skip its work
        ctx.chunk_size, ctx.temperature, ctx.compute = chunk_size, temperature, compute  # type: ignore[attr-defined]
        return logp, ent

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g_logp: Tensor | None, g_ent: Tensor | None) -> tuple[Tensor | None, ...]:
        hidden, weight, targets, ent, *maybe_bias = ctx.saved_tensors
        bias = maybe_bias[0] if maybe_bias else None
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        grad_h = torch.zeros_like(hidden) if need_h else None
        # Accumulated over chunks in float32 (bf16 sums of many chunks would lose bits), cast at the end.
        acc = torch.promote_types(weight.dtype, torch.float32)
        grad_w = torch.zeros(weight.shape, dtype=acc, device=weight.device) if need_w else None
        grad_b = torch.zeros(weight.shape[0], dtype=acc, device=weight.device) if need_b else None
        if g_ent is not None and ent.numel() == 0:
            raise RuntimeError("entropy gradient requested but entropy was not computed (with_entropy=False)")
        if g_logp is not None or g_ent is not None:
            # Backward runs outside autocast: the compute dtype recorded in forward is applied by hand.
            w_c, b_c = weight.to(ctx.compute), (None if bias is None else bias.to(ctx.compute))
            for s in range(0, hidden.shape[0], ctx.chunk_size):
                e = min(s + ctx.chunk_size, hidden.shape[0])
                h_c = hidden[s:e].to(ctx.compute)
                gz = _chunk_grad_logits(
                    _chunk_logprobs(h_c, w_c, b_c, ctx.temperature),
                    targets[s:e],
                    None if g_logp is None else g_logp[s:e],
                    None if g_ent is None else (g_ent[s:e], ent[s:e]),
                    ctx.temperature,
                )  # [c, V] float32, d loss / d logits
                gz_in = gz.to(ctx.compute)
                if grad_h is not None:
                    grad_h[s:e] = gz_in @ w_c
                if grad_w is not None:
                    grad_w += gz_in.t() @ h_c
                if grad_b is not None:
                    grad_b += gz.sum(0)
        return (
            grad_h,
            None if grad_w is None else grad_w.to(weight.dtype),
            None if grad_b is None else grad_b.to(weight.dtype),
            None, None, None, None, None,
        )


def _chunk_grad_logits(
    lp_all: Tensor, targets: Tensor, g_logp: Tensor | None, g_ent: tuple[Tensor, Tensor] | None, temperature: float
) -> Tensor:
    """Gradient of the loss w.r.t. one chunk's raw logits, built in place in ``lp_all``'s buffer.

    With ``z = logits / temperature``, ``p = softmax(z)`` and ``lp_all = log p`` (``[c, V]``):
    ``d logp_t / dz = onehot(t) - p`` and ``d H / dz = -p * (log p + H)``; ``g_ent`` is
    ``(upstream grad [c], H [c])``. Returns ``[c, V]`` float32.
    """
    p = lp_all.exp()  # [c, V]
    if g_ent is not None:
        g_h, h = g_ent
        gz = lp_all.add_(h.unsqueeze(1)).mul_(p).mul_(-g_h.unsqueeze(1))
        if g_logp is not None:
            gz.sub_(p.mul_(g_logp.unsqueeze(1)))
    else:
        assert g_logp is not None
        gz = p.mul_(-g_logp.unsqueeze(1))
    if g_logp is not None:
        rows = torch.arange(gz.shape[0], device=gz.device)
        gz[rows, targets] += g_logp
    if temperature != 1.0:
        gz.div_(temperature)
    return gz


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The autocast dtype in force for ``device_type``, or None (also for devices autocast does not know)."""
    try:
        return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
    except RuntimeError:  # e.g. 'meta'
        return None


def chunked_logprobs_entropy(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    chunk_size: int = 1024,
    temperature: float = 1.0,
    with_entropy: bool = True,
    bias: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Log p(target) and entropy from final hidden states and the LM head, ``chunk_size`` tokens at a time.

    Equal to ``logprobs_from_logits(logits / temperature, targets)`` and
    ``entropy_from_logits(logits / temperature)`` with ``logits = hidden @ weight.T + bias``, but the
    ``[N, V]`` logits are never held whole: each chunk's logits are made in the input dtype, upcast
    to float32 for the log-softmax, reduced to ``[c]`` and freed; backward recomputes them chunk by
    chunk. Peak extra memory is about ``chunk_size * V * (4 + 4 + dtype size)`` bytes, plus a float32
    ``[V, H]`` gradient buffer when ``weight`` needs a gradient (none for a frozen head, e.g. LoRA).

    Args:
        hidden: ``[N, H]`` (or ``[..., H]``) the base model's last hidden states at the positions
            that predict ``targets``.
        weight: ``[V, H]`` the LM head weight, same dtype and device as ``hidden``.
        targets: ``[N]`` (or ``[...]``) token ids; padded positions must still hold a valid id.
        chunk_size: tokens per chunk.
        temperature: logits are divided by it (use the sampler's, so log-probs match the rollout).
        with_entropy: compute the entropy too; otherwise ``None`` is returned for it.
        bias: ``[V]`` optional LM head bias.

    Returns:
        ``(logp [N], entropy [N] or None)``, float32 (float64 for float64 inputs), shaped like ``targets``. Under
        autocast the logits (forward and backward) are made in the autocast dtype, e.g. bf16 from float32
        weights; gradients come back in the inputs' dtypes. Gradients flow to
        ``hidden``, ``weight`` and ``bias``; backward is not itself differentiable.
    """
    if hidden.shape[:-1] != targets.shape:
        raise ValueError(f"hidden {tuple(hidden.shape)} and targets {tuple(targets.shape)} disagree on tokens")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[-1]:
        raise ValueError(f"weight must be [V, H={hidden.shape[-1]}], got {tuple(weight.shape)}")
    if weight.dtype != hidden.dtype or (bias is not None and bias.dtype != hidden.dtype):
        raise ValueError(f"hidden ({hidden.dtype}), weight and bias must share a dtype")
    if chunk_size < 1 or temperature <= 0:
        raise ValueError(f"chunk_size must be >= 1 and temperature > 0, got {chunk_size}, {temperature}")
    compute = _autocast_dtype(hidden.device.type) or hidden.dtype
    apply: Callable[..., tuple[Tensor, Tensor]] = _ChunkedLogProbsEntropy.apply
    logp, ent = apply(
        hidden.reshape(-1, hidden.shape[-1]), weight, bias, targets.reshape(-1).long(),
        chunk_size, float(temperature), with_entropy, compute,
    )
    return logp.view(targets.shape), (ent.view(targets.shape) if with_entropy else None)
