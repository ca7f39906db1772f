"""Salesforce-style 18-character record ids.

A Salesforce id is 15 case-sensitive characters (3-character key prefix, then the record number in
base 62) plus a 3-character suffix that encodes, for each 5-character block, which characters are
upper case, so that the 18-character form survives case-insensitive systems. We build ids the same
way, so that ids in this org look and check like real ones.
"""

from __future__ import annotations

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def checksum_suffix(id15: str) -> str:
    """The 3-character case-safe suffix of a 15-character id (Salesforce's algorithm)."""
    if len(id15) != 15:
        raise ValueError(f"expected 15 characters, got {len(id15)}")
    out = []
    for block in range(3):
        bits = 0
        for i, ch in enumerate(id15[block * 5:(block + 1) * 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out.append(_SUFFIX[bits])
    return "".join(out)


def make_id(prefix: str, number: int, pod: str = "Wt") -> str:
    """Record ``number`` of the object with key ``prefix``, as an 18-character id.

    >>> make_id("500", 12345)
    '500Wt00000003D7IAI'
    """
    if len(prefix) != 3:
        raise ValueError("key prefix must be 3 characters")
    digits = []
    n = number
    for _ in range(10):
        n, r = divmod(n, 62)
        digits.append(_B62[r])
    if n:
        raise ValueError("record number too large")
    id15 = prefix + pod + "".join(reversed(digits))
    return id15 + checksum_suffix(id15)


def is_valid_id(value: str, prefix: str | None = None) -> bool:
    """True when ``value`` is a well-formed 18-character id (checksum included), with ``prefix`` if given."""
    if not isinstance(value, str) or len(value) != 18 or not value.isascii() or not value.isalnum():
        return False
    if prefix is not None and not value.startswith(prefix):
        return False
    return checksum_suffix(value[:15]) == value[15:]
