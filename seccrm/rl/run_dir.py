"""A training run's directory: an exclusive lock while a trainer lives, a stop flag that turns Ctrl-C or
SIGTERM into "finish the step, checkpoint, exit", and moving an old run aside instead of mixing two."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any


class StopFlag:
    """Ctrl-C (SIGINT) or SIGTERM (what ``docker stop``, Kubernetes and SLURM send): finish the step,
    write a checkpoint, exit (130 after SIGINT, 143 after SIGTERM). A second signal stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        def handler(signum: int, frame: Any) -> None:
            if self.requested:
                raise KeyboardInterrupt
            self.requested, self.signum = True, signum
            name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
            print(f"\n[seccrm] {name}: stopping after this step (checkpoint first); signal again to abort",
                  file=sys.stderr)
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread (e.g. inside some test runners)
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def stop(self) -> None:
        """Leave the loop: KeyboardInterrupt (exit 130) after SIGINT, SystemExit(143) after SIGTERM."""
        if self.signum == signal.SIGTERM:
            raise SystemExit(143)
        raise KeyboardInterrupt


class RunLock:
    """An exclusive lock on a run directory, held while a trainer lives (``RUN/.lock``, ``flock``).

    A second process pointed at the same directory is refused with the first one's pid. The lock
    goes with its process (the kernel drops it even after ``kill -9``), so it is never stale.
    """

    def __init__(self, run_dir: Path):
        import fcntl
        import os

        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / ".lock"
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.pread(self._fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            self._fd = None
            raise ValueError(f"{run_dir} is in use by another seccrm process (pid {other}); wait for it, stop "
                             "it, or use another --out") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        import os
        if self._fd is not None:
            os.close(self._fd)   # closing the descriptor drops the flock
            self._fd = None

    def __del__(self) -> None:
        self.release()


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` already holds (part of) a training run."""
    return any((run_dir / name).exists() for name in ("metrics.jsonl", "config.json", "checkpoints"))


def move_aside(run_dir: Path) -> Path:
    """Move everything in ``run_dir`` but its lock into ``RUN.replaced-<time>`` beside it; return that."""
    aside = run_dir.with_name(f"{run_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while aside.exists():
        n += 1
        aside = aside.with_name(f"{run_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
    aside.mkdir()
    for item in run_dir.iterdir():
        if item.name != ".lock":
            item.rename(aside / item.name)
    return aside
