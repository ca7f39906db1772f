"""Dates, seeding and small helpers shared by the org generator's sections."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import re
from dataclasses import dataclass, field
from typing import Any

TODAY = dt.date(2025, 6, 30)          # the org's "now"
DATA_START = dt.date(2023, 1, 1)      # first case, lead and opportunity (30 months before TODAY)
ORDERS_START = dt.date(2022, 7, 1)    # orders start earlier so that every case has a prior purchase


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from its parts (SHA-256; Python's ``hash()`` is salted per process)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def ts(x: dt.datetime) -> str:
    return x.isoformat(timespec="seconds")


def slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def at(rng: random.Random, day: dt.date) -> dt.datetime:
    """A business-hours moment on ``day``."""
    return dt.datetime(day.year, day.month, day.day, rng.randint(8, 17), rng.randint(0, 59), rng.randint(0, 59))


def day_between(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    """A day in [start, end)."""
    return start + dt.timedelta(days=rng.randrange(max(1, (end - start).days)))


def spread(rng: random.Random, lo: float, hi: float, n: int) -> list[float]:
    """n values evenly spaced over [lo, hi], shuffled: a guaranteed spread across people."""
    vals = [lo + (hi - lo) * i / max(1, n - 1) for i in range(n)]
    rng.shuffle(vals)
    return vals


@dataclass
class Person:
    """A user and the hidden traits that shape their records (speed, volume, ...)."""

    id: str
    first: str
    role: str
    email: str
    territories: list[int] = field(default_factory=list)
    traits: dict[str, Any] = field(default_factory=dict)

