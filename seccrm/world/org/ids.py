"""Salesforce-style 18-character record ids.

A Salesforce id is 15 case-sensitive characters (3-character key prefix, then the record number in
base 62) plus a 3-character suffix that encodes, for each 5-character block, which characters are
upper case, so that the 18-character form survives case-insensitive systems. We build ids the same
way, so that ids in this org look and check like real ones.

``make_id`` runs for every row of an org (tens of thousands in the full preset), so it works on the
three 5-character blocks separately: the first (prefix + pod) is the same for every id of an
object, and the other two are the record number's high and low five base-62 digits. Each block's
text and suffix character are cached, so most ids cost two dictionary hits and a concatenation.
"""

from __future__ import annotations

from functools import lru_cache

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BLOCK = 62 ** 5          # one 5-character block of base-62 digits
_MAX_NUMBER = _BLOCK ** 2  # ten digits


def _block_suffix(block: str) -> str:
    """The suffix character of one 5-character block: bit i set when character i is upper case."""
    bits = 0
    for i, ch in enumerate(block):
        if "A" <= ch <= "Z":
            bits |= 1 << i
    return _SUFFIX[bits]


def checksum_suffix(id15: str) -> str:
    """The 3-character case-safe suffix of a 15-character id (Salesforce's algorithm)."""
    if len(id15) != 15:
        raise ValueError(f"expected 15 characters, got {len(id15)}")
    return "".join(_block_suffix(id15[k:k + 5]) for k in (0, 5, 10))


@lru_cache(maxsize=256)
def _head(prefix: str, pod: str) -> tuple[str, str]:
    """The first block (key prefix + pod) and its suffix character."""
    if len(prefix) != 3:
        raise ValueError("key prefix must be 3 characters")
    if len(pod) != 2:
        raise ValueError(f"pod must be 2 characters, got {pod!r}")
    return prefix + pod, _block_suffix(prefix + pod)


@lru_cache(maxsize=1 << 18)
def _digits(value: int) -> tuple[str, str]:
    """``value`` (0 <= value < 62**5) as five base-62 digits, and the block's suffix character."""
    out = []
    for _ in range(5):
        value, r = divmod(value, 62)
        out.append(_B62[r])
    block = "".join(reversed(out))
    return block, _block_suffix(block)


def make_id(prefix: str, number: int, pod: str = "Wt") -> str:
    """Record ``number`` of the object with key ``prefix``, as an 18-character id.

    >>> make_id("500", 12345)
    '500Wt00000003D7IAI'
    """
    head, s0 = _head(prefix, pod)
    if not 0 <= number < _MAX_NUMBER:
        raise ValueError(f"record number {number} out of range [0, 62**10)")
    hi, lo = divmod(number, _BLOCK)
    b1, s1 = _digits(hi)
    b2, s2 = _digits(lo)
    return head + b1 + b2 + s0 + s1 + s2


def is_valid_id(value: str, prefix: str | None = None) -> bool:
    """True when ``value`` is a well-formed 18-character id (checksum included), with ``prefix`` if given."""
    if not isinstance(value, str) or len(value) != 18 or not value.isascii() or not value.isalnum():
        return False
    if prefix is not None and not value.startswith(prefix):
        return False
    return checksum_suffix(value[:15]) == value[15:]
