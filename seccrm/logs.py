"""Logging helpers shared by every layer."""

from __future__ import annotations

import logging

_SEEN: set[tuple[str, str]] = set()


def warn_once(logger: logging.Logger, message: str) -> None:
    """``logger.warning(message)`` the first time this logger sees this message in the process
    (fallbacks are chosen per call; their reason is worth reading once, not every step)."""
    key = (logger.name, message)
    if key not in _SEEN:
        _SEEN.add(key)
        logger.warning(message)
