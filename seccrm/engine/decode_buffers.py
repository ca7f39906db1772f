"""The fast rollout engine's preallocated decoding state and the bucket sizes it is allocated at.

``seccrm.engine.fast_decode.FastRollouts`` decodes into buffers made once per capacity (groups,
completions per group, prompt length, own length) and reused across waves and calls, because a
captured CUDA graph reads and writes the exact tensors it was recorded with. ``DecodeBuffers`` holds
them (the prompts' keys and values, the completions' own keys and values, the fed tokens, their
positions, the step and the last logits), says whether a wave fits (``fits``), and moves the live
groups to the front when finished groups leave (``compact``), so that a smaller graph can run.
``bucket_length`` and ``pow2_at_least`` round sizes up so that few distinct graphs are captured.

Shapes: Gc groups and Pc prompt positions of capacity, n completions per group, Mc own-key slots,
L layers, K KV heads, D head dim, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


def bucket_length(length: int, minimum: int = 16) -> int:
    """``length`` rounded up to a multiple of 1/8 of its power of two (at most 12.5% more), >= ``minimum``.

    Few distinct prompt lengths mean few CUDA graphs; the rounding wastes at most 1/8 of the prefix
    attention. Example: 100 -> 104, 513 -> 576, 4000 -> 4096.
    """
    length = max(length, minimum)
    step = max(1, 2 ** (math.floor(math.log2(length)) - 3))
    return -(-length // step) * step


def pow2_at_least(x: int) -> int:
    """The smallest power of two >= ``x`` (1 for x <= 1)."""
    return 1 << max(0, (x - 1).bit_length())


@dataclass
class DecodeBuffers:
    """Decoding state preallocated once per capacity; graphs read and write these exact tensors."""

    groups: int
    n: int
    prompt: int
    own: int
    prefix_k: list[Tensor]     # L x [Gc, K, Pc, D]
    prefix_v: list[Tensor]
    prefix_valid: Tensor       # [Gc, Pc] bool, True on real prompt tokens
    own_k: list[Tensor]        # L x [Gc * n, K, Mc, D]
    own_v: list[Tensor]
    tokens: Tensor             # [Gc * n] long, the token each row is fed this step
    pos: Tensor                # [Gc * n] long, its position
    step: Tensor               # [] long, the own-key slot written this step
    logits: Tensor             # [Gc * n, V] float32, next-token logits of the last step

    @classmethod
    def allocate(cls, groups: int, n: int, prompt: int, own: int, layers: int, kv_heads: int, head_dim: int,
                 vocab: int, dtype: torch.dtype, device: torch.device) -> DecodeBuffers:
        """Buffers for ``groups`` groups of ``n`` rows, ``prompt`` prefix and ``own`` own-key slots."""
        L, K, D = layers, kv_heads, head_dim

        def zeros(*shape: int) -> Tensor:
            # Zeros, not empty: masked slots are multiplied by probability 0, and 0 * NaN is NaN.
            return torch.zeros(shape, dtype=dtype, device=device)

        return cls(
            groups, n, prompt, own,
            [zeros(groups, K, prompt, D) for _ in range(L)], [zeros(groups, K, prompt, D) for _ in range(L)],
            torch.zeros(groups, prompt, dtype=torch.bool, device=device),
            [zeros(groups * n, K, own, D) for _ in range(L)], [zeros(groups * n, K, own, D) for _ in range(L)],
            torch.zeros(groups * n, dtype=torch.long, device=device),
            torch.zeros(groups * n, dtype=torch.long, device=device),
            torch.zeros((), dtype=torch.long, device=device),
            torch.zeros(groups * n, vocab, dtype=torch.float32, device=device))

    def fits(self, groups: int, n: int, prompt: int, own: int) -> bool:
        return self.n == n and self.groups >= groups and self.prompt >= prompt and self.own >= own

    def compact(self, keep: np.ndarray, own_used: int, prompt: int) -> None:
        """Move live groups ``keep`` (slot indices, ascending) to slots 0..len(keep)-1, in order."""
        device = self.prefix_valid.device
        g = len(keep)
        keep_t = torch.as_tensor(keep, device=device)
        rows_t = (keep_t[:, None] * self.n + torch.arange(self.n, device=device)).reshape(-1)
        for i in range(len(self.prefix_k)):
            for buf in (self.prefix_k[i], self.prefix_v[i]):
                buf[:g, :, :prompt] = buf[keep_t, :, :prompt]      # the gather copies before writing
            for buf in (self.own_k[i], self.own_v[i]):
                buf[:g * self.n, :, :own_used] = buf[rows_t, :, :own_used]
        self.prefix_valid[:g] = self.prefix_valid[keep_t]
        self.pos[:g * self.n] = self.pos[rows_t]
