"""The sandbox's worker processes: started on demand, reused across queries and sandboxes, killed
when a query outlives its deadline, closed at exit.

A worker (`seccrm.world.sandbox_worker`) is a fresh interpreter (``python -I -S``: no site
packages, no environment), not a fork: a fork of a trainer would inherit gigabytes of address space,
which ``RLIMIT_AS`` would then count. Starting one costs a few tens of milliseconds, so they are
pooled: a sandbox takes one when it opens and hands it back when it closes; at most ``MAX_IDLE`` wait
between episodes, the rest are closed. A process that forks (data-loader workers) starts a pool of
its own rather than share its parent's pipes. A worker whose parent dies reads the end of its input
and exits.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import seccrm.world.sandbox_worker as _worker_module

WORKER_SCRIPT = Path(_worker_module.__file__).resolve()
MAX_IDLE = 4
"""Idle workers kept for the next sandboxes (threads that play episodes side by side each hold one)."""
MAX_REPLY_BYTES = 4 * 2**20
"""A reply longer than this is treated as a broken worker."""


class Worker:
    """One worker process and the pipe protocol to it: a JSON request line, a JSON reply line."""

    def __init__(self, memory_bytes: int):
        self.memory_bytes = memory_bytes
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(WORKER_SCRIPT), str(memory_bytes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0,
            close_fds=True, cwd="/")
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
        """Send ``request`` and wait up to ``timeout_s`` for the reply; None if none came (a dead or
        stuck worker: the caller kills it)."""
        deadline = time.monotonic() + timeout_s
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        except (BrokenPipeError, OSError):
            return None
        fd = self.proc.stdout.fileno()
        chunks: list[bytes] = []
        size = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:                      # the worker died (RLIMIT_CPU, a crash)
                return None
            chunks.append(chunk)
            size += len(chunk)
            if chunk.endswith(b"\n"):
                break
            if size > MAX_REPLY_BYTES:
                return None
        try:
            reply = json.loads(b"".join(chunks))
        except ValueError:
            return None
        return reply if isinstance(reply, dict) else None

    def kill(self) -> None:
        """End the process now and reap it."""
        if self.alive():
            self.proc.kill()
        self._reap(5.0)

    def close(self) -> None:
        """End the process: its input closes and it exits; killed if it does not within a second."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._reap(5.0)

    def _reap(self, timeout_s: float) -> None:
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
        if self.proc.stdout is not None:
            self.proc.stdout.close()


_lock = threading.Lock()
_idle: list[Worker] = []
_owner = os.getpid()


def acquire(memory_bytes: int) -> Worker:
    """An idle worker with this memory cap, or a new one."""
    global _owner
    with _lock:
        if os.getpid() != _owner:             # a forked child: the pipes belong to the parent
            _idle.clear()
            _owner = os.getpid()
        while _idle:
            w = _idle.pop()
            if w.memory_bytes == memory_bytes and w.alive():
                return w
            w.close()
    return Worker(memory_bytes)


def release(worker: Worker) -> None:
    """Hand a worker back: kept for reuse while fewer than ``MAX_IDLE`` wait, else closed."""
    if os.getpid() != _owner:                 # a forked child's copy of its parent's worker
        return
    if not worker.alive():
        worker.kill()                          # reap it
        return
    with _lock:
        if len(_idle) < MAX_IDLE:
            _idle.append(worker)
            return
    worker.close()


def idle_workers() -> list[int]:
    """The process ids of the idle workers (for tests and diagnostics)."""
    with _lock:
        return [w.pid for w in _idle]


def close_all() -> None:
    """Close every idle worker (at exit; tests call it to check that nothing is left)."""
    with _lock:
        workers, _idle[:] = list(_idle), []
    for w in workers:
        w.close()


atexit.register(close_all)
