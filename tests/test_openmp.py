"""The OpenMP wait policy: sleep only when other work keeps the cores busy; never override the user."""

import time

from seccrm.engine import openmp


def test_busy_machine_gets_passive_threads():
    env: dict[str, str] = {}
    said = openmp.configure(env, busy=0.6)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert "sleep" in said and "60%" in said


def test_quiet_machine_keeps_the_library_default():
    env: dict[str, str] = {}
    said = openmp.configure(env, busy=0.05)
    assert env == {}
    assert "unset" in said


def test_threshold():
    assert openmp.choose(openmp.BUSY_FRACTION) == "PASSIVE"
    assert openmp.choose(openmp.BUSY_FRACTION - 0.01) is None
    assert openmp.choose(None) is None          # nothing known: the library default


def test_the_users_setting_wins():
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    said = openmp.configure(env, busy=1.0)
    assert env == {"OMP_WAIT_POLICY": "ACTIVE"}
    assert "set by the user" in said


def test_busy_fraction_sees_a_busy_process(monkeypatch):
    """Counters that moved 3 busy jiffies in 4: 75% busy. And a real measurement is a fraction."""
    readings = iter([(100, 200), (103, 204)])
    monkeypatch.setattr(openmp, "_cpu_times", lambda: next(readings))
    monkeypatch.setattr(time, "sleep", lambda s: None)
    assert openmp.busy_fraction() == 0.75
    monkeypatch.undo()
    real = openmp.busy_fraction(0.05)
    assert real is None or 0.0 <= real <= 1.0
