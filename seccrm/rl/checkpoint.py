"""Checkpoints: a Hugging Face model folder plus optimizer, curriculum, pools, RNG and step, written
atomically.

Layout: ``RUN_DIR/checkpoints/step_000012/`` holds ``config.json`` + ``model.safetensors`` + tokenizer
files (so ``AutoModelForCausalLM.from_pretrained`` loads it), ``optimizer.pt``, ``trainer_state.json``,
with LoRA also ``adapter/``, and last a ``COMPLETE`` manifest listing every file with its size and
sha256. ``verify_checkpoint`` checks both (hashing reads every byte: about 1 GB/s on one core, so a
bf16 3B checkpoint with its optimizer state, ~25 GB, takes ~25 s; ``hashes=False`` checks sizes only).
A checkpoint is first written to a hidden temporary folder, flushed to disk, then renamed into place:
a run killed mid-save leaves the previous checkpoint intact and a temporary folder that is ignored
(and removed at the next save).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from seccrm.files import sha256_file, write_folder_atomic

MANIFEST = "COMPLETE"
STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or read; the message says what to do."""


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def _files(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST]


def _manifest(root: Path) -> dict[str, dict[str, Any]]:
    return {str(p.relative_to(root)): {"size": p.stat().st_size, "sha256": sha256_file(p)} for p in _files(root)}


def _is_disk_full(e: BaseException) -> bool:
    """ENOSPC / EDQUOT as an OSError, or as the text of torch's and safetensors' own errors."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(e).lower()
    return "no space left" in text or "disk quota" in text or "enospc" in text or "file write failed" in text


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def checkpoint_size_estimate(model: Any, optimizer: torch.optim.Optimizer | None) -> int:
    """Bytes a checkpoint needs, about: the weights as stored plus the optimizer's state (Adam: two
    float32 tensors per trainable parameter)."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) if optimizer is not None else 0
    return int(weights + 8 * trainable)


def _save_model(model: Any, tokenizer: Any, dest: Path) -> None:
    if hasattr(model, "peft_config"):
        # LoRA: keep the adapter (to resume) and a merged full model (to evaluate / load anywhere).
        model.save_pretrained(dest / "adapter")
        import copy
        merged = copy.deepcopy(model).merge_and_unload()
        merged.save_pretrained(dest)
        del merged
    else:
        model.save_pretrained(dest)
    if tokenizer is not None:
        tokenizer.save_pretrained(dest)


def save_checkpoint(run_dir: str | Path, step: int, model: Any, tokenizer: Any,
                    optimizer: torch.optim.Optimizer | None, state: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoint ``step`` atomically and prune to the ``keep`` newest. Returns its folder."""
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"step_{step:06d}"

    def write(tmp: Path) -> None:
        _save_model(model, tokenizer, tmp)
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
        (tmp / STATE_FILE).write_text(json.dumps({"step": step, **state}, indent=1, sort_keys=True))
        (tmp / MANIFEST).write_text(json.dumps(_manifest(tmp), indent=1, sort_keys=True))

    try:
        write_folder_atomic(final, write, fsync=True, tmp=root / f".tmp-step_{step:06d}-{os.getpid()}")
    except Exception as e:  # torch and safetensors report a full disk as RuntimeError / SafetensorError
        if not isinstance(e, OSError) and not _is_disk_full(e):
            raise
        prev = latest_checkpoint(run_dir)
        kept = f"the previous checkpoint {prev} is intact" if prev else "no earlier checkpoint exists"
        need = checkpoint_size_estimate(model, optimizer)
        free = shutil.disk_usage(root).free
        why = "the disk is full" if _is_disk_full(e) else (getattr(e, "strerror", None) or str(e))
        raise CheckpointError(f"could not write checkpoint for step {step} in {root}: {why}; the partial "
                              f"checkpoint was removed and {kept}. A checkpoint needs about "
                              f"{_size(need)}; {_size(free)} are free. Free disk space "
                              f"and rerun with --resume.") from e
    _prune(root, keep)
    return final


def _prune(root: Path, keep: int) -> None:
    done = complete_checkpoints(root.parent)
    for old in done[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def complete_checkpoints(run_dir: str | Path) -> list[Path]:
    """Finished checkpoints (with a manifest), oldest first."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step_*") if (p / MANIFEST).is_file())


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    done = complete_checkpoints(run_dir)
    return done[-1] if done else None


def verify_checkpoint(path: str | Path, hashes: bool = True) -> dict[str, Any]:
    """Check a checkpoint against its manifest (sizes, and with ``hashes`` every file's sha256) and
    return its trainer state; CheckpointError if broken. Manifests of earlier versions hold sizes only."""
    path = Path(path)
    others = [str(p) for p in complete_checkpoints(path.parent.parent) if p != path]
    hint = (f" Remove it to resume from {others[-1]}." if others else " Start the run afresh without --resume.")
    try:
        expected = json.loads((path / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {path} has no readable manifest ({e}); it is incomplete.{hint}") from e
    if not isinstance(expected, dict):
        raise CheckpointError(f"checkpoint {path}: its manifest is not a file table.{hint}")
    sizes = {str(p.relative_to(path)): p.stat().st_size for p in _files(path)}
    bad = []
    for name, want in sorted(expected.items()):
        size = want.get("size") if isinstance(want, dict) else want
        if sizes.get(name) != size:
            bad.append(f"{name} (missing or of the wrong size)")
        elif hashes and isinstance(want, dict) and want.get("sha256") and sha256_file(path / name) != want["sha256"]:
            bad.append(f"{name} (its bytes changed: sha256 differs)")
    if bad:
        raise CheckpointError(f"checkpoint {path} is corrupt: {', '.join(bad[:5])}.{hint}")
    try:
        state: dict[str, Any] = json.loads((path / STATE_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {path}: {STATE_FILE} is unreadable ({e}).{hint}") from e
    return state


def load_optimizer_state(path: str | Path, optimizer: torch.optim.Optimizer) -> None:
    f = Path(path) / OPTIMIZER_FILE
    try:
        optimizer.load_state_dict(torch.load(f, map_location="cpu", weights_only=True))
    except Exception as e:  # torch raises many kinds on a truncated / foreign file
        raise CheckpointError(f"checkpoint {path}: cannot load {OPTIMIZER_FILE} ({e})") from e
