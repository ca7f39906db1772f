"""Token lists to padded tensors: the one padder every part of the engine uses."""

from __future__ import annotations

import torch
from torch import Tensor


def pad_tokens(seqs: list[list[int]], device: torch.device | str, side: str = "right",
               pad_id: int = 0) -> tuple[Tensor, Tensor]:
    """Token lists padded on ``side`` ("left" or "right"): ids [N, L] (``pad_id`` in the gaps) and a
    bool mask [N, L] that is True on real tokens. L is the longest list (0 when all are empty)."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    width = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.bool)
    for i, s in enumerate(seqs):
        if not s:
            continue
        cols = slice(width - len(s), width) if side == "left" else slice(0, len(s))
        ids[i, cols] = torch.tensor(s, dtype=torch.long)
        mask[i, cols] = True
    return ids.to(device), mask.to(device)
