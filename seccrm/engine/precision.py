"""Numeric precision: float32 master weights with bf16 compute, pure bf16, or float32.

The ``--bf16`` setting resolves to one of three modes:

- ``fp32`` (``off``): float32 weights, gradients, optimizer state and compute.
- ``mixed`` (``on``): float32 weights, gradients and AdamW state; forward and backward run under
  bf16 autocast; rollouts and evaluation decode from a bf16 copy of the weights that is refreshed
  after every optimizer step. This is what large-scale RL trainers do (an FSDP float32 master and a
  bf16 inference engine), and what ``auto`` picks wherever bf16 matrix units exist.
- ``pure``: bf16 weights and optimizer state, half the memory. An AdamW step moves a weight by about
  ``lr``; a bf16 weight ``w`` only changes when that step exceeds half its spacing, ``|w| * 2**-8``, so
  with ``lr = 1e-6`` and weights around 1e-2 most updates round away. A warning says so.

``auto`` resolves to ``mixed`` on a CUDA GPU with bf16 support and on a CPU with AMX tiles (where a
bf16 matmul runs several times faster than a float32 one), and to ``fp32`` elsewhere. AVX512-BF16
alone is not enough: on a 2-core Xeon with AVX512-BF16 and no AMX, a SmolLM2 forward and backward ran
1.25x slower under bf16 autocast than in float32, a prefill 1.5x slower in bf16, and a demo training
step 1.35x slower (``benchmarks/bench_precision.py``, BENCHMARKS.md).
"""

from __future__ import annotations

import contextlib
import copy
import logging
from typing import Any

import torch

logger = logging.getLogger(__name__)

SETTINGS = ("auto", "on", "off", "mixed", "pure")
MODES = ("fp32", "mixed", "pure")


def cpu_has_fast_bf16() -> bool:
    """True where the CPU has bf16 matrix units (AMX tiles); AVX512-BF16 alone measured slower than fp32."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(check()) if callable(check) else False


def resolve(setting: str, device: torch.device | str) -> str:
    """A ``--bf16`` setting and a device -> ``'fp32'``, ``'mixed'`` or ``'pure'``."""
    if setting not in SETTINGS:
        raise ValueError(f"bf16 must be one of {', '.join(SETTINGS)}, got {setting!r}")
    if setting == "off":
        return "fp32"
    if setting in ("on", "mixed"):
        return "mixed"
    if setting == "pure":
        return "pure"
    device = torch.device(device)
    if device.type == "cuda":
        return "mixed" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "mixed" if cpu_has_fast_bf16() else "fp32"
    return "fp32"


def weight_dtype(mode: str) -> torch.dtype:
    """The dtype the trained weights are kept in."""
    return torch.bfloat16 if mode == "pure" else torch.float32


def inference_dtype(mode: str) -> torch.dtype:
    """The dtype rollouts and evaluation decode in."""
    return torch.float32 if mode == "fp32" else torch.bfloat16


def autocast(mode: str, device: torch.device | str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast for ``mixed``; a no-op context otherwise."""
    if mode != "mixed":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def warn_if_pure_loses_updates(mode: str, lr: float) -> None:
    """``pure`` with a small learning rate drops most updates; say so once."""
    if mode == "pure" and lr < 1e-4:
        logger.warning("bf16=pure with lr %.1e: AdamW steps of about lr are below half the bf16 spacing of "
                       "weights larger than %.1e, so they round away; use bf16=on (float32 master weights)", lr,
                       lr * 2 ** 8)


def inference_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen bf16 copy of ``model`` for decoding (kept in sync with :func:`sync_copy`)."""
    twin = copy.deepcopy(model).to(torch.bfloat16).eval()
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


@torch.no_grad()
def sync_copy(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    """Copy ``src``'s weights into ``dst`` in place (rounding to ``dst``'s dtype).

    In place, so anything that holds ``dst``'s tensors (a captured CUDA graph) sees the new values.
    """
    dst_params = dict(dst.named_parameters())
    for name, p in src.named_parameters():
        dst_params[name].copy_(p)


def eval_dtype(setting: str, device: torch.device | str) -> torch.dtype:
    """The dtype a model is loaded in for evaluation under a ``--bf16`` setting (bf16 unless fp32)."""
    return inference_dtype(resolve(setting, device))
