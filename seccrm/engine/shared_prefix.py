"""Shared-prompt computation for Llama-family models: each prompt runs once per group.

GRPO samples n completions per prompt; CRM prompts are long and answers short, so computing the
prompt n times (in the rollout's prefill and again in the policy's forward and backward) is most of
the work. Here the prompt of a group runs once and its keys and values are shared by the group's n
completions:

- rollouts (``SharedPrefixDecoder``): the prompts are prefilled once; each decoding step attends to
  [that prompt's keys/values] + [the completion's own keys/values]. The prompt cache is never
  repeated: the queries of all n completions of a group (and all query heads of a KV head, GQA) are
  stacked into one matrix and multiplied with the group's keys once.
- training (``seccrm.engine.forward.shared_hidden``, built on ``LlamaLike`` here): the prompt pass
  runs with gradients; the completions attend to its keys and values, and autograd sums the n
  completions' gradients into the one prompt pass. The result equals the unshared computation (each
  row ``prompt + completion``) up to float rounding.

The prompt pass uses PyTorch's fused attention. The completions' attention is computed eagerly:
scores over the prefix and over the completion's own keys are concatenated, masked, and normalised
by one softmax (float32, or float64 for float64 models), so both parts share one normaliser; its
scores are [n * heads * completion length x prompt length] per group, small next to the prompt's. The modules of the model itself (projections, possibly LoRA-wrapped
by peft, norms, MLP, rotary embedding) do all the rest, so a LoRA adapter just works.

Supported: model types ``llama``, ``qwen2``, ``qwen3`` (with its q/k norms) and ``mistral`` without
a sliding window. ``seccrm.engine.capability.unsupported_reason`` says why another model cannot
share; callers then fall back.

Shapes: G groups (distinct prompts), n completions per group, B = G * n rows (group-major),
P padded prompt length, T completion length, H query heads, K KV heads, D head dim, E hidden size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from seccrm.engine.anatomy import base_model, decoder_and_head
from seccrm.engine.capability import rope_fn, unsupported_reason
from seccrm.engine.tokens import pad_tokens

KV = tuple[Tensor, Tensor]   # keys, values: [N, K, S, D] each


# ------------------------------------------------------------------------------------------------
# Attention
# ------------------------------------------------------------------------------------------------

def _softmax_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def causal_attention(q: Tensor, k: Tensor, v: Tensor, allowed: Tensor, scaling: float) -> Tensor:
    """Attention within each row: q [N, H, S, D], k/v [N, K, S, D], allowed [N, S, S] -> [N, S, H*D].

    PyTorch's fused attention, so the [S, S] scores of long prompts are not kept for backward on GPU.
    Every query must see at least one key (a fully masked row would give NaN): callers let padding
    queries see themselves.
    """
    N, H, S, D = q.shape
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None], scale=scaling,
                                         enable_gqa=H != k.shape[1])
    return out.transpose(1, 2).reshape(N, S, H * D)


def shared_attention(q: Tensor, k: Tensor, v: Tensor, allowed: Tensor | None, prefix: KV,
                     prefix_valid: Tensor, scaling: float) -> Tensor:
    """Completions attending to their group's prefix and to their own keys; one softmax over both.

    q [B, H, t, D]; own k/v [B, K, S, D]; allowed [B, t, S] (None: all own keys visible);
    prefix k/v [G, K, P, D] with prefix_valid [G, P]; B = G * n, rows group-major. Returns [B, t, H*D].
    The prefix is used once per group: its n completions' queries are stacked, not its keys repeated.
    """
    B, H, t, D = q.shape
    pk, pv = prefix
    G, K, P, _ = pk.shape
    n, r, S = B // G, H // K, k.shape[2]
    qs = (q * scaling).view(G, n, K, r, t, D)
    q_pre = qs.permute(0, 2, 1, 3, 4, 5).reshape(G, K, n * r * t, D)           # [G, K, n*r*t, D]
    s_pre = (q_pre @ pk.transpose(-1, -2)).view(G, K, n, r, t, P).permute(0, 2, 1, 3, 4, 5)
    s_own = (qs.reshape(G, n, K, r * t, D) @ k.view(G, n, K, S, D).transpose(-1, -2)).view(G, n, K, r, t, S)
    low = torch.finfo(s_own.dtype).min
    s_pre = s_pre.masked_fill(~prefix_valid.view(G, 1, 1, 1, 1, P), low)
    if allowed is not None:
        s_own = s_own.masked_fill(~allowed.view(G, n, 1, 1, t, S), low)
    probs = torch.softmax(torch.cat([s_pre, s_own], dim=-1), dim=-1, dtype=_softmax_dtype(q.dtype)).to(q.dtype)
    p_pre, p_own = probs.split([P, S], dim=-1)                                 # [G, n, K, r, t, P | S]
    o_pre = p_pre.permute(0, 2, 1, 3, 4, 5).reshape(G, K, n * r * t, P) @ pv  # [G, K, n*r*t, D]
    o_pre = o_pre.view(G, K, n, r, t, D).permute(0, 2, 1, 3, 4, 5)
    o_own = (p_own.reshape(G, n, K, r * t, S) @ v.view(G, n, K, S, D)).view(G, n, K, r, t, D)
    return (o_pre + o_own).reshape(B, H, t, D).transpose(1, 2).reshape(B, t, H * D)


# ------------------------------------------------------------------------------------------------
# The decoder, layer by layer, with the model's own modules
# ------------------------------------------------------------------------------------------------

class LlamaLike:
    """A Llama-family decoder seen as parts, so attention can be replaced and the prompt shared."""

    def __init__(self, model: torch.nn.Module):
        reason = unsupported_reason(model)
        rope = rope_fn(model)
        if reason is not None or rope is None:
            raise TypeError(f"cannot share prompts with this model: {reason}")
        self.model = model
        self.decoder, self.head_weight, self.head_bias = decoder_and_head(model)
        # Submodules are reached by name (HF's layout), so they are typed Any.
        self.layers: list[Any] = list(self.decoder.layers)[: base_model(model).config.num_hidden_layers]
        attn = self.layers[0].self_attn
        self.head_dim: int = attn.head_dim
        self.scaling = float(getattr(attn, "scaling", self.head_dim ** -0.5))
        self.rope: Callable[..., tuple[Tensor, Tensor]] = rope

    @property
    def checkpointing(self) -> bool:
        """Recompute each layer in backward when the model asked for gradient checkpointing."""
        flags = [getattr(self.decoder, "gradient_checkpointing", False)]
        flags += [getattr(layer, "gradient_checkpointing", False) for layer in self.layers]
        return any(flags) and self.model.training and torch.is_grad_enabled()

    def embed(self, ids: Tensor, pos: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Token embeddings [N, S, E] and rotary (cos, sin) [N, S, D] for positions pos [N, S]."""
        h = self.decoder.embed_tokens(ids)
        return h, self.decoder.rotary_emb(h, position_ids=pos)

    def qkv(self, layer: Any, x: Tensor, rope: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Projected, normed (Qwen3) and rotated q [N, H, S, D], k and v [N, K, S, D] of x [N, S, E]."""
        attn = layer.self_attn
        shape = (*x.shape[:-1], -1, self.head_dim)
        q, k = attn.q_proj(x).view(shape), attn.k_proj(x).view(shape)
        if hasattr(attn, "q_norm"):
            q, k = attn.q_norm(q), attn.k_norm(k)
        q, k = self.rope(q.transpose(1, 2), k.transpose(1, 2), *rope)
        return q, k, attn.v_proj(x).view(shape).transpose(1, 2)

    def logits(self, h: Tensor) -> Tensor:
        """Float32 next-token logits [N, V] of final hidden states h [N, E]."""
        return F.linear(h, self.head_weight, self.head_bias).float()

    def _run(self, fn: Callable[..., tuple[Tensor, ...]], *args: Any) -> tuple[Tensor, ...]:
        if self.checkpointing:
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def prompt_pass(self, ids: Tensor, valid: Tensor) -> tuple[Tensor, list[KV]]:
        """Prompts ids/valid [G, P] (padding on either side) -> final hidden [G, P, E], per-layer KV."""
        pos = (valid.long().cumsum(-1) - 1).clamp(min=0)                          # 0.. within each prompt
        idx = torch.arange(ids.shape[1], device=ids.device)
        allowed = (idx[None, :, None] >= idx[None, None, :]) & valid[:, None, :]   # [G, P, P]
        allowed |= torch.eye(ids.shape[1], dtype=torch.bool, device=ids.device)   # padding sees itself
        h, rope = self.embed(ids, pos)
        kvs: list[KV] = []
        for layer in self.layers:
            def block(h: Tensor, cos: Tensor, sin: Tensor, layer: Any = layer) -> tuple[Tensor, ...]:
                x = layer.input_layernorm(h)
                q, k, v = self.qkv(layer, x, (cos, sin))
                h = h + layer.self_attn.o_proj(causal_attention(q, k, v, allowed, self.scaling))
                return h + layer.mlp(layer.post_attention_layernorm(h)), k, v
            h, k, v = self._run(block, h, *rope)
            kvs.append((k, v))
        return self.decoder.norm(h), kvs

    def completion_pass(self, ids: Tensor, pos: Tensor, allowed: Tensor | None, prefix: list[KV],
                        prefix_valid: Tensor, past: list[KV] | None = None, step: int = 0) -> Tensor:
        """Completion tokens ids/pos [B, t] over their groups' prefixes -> final hidden [B, t, E].

        Training: ``past`` None, own keys are this chunk's, ``allowed`` [B, t, t]. Decoding: ``past``
        holds per-layer buffers [B, K, max_new, D]; this step's keys go to slot ``step`` and the
        queries see slots 0..step (``allowed`` None).
        """
        h, rope = self.embed(ids, pos)
        for i, layer in enumerate(self.layers):
            def block(h: Tensor, cos: Tensor, sin: Tensor, pk: Tensor, pv: Tensor,
                      layer: Any = layer, i: int = i) -> tuple[Tensor, ...]:
                x = layer.input_layernorm(h)
                q, k, v = self.qkv(layer, x, (cos, sin))
                if past is not None:
                    kb, vb = past[i]
                    kb[:, :, step:step + k.shape[2]], vb[:, :, step:step + k.shape[2]] = k, v
                    k, v = kb[:, :, :step + k.shape[2]], vb[:, :, :step + k.shape[2]]
                a = shared_attention(q, k, v, allowed, (pk, pv), prefix_valid, self.scaling)
                h = h + layer.self_attn.o_proj(a)
                return (h + layer.mlp(layer.post_attention_layernorm(h)),)
            (h,) = self._run(block, h, *rope, *prefix[i])
        return self.decoder.norm(h)


# ------------------------------------------------------------------------------------------------
# Rollouts: a decoder for generate_rollouts that shares each prompt's cache
# ------------------------------------------------------------------------------------------------

class SharedPrefixDecoder:
    """Prefill each prompt once; decode its n completions against the one prompt cache.

    Rows that finish stay in the batch (fed a dummy token) while others of their group still run,
    so every group keeps n rows and the stacked-query trick applies; a group whose rows have all
    finished leaves the batch.
    """

    def __init__(self, model: torch.nn.Module, max_new_tokens: int):
        self.net, self.max_new = LlamaLike(model), max_new_tokens

    @torch.no_grad()
    def prefill(self, prompts: list[list[int]], n: int) -> Tensor:
        net = self.net
        ids, valid = pad_tokens(prompts, net.head_weight.device, "left")      # [G, P]
        hidden, kvs = net.prompt_pass(ids, valid)
        # Contiguous, so each step's batched products read them in place instead of copying them; one
        # layer at a time, so that the cache is not held twice over.
        self.prefix = []
        for i, (k, v) in enumerate(kvs):
            kvs[i] = (k[:0], v[:0])
            self.prefix.append((k.contiguous(), v.contiguous()))
        self.prefix_valid, self.n = valid, n
        self.next_pos = valid.sum(-1).repeat_interleave(n)                  # [B]
        B = len(prompts) * n
        self.past = self._new_past(len(prompts), n)
        self.live = torch.arange(B, device=ids.device)                      # live row -> batch row
        self.step_idx = 0
        return net.logits(hidden[:, -1])

    def _new_past(self, groups: int, n: int) -> list[KV]:
        """Empty own-key/value buffers per layer, [B, K, max_new, D] (row-major by completion)."""
        k0 = self.prefix[0][0]
        shape = (groups * n, k0.shape[1], self.max_new, k0.shape[3])
        return [(k0.new_zeros(shape), k0.new_zeros(shape)) for _ in self.prefix]

    @torch.no_grad()
    def step(self, tokens: Tensor) -> Tensor:
        full = torch.zeros_like(self.next_pos)
        full[self.live] = tokens
        h = self.net.completion_pass(full[:, None], self.next_pos[:, None], None, self.prefix,
                                     self.prefix_valid, past=self.past, step=self.step_idx)
        self.step_idx += 1
        self.next_pos = self.next_pos + 1
        return self.net.logits(h[self.live, -1])

    def keep(self, rows: Tensor) -> None:
        self.live = self.live[rows]
        groups = torch.unique(self.live // self.n)                           # sorted
        if len(groups) * self.n == len(self.next_pos):
            return
        keep_rows = (groups[:, None] * self.n + torch.arange(self.n, device=groups.device)).reshape(-1)
        self.prefix = [(k[groups], v[groups]) for k, v in self.prefix]
        self.prefix_valid = self.prefix_valid[groups]
        self._keep_past(groups, keep_rows)
        self.next_pos = self.next_pos[keep_rows]
        remap = torch.full((int(keep_rows.max()) + 1,), -1, dtype=torch.long, device=groups.device)
        remap[keep_rows] = torch.arange(len(keep_rows), device=groups.device)
        self.live = remap[self.live]

    def _keep_past(self, groups: Tensor, rows: Tensor) -> None:
        self.past = [(k[rows], v[rows]) for k, v in self.past]


# ------------------------------------------------------------------------------------------------
# Rollouts without adapters: one decoding step in few, large operations
# ------------------------------------------------------------------------------------------------

def fused_decode_reason(model: torch.nn.Module) -> str | None:
    """None when ``FusedDecoder`` can decode for ``model``; otherwise why not (it then uses the modules)."""
    reason = unsupported_reason(model)
    if reason is not None:
        return reason
    if isinstance(getattr(model, "peft_config", None), dict):
        return "adapters (LoRA) wrap the projections; decoding goes through the modules"
    net = LlamaLike(model)
    act = getattr(base_model(model).config, "hidden_act", None)
    if act not in ("silu", "swish"):
        return f"activation {act!r} is not SiLU"
    norms = [net.decoder.norm] + [getattr(layer, n) for layer in net.layers
                                  for n in ("input_layernorm", "post_attention_layernorm")]
    if any(not _plain_rms_norm(m) for m in norms):
        return "a norm is not a plain RMSNorm (weight * x / rms(x))"
    for layer in net.layers:
        if not all(hasattr(layer.mlp, p) for p in ("gate_proj", "up_proj", "down_proj")):
            return f"{type(layer.mlp).__name__} is not a gated MLP (gate, up, down)"
    return None


def _plain_rms_norm(module: Any) -> bool:
    """Llama / Qwen style RMSNorm: float32 statistics, ``weight * x.to(dtype)``; not Gemma's ``1 + w``."""
    name = type(module).__name__
    return (name.endswith("RMSNorm") and "Gemma" not in name and isinstance(getattr(module, "weight", None), Tensor)
            and isinstance(getattr(module, "variance_epsilon", None), float))


def _rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """The model's RMSNorm in one fused kernel (float32 statistics, then the weight in the model's dtype)."""
    y = F.rms_norm(x.float(), (x.shape[-1],), eps=eps)
    return weight * y.to(x.dtype)


_PACKING: dict[torch.dtype, bool] = {}


def _packing_works(dtype: torch.dtype) -> bool:
    """Whether oneDNN's prepacked linear (a private PyTorch CPU op) exists here and computes a linear.

    Checked once per dtype on a small example; where it is missing or wrong, decoding uses ``F.linear``.
    """
    if dtype not in _PACKING:
        ok = False
        mk: Any = getattr(torch.ops, "mkldnn", None)
        if torch.backends.mkldnn.is_available() and hasattr(mk, "_reorder_linear_weight"):
            try:
                g = torch.Generator().manual_seed(0)
                w, x, h = (torch.randn(s, generator=g).to(dtype) for s in ((24, 40), (5, 40), (5, 24)))
                packed = mk._reorder_linear_weight(w, 5)
                tol = 5e-2 if dtype == torch.bfloat16 else 1e-4
                ok = (torch.allclose(mk._linear_pointwise(x, packed, None, "none", [], ""), F.linear(x, w),
                                     rtol=tol, atol=tol)
                      and torch.allclose(mk._linear_pointwise.binary(x, h, packed, None, "add"),
                                         torch.addmm(h, x, w.t()), rtol=tol, atol=tol))
            except (RuntimeError, TypeError, AttributeError):
                ok = False
        _PACKING[dtype] = ok
    return _PACKING[dtype]


class _Projection:
    """A projection's weight for one-token steps: on CPU in oneDNN's blocked layout when possible.

    ``F.linear`` lets oneDNN re-lay the weight out on every call; the packed copy is made once per
    rollout call and read as is, which made a decoding step's products about a quarter faster on a
    2-core Xeon in bf16. ``residual`` adds ``h`` in the same kernel.
    """

    def __init__(self, weight: Tensor, bias: Tensor | None, rows: int):
        self.weight: Tensor | None = weight
        self.bias, self.packed = bias, None
        if weight.device.type == "cpu" and weight.dtype in (torch.bfloat16, torch.float32) \
                and _packing_works(weight.dtype):
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, rows)
            self.weight = None   # the packed copy is all that is read: keeping both held 0.4 GB more

    def __call__(self, x: Tensor) -> Tensor:
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
        assert self.weight is not None
        return F.linear(x, self.weight, self.bias)

    def residual(self, h: Tensor, x: Tensor) -> Tensor:
        """``h + x @ weight.T (+ bias)``."""
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise.binary(x, h, self.packed, self.bias, "add")
        assert self.weight is not None
        if self.bias is None:
            return torch.addmm(h, x, self.weight.t())
        return h + F.linear(x, self.weight, self.bias)


def _concat_bias(projections: list[Any]) -> Tensor | None:
    """The biases of projections stacked by output (zeros where one has none); None when none has one."""
    if all(p.bias is None for p in projections):
        return None
    return torch.cat([p.bias if p.bias is not None else p.weight.new_zeros(p.weight.shape[0]) for p in projections])


class _LayerWeights:
    """One layer's weights arranged for decoding: q/k/v in one matrix, gate and up in another."""

    def __init__(self, layer: Any, rows: int):
        attn, mlp = layer.self_attn, layer.mlp
        qkv = [attn.q_proj, attn.k_proj, attn.v_proj]
        self.qkv = _Projection(torch.cat([p.weight for p in qkv]), _concat_bias(qkv), rows)
        self.o = _Projection(attn.o_proj.weight, attn.o_proj.bias, rows)
        gate_up = [mlp.gate_proj, mlp.up_proj]
        self.gate_up = _Projection(torch.cat([p.weight for p in gate_up]), _concat_bias(gate_up), rows)
        self.down = _Projection(mlp.down_proj.weight, mlp.down_proj.bias, rows)
        self.ln1 = (layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon)
        self.ln2 = (layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon)
        self.q_norm: Any = getattr(attn, "q_norm", None)
        self.k_norm: Any = getattr(attn, "k_norm", None)


class FusedDecoder(SharedPrefixDecoder):
    """``SharedPrefixDecoder`` for models without adapters: a decoding step in about 20 operations a layer.

    On a CPU a decoding step is hundreds of small operations, and their fixed costs, not the
    arithmetic, were most of it (profiled on SmolLM2-135M with 32 rows: less than half of a step was
    matrix products). This decoder does the same computation with fewer, larger operations:

    - q, k and v come from one matrix product, gate and up from another (the weights are
      concatenated once per rollout call, so they follow training);
    - the rotary embedding turns q and k together, with the attention scale folded into q's angles;
    - the completions' own keys and values live in [G, K, n, M, D] buffers, so that the scores over
      the prefix and over the own keys come out in one layout, are joined by one ``cat`` and
      normalised by one softmax, and the two products with the values need no copies;
    - the output projection and the down projection add the residual in the same kernel;
    - on CPU the weights are packed once per call in oneDNN's blocked layout (``_Projection``);
    - RMSNorm is PyTorch's fused kernel (float32 statistics, as the model's own).

    Results equal ``SharedPrefixDecoder``'s up to float rounding (tests compare greedy tokens with
    ``generate``). LoRA-wrapped and other models use the modules (``fused_decode_reason``).
    """

    @torch.no_grad()
    def prefill(self, prompts: list[list[int]], n: int) -> Tensor:
        logits = super().prefill(prompts, n)
        net = self.net
        self.weights = [_LayerWeights(layer, len(prompts) * n) for layer in net.layers]
        cfg = base_model(net.model).config
        self.heads = int(cfg.num_attention_heads)
        self.kv_heads = int(getattr(cfg, "num_key_value_heads", None) or self.heads)
        G, k0 = len(prompts), self.prefix[0][0]
        low = torch.finfo(k0.dtype).min
        self.prefix_bias = (None if bool(self.prefix_valid.all()) else
                            torch.zeros(self.prefix_valid.shape, dtype=k0.dtype, device=k0.device)
                            .masked_fill(~self.prefix_valid, low).view(G, 1, 1, 1, -1))
        return logits

    def _new_past(self, groups: int, n: int) -> list[KV]:
        """Own-key/value buffers per layer in [G, K, n, max_new, D]: scores over them come out in the
        layout of the scores over the prefix."""
        k0 = self.prefix[0][0]
        shape = (groups, k0.shape[1], n, self.max_new, k0.shape[3])
        return [(k0.new_zeros(shape), k0.new_zeros(shape)) for _ in self.prefix]

    def _keep_past(self, groups: Tensor, rows: Tensor) -> None:
        self.past = [(k[groups], v[groups]) for k, v in self.past]
        if self.prefix_bias is not None:
            self.prefix_bias = self.prefix_bias[groups]

    @torch.no_grad()
    def step(self, tokens: Tensor) -> Tensor:
        net = self.net
        full = torch.zeros_like(self.next_pos)
        full[self.live] = tokens
        h, (cos, sin) = net.embed(full[:, None], self.next_pos[:, None])     # [B, 1, E], [B, 1, D]
        B, D, H, K = h.shape[0], self.net.head_dim, self.heads, self.kv_heads
        G, n, r, s = B // self.n, self.n, H // K, self.step_idx
        S = s + 1
        h = h.view(B, -1)
        # rotate_half(x) = roll(x, D/2) * [-1.. +1..]; q's angles carry the attention scale.
        sign = torch.cat([-cos.new_ones(D // 2), cos.new_ones(D - D // 2)])
        sin = sin * sign
        cos_qk = torch.cat([(cos * net.scaling).expand(B, H, D), cos.expand(B, K, D)], dim=1)
        sin_qk = torch.cat([(sin * net.scaling).expand(B, H, D), sin.expand(B, K, D)], dim=1)
        out = h.new_empty(G, n, K, r, D)
        for w, (pk, pv), (kb, vb) in zip(self.weights, self.prefix, self.past, strict=True):
            qkv = w.qkv(_rms_norm(h, *w.ln1)).view(B, H + 2 * K, D)
            qk, v = qkv[:, :H + K], qkv[:, H + K:]
            if w.q_norm is not None:
                qk = torch.cat([w.q_norm(qk[:, :H]), w.k_norm(qk[:, H:])], dim=1)
            qk = torch.addcmul(qk * cos_qk, qk.roll(D // 2, dims=-1), sin_qk)          # [B, H+K, D]
            kb[:, :, :, s] = qk[:, H:].view(G, n, K, D).transpose(1, 2)
            vb[:, :, :, s] = v.view(G, n, K, D).transpose(1, 2)
            q = qk[:, :H].view(G, n, K, r, D).transpose(1, 2).contiguous()            # [G, K, n, r, D]
            P = pk.shape[2]
            s_pre = torch.matmul(q.view(G, K, n * r, D), pk.transpose(-1, -2)).view(G, K, n, r, P)
            s_own = torch.matmul(q, kb[:, :, :, :S].transpose(-1, -2))               # [G, K, n, r, S]
            scores = torch.cat([s_pre, s_own], dim=-1)
            if self.prefix_bias is not None:
                scores[..., :P] += self.prefix_bias
            probs = torch.softmax(scores, dim=-1, dtype=_softmax_dtype(scores.dtype)).to(scores.dtype)
            o_pre = torch.matmul(probs[..., :P].reshape(G, K, n * r, P), pv).view(G, K, n, r, D)
            o_own = torch.matmul(probs[..., P:], vb[:, :, :, :S])                    # [G, K, n, r, D]
            torch.add(o_pre.transpose(1, 2), o_own.transpose(1, 2), out=out)         # [G, n, K, r, D]
            h = w.o.residual(h, out.view(B, H * D))
            gate_up = w.gate_up(_rms_norm(h, *w.ln2))
            inner = gate_up.shape[-1] // 2
            h = w.down.residual(h, F.silu(gate_up[:, :inner]) * gate_up[:, inner:])
        self.step_idx += 1
        self.next_pos = self.next_pos + 1
        return net.logits(net.decoder.norm(h[self.live]))
