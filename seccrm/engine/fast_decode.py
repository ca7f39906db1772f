"""Fast rollouts on one GPU for the Llama / Qwen2 family: static KV buffers and CUDA graphs.

``FastRollouts(model, tokenizer).generate(...)`` takes ``seccrm.engine.rollout.generate_rollouts``'
arguments and returns the same ``RolloutBatch``; keep the engine between calls so that its buffers
and captured graphs are reused. A call runs in waves of at most ``max_rows`` completions:

1. Batched prefill: the wave's prompts, right-padded, in chunks of about ``prefill_tokens`` tokens.
   Right padding makes plain causal attention correct for every real token, so it runs through
   ``scaled_dot_product_attention(is_causal=True)`` (a flash kernel on GPU, no mask tensor). Each
   layer's keys and values go once per prompt into a preallocated prefix buffer [G, K, P, D].
2. Decoding: the n completions of a group attend to their group's prefix (read once per group, not
   copied n times: ``seccrm.engine.shared_prefix.shared_attention``) and to their own keys and values,
   which live in a preallocated buffer [B, K, M, D] written in place at the step's slot
   (``index_copy_`` with a device index: no ``cat`` and no reallocation per step).
3. Sampling and stopping are ``seccrm.engine.decoding.decode``'s, as for every other path: the engine
   is the loop's ``Decoder`` for one wave (``prefill``, ``step``, ``keep``). Tokens are sampled on the
   model's device; only the sampled ids cross to the host, where the stop checks run.
4. CUDA graphs (model on CUDA): one decode step of a bucket (live groups, prompt length, own length)
   is captured once and replayed. Group buckets are the wave's group count and the powers of two
   below it; own-length buckets are powers of two up to ``max_new_tokens``; prompt lengths are
   rounded up by at most 1/8 (``bucket_length``). When the live groups fit a smaller bucket they are
   moved to the front of the buffers, in order, and the smaller graph runs. Without graphs (CPU) the
   exact live groups and own length are used each step, as ``SharedPrefixDecoder`` does. The buffers
   and the bucket sizes are in ``seccrm.engine.decode_buffers``.

The results equal the other paths': greedy tokens are ``model.generate``'s; sampling draws from the
same distribution, and without graphs (one wave) the same seed gives ``generate_rollouts``' tokens
(both sample the live rows in the same order from the same generator). Models outside the family
(``capability.unsupported_reason``) are refused with the reason; the trainer then uses
``generate_rollouts``.

Shapes: G groups (prompts) in a wave, n completions per group, B = G * n rows, P prompt bucket,
M own-key capacity (``max_new_tokens - 1``: the last sampled token is never fed back), S own-length
bucket, L layers, K KV heads, H query heads, D head dim, V vocabulary.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from seccrm.engine.anatomy import base_model
from seccrm.engine.capability import unsupported_reason
from seccrm.engine.decode_buffers import DecodeBuffers, bucket_length, pow2_at_least
from seccrm.engine.rollout import RolloutBatch, check_request, generate_rollouts
from seccrm.engine.shared_prefix import LlamaLike, shared_attention
from seccrm.engine.tokens import pad_tokens
from seccrm.logs import warn_once

logger = logging.getLogger(__name__)


class FastRollouts:
    """The fast rollout engine for one model; keep it between calls to reuse buffers and graphs.

    Args:
        model: a Llama / Qwen2 / Qwen3 / Mistral (no sliding window) causal LM, possibly LoRA-wrapped.
        tokenizer: its tokenizer (EOS, ``</answer>`` detection, decoding the texts).
        cuda_graphs: capture decode steps in CUDA graphs; None = when the model is on CUDA.
        max_rows: completions decoded at once; more are split into waves of whole groups.
            None = all of them on CPU, and on CUDA as many as fit ``memory_fraction`` of free memory.
        prefill_tokens: prompt tokens per prefill chunk (bounds the prefill's activations).
        sample_rows: rows per sampling call (bounds the sampler's [rows, V] temporaries).
        memory_fraction: share of free GPU memory the automatic ``max_rows`` may plan for.
        buckets: run the decode step at bucket sizes (what graphs need); None = when graphs are on.
            On CPU this runs the graphs' code path without capturing (tests use it).
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Any, cuda_graphs: bool | None = None,
                 max_rows: int | None = None, prefill_tokens: int = 16384,
                 sample_rows: int = 512, memory_fraction: float = 0.5, buckets: bool | None = None):
        reason = unsupported_reason(model)
        if reason is not None:
            raise TypeError(f"the fast rollout path does not support this model: {reason}")
        self.model, self.tokenizer, self.net = model, tokenizer, LlamaLike(model)
        self.device = self.net.head_weight.device
        self.graphs = self.device.type == "cuda" if cuda_graphs is None else cuda_graphs
        if self.graphs and self.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a model on CUDA; this one is on {self.device}")
        rope_type = str(getattr(self.net.decoder.rotary_emb, "rope_type", "default"))
        if self.graphs and ("dynamic" in rope_type or rope_type == "longrope"):
            # These rotary variants read the largest position on the host at every call.
            if cuda_graphs:
                raise ValueError(f"CUDA graphs cannot capture {rope_type!r} rotary embeddings")
            warn_once(logger, f"fast rollouts without CUDA graphs: {rope_type!r} rotary embeddings sync with the host")
            self.graphs = False
        self.bucketed = self.graphs if buckets is None else buckets
        if self.graphs and not self.bucketed:
            raise ValueError("CUDA graphs need fixed shapes: buckets cannot be off with graphs on")
        self.max_rows, self.prefill_tokens, self.sample_rows = max_rows, prefill_tokens, sample_rows
        self.memory_fraction = memory_fraction
        self._step_fn = self._step_impl
        self._buf: DecodeBuffers | None = None
        self._graphs: dict[tuple[int, int, int], torch.cuda.CUDAGraph] = {}
        self._pool: Any = None
        self._weights_key: tuple[int, ...] = ()
        # Counters over the engine's life (tests and the benchmark check what really ran).
        self.stats = {"steps": 0, "graph_replays": 0, "graphs_captured": 0, "compactions": 0, "waves": 0}

    # --------------------------------------------------------------------------------------------
    # Buffers
    # --------------------------------------------------------------------------------------------

    def kv_bytes_per_group(self, n: int, prompt: int, own: int) -> int:
        """Bytes one group needs: prefix and own keys/values, plus logits and sampling temporaries."""
        w = self.net.head_weight
        per_token = 2 * len(self.net.layers) * self._kv_heads() * self.net.head_dim * w.element_size()
        return per_token * (prompt + n * own) + n * int(w.shape[0]) * 4

    def _kv_heads(self) -> int:
        config = base_model(self.model).config
        return int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)

    def _allocate(self, groups: int, n: int, prompt: int, own: int) -> None:
        """(Re)allocate the buffers when they do not fit; graphs captured on old buffers are dropped."""
        if self._buf is not None and self._buf.fits(groups, n, prompt, own):
            return
        old = self._buf
        if old is not None and old.n == n:     # grow monotonically, so alternating sizes do not thrash
            groups, prompt, own = max(groups, old.groups), max(prompt, old.prompt), max(own, old.own)
        self.release()
        w = self.net.head_weight
        self._buf = DecodeBuffers.allocate(groups, n, prompt, own, len(self.net.layers), self._kv_heads(),
                                           self.net.head_dim, int(w.shape[0]), w.dtype, self.device)
        self._arange = torch.arange(own, device=self.device)

    def release(self) -> None:
        """Free the buffers and graphs (e.g. before the policy update needs the memory)."""
        self._graphs.clear()
        self._pool, self._buf = None, None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _check_weights(self) -> None:
        """Start afresh when a parameter tensor was replaced (moved, cast): graphs hold raw addresses.

        Optimizer steps and ``load_state_dict`` write in place, so graphs survive training steps.
        """
        key = tuple(p.data_ptr() for p in self.model.parameters())
        if key != self._weights_key:
            if self._weights_key:
                self.release()
                self.net = LlamaLike(self.model)
            self._weights_key = key

    # --------------------------------------------------------------------------------------------
    # The model: prefill and one decode step
    # --------------------------------------------------------------------------------------------

    def _prefill(self, prompts: list[list[int]], prompt_bucket: int) -> Tensor:
        """Run prompts into the prefix buffers (rows 0..G-1); returns next-token logits [G, V]."""
        net, b = self.net, self._buf
        assert b is not None
        lengths = torch.tensor([len(p) for p in prompts], device=self.device)
        cols = torch.arange(prompt_bucket, device=self.device)
        b.prefix_valid[:len(prompts), :prompt_bucket] = cols[None, :] < lengths[:, None]
        per_chunk = max(1, self.prefill_tokens // max(len(p) for p in prompts))
        out = []
        for g0 in range(0, len(prompts), per_chunk):
            ids, valid = pad_tokens(prompts[g0:g0 + per_chunk], self.device, "right")   # [g, W]
            g, width = ids.shape
            h, rope = net.embed(ids, torch.arange(width, device=self.device).expand(g, width))
            for i, layer in enumerate(net.layers):
                q, k, v = net.qkv(layer, layer.input_layernorm(h), rope)              # [g, H|K, W, D]
                b.prefix_k[i][g0:g0 + g, :, :width] = k
                b.prefix_v[i][g0:g0 + g, :, :width] = v
                h = h + layer.self_attn.o_proj(_causal_sdpa(q, k, v, net.scaling))
                h = h + layer.mlp(layer.post_attention_layernorm(h))
            last = h[torch.arange(g, device=self.device), valid.sum(-1) - 1]         # [g, E]
            out.append(net.logits(net.decoder.norm(last)))
        return torch.cat(out)

    def _step_impl(self, groups: int, prompt: int, own: int, masked: bool) -> None:
        """One decode step of rows 0..groups*n-1: feed ``tokens`` at ``pos``; writes ``logits``.

        The step's keys go to own slot ``step``; queries see own slots 0..``step`` (``masked``: the
        bucket of ``own`` slots is wider, later slots are hidden) and the valid prefix. Advances
        ``pos`` and ``step`` on the device, so that a replayed graph needs no host input.
        """
        net, b = self.net, self._buf
        assert b is not None
        rows = groups * b.n
        h, rope = net.embed(b.tokens[:rows, None], b.pos[:rows, None])                # [B, 1, E]
        allowed = (self._arange[:own] <= b.step).expand(rows, 1, own) if masked else None
        slot = b.step.view(1)
        valid = b.prefix_valid[:groups, :prompt]
        for i, layer in enumerate(net.layers):
            q, k, v = net.qkv(layer, layer.input_layernorm(h), rope)                  # [B, H|K, 1, D]
            own_k, own_v = b.own_k[i][:rows], b.own_v[i][:rows]
            own_k.index_copy_(2, slot, k)
            own_v.index_copy_(2, slot, v)
            prefix = (b.prefix_k[i][:groups, :, :prompt], b.prefix_v[i][:groups, :, :prompt])
            a = shared_attention(q, own_k[:, :, :own], own_v[:, :, :own], allowed, prefix, valid, net.scaling)
            h = h + layer.self_attn.o_proj(a)
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        b.logits[:rows].copy_(net.logits(net.decoder.norm(h[:, -1])))
        b.pos[:rows] += 1
        b.step += 1

    def _run_step(self, groups: int, prompt: int, step: int) -> None:
        """The decode step: exact sizes, or a bucket's sizes (replaying its captured graph when on)."""
        self.stats["steps"] += 1
        if not self.bucketed:
            self._step_fn(groups, prompt, step + 1, False)
            return
        assert self._buf is not None
        key = (groups, prompt, min(self._buf.own, max(16, pow2_at_least(step + 1))))
        if not self.graphs:
            self._step_fn(*key, True)
            return
        graph = self._graphs.get(key)
        if graph is not None:
            graph.replay()
            self.stats["graph_replays"] += 1
            return
        self._warm_up(key)                       # performs this step
        try:
            self._graphs[key] = self._capture(key)
        except RuntimeError as e:                # e.g. a module that syncs with the host: go on eagerly
            warn_once(logger, f"CUDA graph capture failed, decoding without graphs: {e}")
            self.graphs = False

    def _warm_up(self, key: tuple[int, int, int]) -> None:
        """Run the step twice on a side stream (cuBLAS and compile set up), leaving one step done."""
        b = self._buf
        assert b is not None
        rows = key[0] * b.n
        pos, step = b.pos[:rows].clone(), b.step.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for again in (False, True):
                if again:
                    b.pos[:rows], b.step[...] = pos, step
                self._step_fn(*key, True)
        torch.cuda.current_stream().wait_stream(side)

    def _capture(self, key: tuple[int, int, int]) -> torch.cuda.CUDAGraph:
        """Record the step for replays. Recording runs no kernels: the state stays as it was.

        All graphs share one memory pool: they run one at a time and keep their results in the buffers.
        """
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            self._step_fn(*key, True)
        self._pool = graph.pool() if self._pool is None else self._pool
        self.stats["graphs_captured"] += 1
        return graph

    # --------------------------------------------------------------------------------------------
    # Rollouts
    # --------------------------------------------------------------------------------------------

    def _wave_groups(self, groups: int, n: int, prompt: int, own: int) -> int:
        if self.max_rows is not None:
            return max(1, min(groups, self.max_rows // n))
        if self.device.type != "cuda":
            return groups
        free, _ = torch.cuda.mem_get_info(self.device)
        held = 0 if self._buf is None else self.kv_bytes_per_group(self._buf.n, self._buf.prompt,
                                                                  self._buf.own) * self._buf.groups
        budget = (free + held) * self.memory_fraction
        return max(1, min(groups, int(budget // self.kv_bytes_per_group(n, prompt, own))))

    def generate(self, prompts: list[list[int]], n: int, max_new_tokens: int, temperature: float = 0.7,
                 top_p: float = 0.9, seed: int = 0, stop_after_answer: bool = True,
                 greedy: bool = False) -> RolloutBatch:
        """``n`` completions per prompt, group-major: ``generate_rollouts`` with this engine as the decoder."""
        check_request(prompts, n, max_new_tokens)
        self._check_weights()
        self._shape = (bucket_length(max(len(p) for p in prompts)), max(1, max_new_tokens - 1))
        per_wave = self._wave_groups(len(prompts), n, *self._shape)
        per_wave = -(-len(prompts) // -(-len(prompts) // per_wave))     # balanced: 256 -> 128 + 128
        return generate_rollouts(self.model, self.tokenizer, prompts, n, max_new_tokens, temperature, top_p, seed,
                                 stop_after_answer, greedy, decoder=self, groups_per_call=per_wave,
                                 sample_rows=self.sample_rows)

    # --------------------------------------------------------------------------------------------
    # One wave as the decoding loop's Decoder: slots 0..groups*n-1 of the buffers are computed,
    # ``_alive`` marks the slots whose rows still decode (live rows are the alive slots, in order)
    # --------------------------------------------------------------------------------------------

    def prefill(self, prompts: list[list[int]], n: int) -> Tensor:
        """Start a wave of whole groups at ``self._shape`` (prompt bucket, own slots); logits [G, V]."""
        G, (prompt_bucket, own) = len(prompts), self._shape
        self._allocate(G, n, prompt_bucket, own)
        b = self._buf
        assert b is not None
        self.stats["waves"] += 1
        logits = self._prefill(prompts, prompt_bucket)
        b.pos[:G * n] = torch.tensor([len(p) for p in prompts], device=self.device).repeat_interleave(n)
        b.step.zero_()
        self._prompt = prompt_bucket if self.bucketed else max(len(p) for p in prompts)
        self._groups, self._alive, self._t = G, np.ones(G * n, dtype=bool), 0
        return logits

    def keep(self, rows: Tensor) -> None:
        idx = np.flatnonzero(self._alive)
        self._alive[:] = False
        self._alive[idx[rows.cpu().numpy()]] = True

    def step(self, tokens: Tensor) -> Tensor:
        """Feed the live rows' tokens (finished rows of live groups a dummy 0); live rows' logits [A, V]."""
        b, groups = self._buf, self._groups
        assert b is not None
        n = b.n
        fed = np.zeros(groups * n, dtype=np.int64)
        fed[self._alive] = tokens.cpu().numpy()
        live_groups = np.flatnonzero(self._alive.reshape(groups, n).any(axis=1))
        target = min(groups, pow2_at_least(len(live_groups))) if self.bucketed else len(live_groups)
        if target < groups:                                      # move the live groups to the front
            b.compact(live_groups, self._t + 1, self._prompt)
            self.stats["compactions"] += 1
            kept = (live_groups[:, None] * n + np.arange(n)).reshape(-1)     # to slots 0..len(kept)-1
            alive, fed, self._alive = self._alive[kept], fed[kept], np.zeros(target * n, dtype=bool)
            self._alive[:len(kept)], fed = alive, np.pad(fed, (0, target * n - len(kept)))
            self._groups = groups = target
        b.tokens[:groups * n] = torch.as_tensor(fed, device=self.device)
        self._run_step(groups, self._prompt, self._t)
        self._t += 1
        alive = np.flatnonzero(self._alive)
        logits = b.logits[:groups * n]
        return logits if len(alive) == groups * n else logits[torch.as_tensor(alive, device=self.device)]


def _causal_sdpa(q: Tensor, k: Tensor, v: Tensor, scaling: float) -> Tensor:
    """Causal attention of right-padded rows: q [N, H, S, D], k/v [N, K, S, D] -> [N, S, H*D].

    Grouped-query attention without copying the KV heads (``enable_gqa``, as ``shared_prefix`` uses).
    """
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scaling,
                                         enable_gqa=q.shape[1] != k.shape[1])              # [N, H, S, D]
    return out.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)
