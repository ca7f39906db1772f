"""Dates, seeding and small helpers shared by the org generator's sections."""

from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass, field
from typing import Any

from seccrm.seeding import ORG, derive_seed

TODAY = dt.date(2025, 6, 30)          # the org's "now"
DATA_START = dt.date(2023, 1, 1)      # first case, lead and opportunity (30 months before TODAY)
ORDERS_START = dt.date(2022, 7, 1)    # orders start earlier so that every case has a prior purchase


def stable_seed(*parts: object) -> int:
    """The org generator's seed stream (`seccrm.seeding`)."""
    return derive_seed(*parts, fmt=ORG)


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


@dataclass(frozen=True)
class OrgSize:
    """How many records of each kind a preset holds."""

    name: str
    support_agents: int
    sales_reps: int
    products: int
    territories: int            # the first n of text.TERRITORIES
    accounts: int
    contacts_per_account: tuple[int, int]
    orders: int
    cases: int                  # assigned cases (open and closed), spikes included
    new_cases: int              # the routing pool: Status 'New', OwnerId NULL
    opportunities: int
    leads: int                  # assigned leads
    new_leads: int              # the routing pool: 'Open - Not Contacted', OwnerId NULL
    wrong_stages: int           # open opportunities added with a wrong StageName, beyond `opportunities`


# The routing pools and the wrong-stage opportunities are the CRUD tasks' targets: they are sized so
# that the default suite (750 instances per task on full, 60 on small) rarely repeats a target.
SIZES: dict[str, OrgSize] = {
    "tiny": OrgSize("tiny", 8, 6, 12, 4, 60, (2, 3), 300, 600, 30, 150, 150, 30, 22),
    "small": OrgSize("small", 16, 10, 24, 5, 250, (2, 4), 1500, 3000, 220, 500, 700, 220, 200),
    "full": OrgSize("full", 40, 24, 60, 6, 1200, (2, 5), 9000, 24000, 850, 3000, 5000, 850, 700),
}
