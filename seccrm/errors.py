"""The one error type the library raises for input the user can fix (a missing suite, a bad config,
a run directory in use). `seccrm.cli` prints it on one line, without a traceback, and exits 2;
library callers catch it like any exception. Everything else raises ordinary exceptions."""

from __future__ import annotations


class UserError(Exception):
    """An error the user can fix; its message says how."""
