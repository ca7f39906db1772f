"""Which parts a decoder-only causal LM has: the base model under a peft wrapper, its decoder stack
and its LM head. Everything that reaches inside a model (log-probs, shared-prefix and fused decoding)
asks here."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def base_model(model: torch.nn.Module) -> Any:
    """The ``*ForCausalLM`` module under a peft wrapper (or the model itself)."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def decoder_and_head(model: torch.nn.Module) -> tuple[Any, Tensor, Tensor | None]:
    """``(decoder, lm_head weight [V, H], lm_head bias [V] or None)`` of a causal LM."""
    base = base_model(model)
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else base.model
    head = base.get_output_embeddings()
    weight = getattr(head, "weight", None)
    if weight is None:
        raise TypeError(f"{type(base).__name__} has no plain LM head weight; cannot compute chunked log-probs")
    return decoder, weight, getattr(head, "bias", None)
