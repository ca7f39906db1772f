"""Seed once, derive the rest: every seed in seccrm comes from :func:`derive_seed` over named parts.

A derived seed is a prefix of SHA-256 over the parts joined by a separator, the same on every machine
and Python (unlike ``hash()``, salted per process). Three streams keep the formats they were created
with, so that every org, suite and run built before reproduces bit for bit:

- ``ORG``: the org generator's sections (``/``-joined, 64 bits, big-endian);
- ``SUITE``: the suite builder's instances and splits (``\\x1f``-joined, 64 bits, big-endian);
- ``RUN``: a training run's curriculum, pools and rollouts, and the VERL and TRL hand-offs
  (``/``-joined, 63 bits, little-endian: a non-negative int64 for torch generators).

>>> derive_seed(0, "curriculum") == derive_seed(0, "curriculum")
True
>>> 0 <= derive_seed(7, "rollout", 3) < 2 ** 63
True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class SeedFormat:
    """How the digest of the parts becomes an integer."""

    sep: str = "/"
    bits: int = 63
    byteorder: Literal["little", "big"] = "little"


RUN = SeedFormat()
ORG = SeedFormat(sep="/", bits=64, byteorder="big")
SUITE = SeedFormat(sep="\x1f", bits=64, byteorder="big")


def derive_seed(*parts: object, fmt: SeedFormat = RUN) -> int:
    """A stable seed from any parts (see the module docstring for ``fmt``)."""
    digest = hashlib.sha256(fmt.sep.join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], fmt.byteorder) >> (64 - fmt.bits)
