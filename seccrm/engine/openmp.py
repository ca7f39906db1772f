"""How idle OpenMP threads wait, chosen from the machine's load before torch starts its thread pool.

PyTorch's CPU kernels run on an OpenMP pool. Between two parallel regions its idle threads either
spin for a while (the GNU OpenMP default) or go to sleep at once (``OMP_WAIT_POLICY=PASSIVE``), and
the choice is read once, when the OpenMP library loads. It matters on small machines:

- on a quiet machine, spinning is about twice as fast for decoding, where every token is hundreds of
  small operations: 64 decoding steps of 32 rows of SmolLM2-135M took 4.0 s with the default and
  7.4 s with PASSIVE on a 2-core Xeon (BENCHMARKS.md, "OpenMP wait policy");
- on a machine whose cores are taken by other jobs, spinning threads steal time from the thread
  that has work, and the same work took several times longer than with PASSIVE.

``configure()`` keeps a policy the user set; otherwise it watches the CPU counters for a quarter of a
second and sets PASSIVE only when other processes keep the cores busy. It must run before ``import torch`` to take effect (the ``seccrm``
command and the benchmarks call it first); it imports nothing heavy.
"""

from __future__ import annotations

import os
import time
from collections.abc import MutableMapping

VARIABLE = "OMP_WAIT_POLICY"
BUSY_FRACTION = 0.25
"""Idle threads sleep when other processes keep at least this fraction of the CPU time busy."""
WINDOW_S = 0.25
"""How long the CPU counters are watched (the 1-minute load average lags: it still counts a job that
ended a minute ago, such as the previous benchmark)."""


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat; None where it cannot be read."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 4:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)      # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def busy_fraction(window_s: float = WINDOW_S) -> float | None:
    """Share of the machine's CPU time other processes used over the last ``window_s`` seconds.

    This process is not working yet when it is called (torch is not loaded), so it is the others'
    share. Falls back to the 1-minute load average per usable core; None where neither is known.
    """
    first = _cpu_times()
    if first is not None:
        time.sleep(window_s)
        second = _cpu_times()
        if second is not None and second[1] > first[1]:
            return (second[0] - first[0]) / (second[1] - first[1])
    try:
        return min(os.getloadavg()[0] / usable_cpus(), 1.0)
    except (AttributeError, OSError):
        return None


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def choose(busy: float | None) -> str | None:
    """PASSIVE when others keep at least BUSY_FRACTION of the CPU busy; None (library default) otherwise."""
    if busy is not None and busy >= BUSY_FRACTION:
        return "PASSIVE"
    return None


def configure(environ: MutableMapping[str, str] | None = None, busy: float | None = None) -> str:
    """Set ``OMP_WAIT_POLICY`` in ``environ`` (default ``os.environ``) unless already set; say what was done.

    ``busy`` (the others' share of CPU time, 0-1) is measured when not given.
    """
    env = os.environ if environ is None else environ
    if env.get(VARIABLE):
        return f"{VARIABLE}={env[VARIABLE]} (set by the user)"
    busy = busy_fraction() if busy is None else busy
    policy = choose(busy)
    where = f"other processes used {busy:.0%} of the CPU" if busy is not None else "CPU load unknown"
    if policy is None:
        return f"{VARIABLE} unset: idle OpenMP threads spin briefly ({where})"
    env[VARIABLE] = policy
    return f"{VARIABLE}={policy}: idle OpenMP threads sleep ({where})"


def describe() -> str:
    """The policy in force in this process, for run logs."""
    value = os.environ.get(VARIABLE)
    return f"{VARIABLE}={value}" if value else f"{VARIABLE} unset (spin, then sleep)"
