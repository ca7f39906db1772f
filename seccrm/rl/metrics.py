"""Metrics through one small logger interface: JSONL on disk always, TensorBoard when asked.

Keys are namespaced (``train/reward``, ``curriculum/p/<arm>``, ``loss/policy``, ``eval/val/accuracy``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Protocol

from seccrm import files
from seccrm.engine.openmp import describe
from seccrm.engine.precision import cpu_has_fast_bf16


class MetricLogger(Protocol):
    def log(self, metrics: dict[str, Any], step: int) -> None: ...
    def close(self) -> None: ...


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no NaN/inf; a null says "not a number" without breaking readers
    if hasattr(v, "item"):
        return _jsonable(v.item())
    return v


class JsonlLogger:
    """One JSON object per call, ``{"step": ..., **metrics}``, flushed at once (a killed run keeps its log)."""

    def __init__(self, path: str | os.PathLike[str], truncate_after_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if truncate_after_step is not None and self.path.exists():
            # On resume, drop lines from steps after the checkpoint so the log has no duplicates.
            kept = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and _step_of(ln) <= truncate_after_step]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        self._f = open(self.path, "a", encoding="utf-8")

    def log(self, metrics: dict[str, Any], step: int) -> None:
        row = {"step": step, **{k: _jsonable(v) for k, v in metrics.items()}}
        self._f.write(json.dumps(row, sort_keys=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", -1))
    except (ValueError, AttributeError):
        return 1 << 62  # an unreadable line (a torn write) is dropped on resume


class TensorBoardLogger:
    def __init__(self, log_dir: str | os.PathLike[str]):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:  # tensorboard is an optional extra
            raise RuntimeError("TensorBoard logging needs `pip install tensorboard`") from e
        self._w = SummaryWriter(str(log_dir))

    def log(self, metrics: dict[str, Any], step: int) -> None:
        for k, v in metrics.items():
            v = _jsonable(v)
            if isinstance(v, (int, float)) and v is not None:
                self._w.add_scalar(k, v, step)
        self._w.flush()

    def close(self) -> None:
        self._w.close()


class MultiLogger:
    def __init__(self, loggers: list[MetricLogger]):
        self.loggers = loggers

    def log(self, metrics: dict[str, Any], step: int) -> None:
        for lg in self.loggers:
            lg.log(metrics, step)

    def close(self) -> None:
        for lg in self.loggers:
            lg.close()


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a metrics log; the torn last line of a killed run is skipped."""
    return files.read_jsonl(path, skip_torn_tail=True)


def machine_summary() -> str:
    """One line naming the machine a run or measurement came from (CPU model, cores, GPU, torch, Python)."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    bf16 = " (AMX bf16 matrix units)" if cpu_has_fast_bf16() else ""

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    omp = "" if torch.cuda.is_available() else f", {describe()}"
    return (f"{cpu}{bf16}, {os.cpu_count()} CPU cores, {gpu}, torch {torch.__version__}, "
            f"Python {platform.python_version()}{omp}")
