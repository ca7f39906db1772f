"""Whether a model can be taken apart layer by layer: the probe behind prompt sharing and fast decoding.

``seccrm.engine.shared_prefix.LlamaLike`` runs a decoder through its own modules (projections, norms,
MLP, rotary embedding) with attention replaced, which works only for the Llama family laid out as
Hugging Face writes it: model types ``llama``, ``qwen2``, ``qwen3`` (with its q/k norms) and
``mistral`` without a sliding window, bare or with LoRA adapters. ``unsupported_reason`` returns None
for such a model and otherwise a sentence saying why not, which callers (the training forward, the
rollout decoders, the fast engine, the trainer) log before falling back to the model's own forward.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch
from torch import Tensor

from seccrm.engine.anatomy import base_model, decoder_and_head

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "qwen3", "mistral")
_LAYER_PARTS = ("self_attn", "input_layernorm", "post_attention_layernorm", "mlp")
_ATTN_PARTS = ("q_proj", "k_proj", "v_proj", "o_proj")


def unsupported_reason(model: torch.nn.Module) -> str | None:
    """None when ``model`` can share prompts; otherwise a sentence saying why not."""
    peft_config = getattr(model, "peft_config", None)
    if isinstance(peft_config, dict):
        kinds = {str(getattr(c, "peft_type", "")).split(".")[-1] for c in peft_config.values()}
        if kinds - {"LORA"}:
            return f"peft adapters of type {sorted(kinds)} change attention inputs; only LoRA is supported"
    base = base_model(model)
    config = getattr(base, "config", None)
    mtype = getattr(config, "model_type", None)
    if mtype not in SUPPORTED_MODEL_TYPES:
        return f"model type {mtype!r} is not one of {', '.join(SUPPORTED_MODEL_TYPES)}"
    try:
        decoder, _, _ = decoder_and_head(model)
    except (TypeError, AttributeError) as e:
        return str(e)
    for part in ("embed_tokens", "layers", "norm", "rotary_emb"):
        if not hasattr(decoder, part):
            return f"{type(decoder).__name__} has no {part}"
    for layer in decoder.layers:
        missing = [p for p in _LAYER_PARTS if not hasattr(layer, p)]
        missing += [p for p in _ATTN_PARTS if not hasattr(getattr(layer, "self_attn", None), p)]
        if missing:
            return f"{type(layer).__name__} lacks {', '.join(missing)}"
        if getattr(layer.self_attn, "sliding_window", None):
            return "sliding-window attention layers are not supported"
    # Mistral reads the window from the config; Qwen2 / Qwen3 set it to None unless it is used.
    if getattr(config, "sliding_window", None) or "sliding_attention" in (getattr(config, "layer_types", None) or ()):
        return f"sliding-window attention (window {getattr(config, 'sliding_window', None)}) is not supported"
    if getattr(config, "attention_dropout", 0.0) and model.training:
        return "attention dropout is on in training mode"
    if rope_fn(model) is None:
        return f"{type(decoder.layers[0].self_attn).__module__} has no apply_rotary_pos_emb"
    return None


def rope_fn(model: torch.nn.Module) -> Callable[..., tuple[Tensor, Tensor]] | None:
    """The model's own rotary application, from the module that defines its attention class."""
    decoder, _, _ = decoder_and_head(model)
    attn = decoder.layers[0].self_attn
    return getattr(sys.modules.get(type(attn).__module__), "apply_rotary_pos_emb", None)
