"""Log-probabilities and entropy of target tokens, from logits or from hidden states and the LM head.

- :func:`chunked_logprobs_entropy`  log p(target) and entropy from hidden states and the LM head,
  1024 tokens at a time, so the ``[N, V]`` float32 logits never exist whole (forward or backward)
- :func:`logprobs_from_logits`, :func:`entropy_from_logits`  the naive references

Shapes: ``N`` tokens flattened, ``H`` hidden size, ``V`` vocabulary size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable


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
