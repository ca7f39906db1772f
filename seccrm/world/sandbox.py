"""Read-only SQL over an org, for agentic episodes: the model writes a query, the sandbox answers
with a compact table or an error message, and nothing the model writes can change the org, read
another file, or hold the process for long.

Defences, each one enough on its own for what it guards:

- the file is opened ``mode=ro`` and the connection is ``PRAGMA query_only``: no write reaches it;
- an authorizer allows SELECT, reads of the main database (the org's tables and the query's own
  CTEs: nothing else can be there), and a list of plain functions; the hidden columns of a seccrm
  org (``AGENT_HIDDEN_COLUMNS``: its JSON rules and the facts gold answers are computed from) read as
  NULL and are left out of the schema the agent is shown;
  everything else (INSERT, UPDATE, DELETE, CREATE of any kind including temp tables, DROP, ATTACH,
  PRAGMA, transactions, ``load_extension``, ``randomblob`` / ``zeroblob``) is denied;
- ``SQLITE_LIMIT_ATTACHED`` is 0, strings and blobs are capped at ``max_value_bytes``, SQL text at
  ``max_sql_chars``;
- a progress handler stops a query after ``time_limit_s`` (recursive CTEs, cross joins of the largest
  tables) and after ``max_vm_steps`` virtual-machine steps, so CPU time is bounded as well as wall time;
- at most ``max_rows`` rows are shown and at most ``count_rows`` are counted ("N more rows"), and
  the rendered table is cut at ``max_chars`` characters.

Every failure comes back as ``QueryResult(ok=False, text="error: ...")``, never as an exception:
hostile SQL is an observation for the model, not a crash of the trainer. Each episode gets its own
connection (no state is shared between episodes; the org has none to share anyway).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from seccrm.world.org.schema import AGENT_HIDDEN_COLUMNS, META_TABLE

# Functions a query may call: SQL's plain scalar and aggregate functions and the date helpers. Not
# printf / format: a width of 10^9 builds the whole string inside one call, where no time limit reaches.
ALLOWED_FUNCTIONS = frozenset("""
abs avg coalesce count date datetime group_concat hex ifnull iif instr julianday length like lower
ltrim max min nullif quote replace round rtrim strftime substr substring sum time
total trim typeof unicode upper glob char unixepoch cast
""".split())

_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION}
_RECURSIVE = getattr(sqlite3, "SQLITE_RECURSIVE", 33)


@dataclass(frozen=True)
class SandboxLimits:
    """How much one query may take and show. Defaults suit a small model on CPU."""

    time_limit_s: float = 2.0
    """Wall time per query; a longer one is interrupted."""
    max_vm_steps: int = 200_000_000
    """SQLite virtual-machine steps per query (CPU work, whatever the clock says)."""
    max_rows: int = 20
    """Rows shown in the result table."""
    count_rows: int = 10_000
    """Rows counted beyond those shown, for the "N more rows" line."""
    max_chars: int = 2_000
    """Characters of the rendered result (cells are cut to ``max_cell_chars`` first)."""
    max_cell_chars: int = 200
    """Characters of one cell."""
    max_value_bytes: int = 1_000_000
    """Largest string or blob a query may build (SQLITE_LIMIT_LENGTH)."""
    max_sql_chars: int = 4_000
    """Longest query text accepted."""


@dataclass(frozen=True)
class QueryResult:
    """What the environment says back: ``text`` is the observation the model reads."""

    ok: bool
    text: str
    rows_shown: int = 0
    rows_total: int = 0          # counted up to ``count_rows`` + shown; ``truncated`` says when more
    truncated: bool = False
    seconds: float = 0.0


class Sandbox:
    """Read-only queries over one org file.

    >>> box = Sandbox("data/tiny/org.sqlite")                        # doctest: +SKIP
    >>> print(box.run("SELECT COUNT(*) AS n FROM Account").text)     # doctest: +SKIP
    n
    60
    """

    def __init__(self, org_path: str | Path, limits: SandboxLimits | None = None,
                 hidden: Mapping[str, tuple[str, ...]] | None = None):
        self.path = Path(org_path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no org database at {self.path}")
        self.limits = limits or SandboxLimits()
        self._conn = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True,
                                     check_same_thread=False)
        try:
            self.tables = {r[0] for r in self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise ValueError(f"{self.path} is not an SQLite database ({e})") from None
        self.hidden = {(t, col) for t, cols in (default_hidden(self.tables) if hidden is None else hidden).items()
                       for col in cols}
        c = self._conn
        c.execute("PRAGMA query_only = ON")
        c.execute("PRAGMA cache_size = -8000")      # 8 MB of page cache; large sorts spill to temp files
        c.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        c.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self.limits.max_value_bytes)
        c.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, self.limits.max_sql_chars)
        c.set_authorizer(self._authorize)
        self._deadline = 0.0
        self._steps = 0
        c.set_progress_handler(self._progress, 10_000)

    # --- guards --------------------------------------------------------------------------------
    def _authorize(self, action: int, arg1: str | None, arg2: str | None, db: str | None,
                   trigger: str | None) -> int:
        if action == sqlite3.SQLITE_READ:
            if (arg1, arg2) in self.hidden:
                return sqlite3.SQLITE_IGNORE          # the column reads as NULL
            # the org's tables, the schema table and the query's own CTEs (temp tables cannot be
            # created and nothing can be attached, so "main" holds nothing else)
            return sqlite3.SQLITE_OK if db in (None, "", "main") else sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION:
            return sqlite3.SQLITE_OK if (arg2 or "").lower() in ALLOWED_FUNCTIONS else sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_SELECT or action == _RECURSIVE:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    def _progress(self) -> int:
        self._steps += 10_000
        return int(time.monotonic() > self._deadline or self._steps > self.limits.max_vm_steps)

    # --- queries -------------------------------------------------------------------------------
    def run(self, sql: str) -> QueryResult:
        """Run one query; any failure is a result with ``ok=False`` and the reason in ``text``."""
        lim = self.limits
        t0 = time.monotonic()
        sql = sql.strip()
        if not sql:
            return QueryResult(False, "error: empty query")
        if "\x00" in sql:
            return QueryResult(False, "error: the query contains a NUL character")
        if len(sql) > lim.max_sql_chars:
            return QueryResult(False, f"error: query longer than {lim.max_sql_chars} characters")
        self._deadline, self._steps = t0 + lim.time_limit_s, 0
        cur = None
        try:
            cur = self._conn.execute(sql)
            header = [d[0] for d in cur.description or ()]
            rows = cur.fetchmany(lim.max_rows)
            more = 0
            truncated = False
            if len(rows) == lim.max_rows:
                while more < lim.count_rows and cur.fetchone() is not None:
                    more += 1
                truncated = more == lim.count_rows and cur.fetchone() is not None
        except sqlite3.Warning as e:          # e.g. more than one statement
            return QueryResult(False, f"error: {e}", seconds=time.monotonic() - t0)
        except sqlite3.Error as e:
            return QueryResult(False, self._explain(e), seconds=time.monotonic() - t0)
        except (ValueError, OverflowError, MemoryError) as e:
            return QueryResult(False, f"error: {e}", seconds=time.monotonic() - t0)
        finally:
            if cur is not None:
                cur.close()
        text = self._render(header, rows, more, truncated)
        return QueryResult(True, text, len(rows), len(rows) + more, truncated, time.monotonic() - t0)

    def _explain(self, e: sqlite3.Error) -> str:
        msg = str(e)
        if "interrupted" in msg:
            return (f"error: the query was stopped after {self.limits.time_limit_s:g} s or "
                    f"{self.limits.max_vm_steps:,} steps; narrow it down (filters, LIMIT)")
        if "not authorized" in msg or "prohibited" in msg:
            return "error: not allowed: the sandbox runs read-only SELECT queries over the org's tables"
        return f"error: {msg}"

    def _render(self, header: list[str], rows: list[tuple[object, ...]], more: int, truncated: bool) -> str:
        lim = self.limits
        if not header:
            return "(no result)"
        lines = [" | ".join(header)]
        for row in rows:
            lines.append(" | ".join(_cell(v, lim.max_cell_chars) for v in row))
        if not rows:
            lines.append("(0 rows)")
        text = "\n".join(lines)
        if len(text) > lim.max_chars:
            text = text[:lim.max_chars].rsplit("\n", 1)[0] + f"\n[cut at {lim.max_chars} characters]"
        if more:
            text += f"\n... {more}{'+' if truncated else ''} more rows"
        return text

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cell(value: object, cap: int) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    text = str(value).replace("\n", " ").replace("|", "/")
    return text if len(text) <= cap else text[:cap - 1] + "…"


def default_hidden(tables: set[str]) -> dict[str, tuple[str, ...]]:
    """The columns hidden from agents in an org with these tables: ``AGENT_HIDDEN_COLUMNS`` for a
    seccrm org (it has the ``OrgInfo`` table), none for any other (an imported CRMArena-Pro org)."""
    return dict(AGENT_HIDDEN_COLUMNS) if META_TABLE in tables else {}


def schema_text(org_path: str | Path, max_columns: int = 60) -> str:
    """The org's tables and columns with their types, one line per table, introspected from the file
    (works for any SQLite org: seccrm's or an imported CRMArena-Pro one), without hidden columns."""
    with Sandbox(org_path) as box:
        hidden = box.hidden
        conn = sqlite3.connect(box.path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        lines = []
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"):
            quoted = name.replace('"', '""')
            cols = [f"{c[1]} {c[2] or 'TEXT'}".strip() for c in conn.execute(f'PRAGMA table_info("{quoted}")')
                    if (name, c[1]) not in hidden]
            shown = cols[:max_columns] + ([f"... {len(cols) - max_columns} more"] if len(cols) > max_columns else [])
            lines.append(f"{name}({', '.join(shown)})")
        return "\n".join(lines)
    finally:
        conn.close()
