"""The process that runs an agent's SQL: `seccrm.world.sandbox` starts it, sends it one query at a
time and kills it when a query outlives its deadline.

It runs as a script (``python -I -S sandbox_worker.py AS_BYTES``) and imports the standard library
only, so that it starts in a few tens of milliseconds with a small address space, which it then
caps (``RLIMIT_AS``) before it opens any file. Requests and replies are JSON, one per line, on
stdin / stdout; the worker exits when stdin closes (its parent is gone).

Bounds set here, besides the parent's deadline:

- ``RLIMIT_AS`` (address space), ``RLIMIT_FSIZE`` 0 (no file can be written; ``SIGXFSZ`` is
  ignored so that a write fails instead), ``RLIMIT_CORE`` 0, and ``RLIMIT_CPU`` raised before each
  query to the CPU seconds used so far plus the query's time limit and a margin: a query that no
  progress handler reaches is stopped by the kernel if the parent has not killed it first;
- SQLite's heap (``PRAGMA hard_heap_limit``), temporary storage in memory (``temp_store = MEMORY``,
  so it counts against the heap), no memory-mapped I/O, and the per-connection limits of
  :data:`SQL_LIMITS` (value length, LIKE pattern, columns, expression depth, compound selects,
  function arguments, VDBE program size, no attached databases, no sorter threads);
- the authorizer and the progress handler that `seccrm.world.sandbox` describes.

The result is rendered here (cells cut, rows capped), so only a short text crosses the pipe.
"""

from __future__ import annotations

import json
import math
import resource
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

# Functions a query may call: SQL's plain scalar and aggregate functions and the date helpers. Not
# printf / format: a width of 10^9 builds the whole string inside one call, where no time limit reaches.
ALLOWED_FUNCTIONS = frozenset("""
abs avg coalesce count date datetime group_concat hex ifnull iif instr julianday length like lower
ltrim max min nullif quote replace round rtrim strftime substr substring sum time
total trim typeof unicode upper glob char unixepoch cast
""".split())

_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION}
_RECURSIVE = getattr(sqlite3, "SQLITE_RECURSIVE", 33)

# SQLite limits (``sqlite3_limit``) beside the value and SQL lengths, which come with each request:
# what a CRM query needs, with room to spare (the seccrm org has at most 17 columns a table, values
# under 2 KB; the scripted analysts' longest query compiles to a few hundred VDBE operations).
SQL_LIMITS: dict[str, int] = {
    "SQLITE_LIMIT_COLUMN": 256,
    "SQLITE_LIMIT_EXPR_DEPTH": 200,
    "SQLITE_LIMIT_COMPOUND_SELECT": 50,
    "SQLITE_LIMIT_VDBE_OP": 100_000,
    "SQLITE_LIMIT_FUNCTION_ARG": 32,
    "SQLITE_LIMIT_ATTACHED": 0,
    "SQLITE_LIMIT_LIKE_PATTERN_LENGTH": 256,
    "SQLITE_LIMIT_VARIABLE_NUMBER": 0,
    "SQLITE_LIMIT_TRIGGER_DEPTH": 1,
    "SQLITE_LIMIT_WORKER_THREADS": 0,
}
HEAP_LIMIT_BYTES = 192 * 2**20
"""SQLite's hard heap limit in the worker: every connection's page cache, sorts and temp tables."""
PROGRESS_EVERY = 1_000
"""VM steps between progress-handler calls (each call is a clock read)."""
MAX_CONNECTIONS = 4
"""Open connections kept for reuse (one per org and limits a recent sandbox asked for)."""


class _Conn:
    """One connection with its guards, for one (org file, limits, hidden columns)."""

    def __init__(self, spec: dict[str, Any]):
        self.limits: dict[str, Any] = spec["limits"]
        path = spec["path"]
        self.conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
        try:
            c = self.conn
            c.execute("PRAGMA trusted_schema = OFF")
            c.execute("PRAGMA query_only = ON")
            c.execute("PRAGMA temp_store = MEMORY")
            c.execute("PRAGMA mmap_size = 0")
            c.execute("PRAGMA cache_size = -4000")      # 4 MB of page cache
            self.tables = sorted(r[0] for r in c.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"))
            columns = {t: {r[0] for r in c.execute("SELECT name FROM pragma_table_info(?)", (t,))}
                       for t in self.tables}
        except sqlite3.DatabaseError as e:
            self.conn.close()
            raise ValueError(f"{path} is not an SQLite database ({e})") from None
        wanted = spec["hidden"] if spec["hidden_if_table"] in (None, *self.tables) else []
        self.hidden = {(t, col) for t, col in wanted}
        # Hidden columns that the file really has (a full seccrm org, not the agents' copy): SQLite does
        # not consult the authorizer for the columns a USING or NATURAL join compares, so on such a
        # file a NATURAL join, or a USING join in a query that names a hidden column, is refused.
        self.present = sorted({col.lower() for t, col in self.hidden if col in columns.get(t, ())})
        for name, value in SQL_LIMITS.items():
            c.setlimit(getattr(sqlite3, name), value)
        c.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, int(self.limits["max_value_bytes"]))
        c.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, int(self.limits["max_sql_chars"]))
        c.set_authorizer(self._authorize)
        self.deadline, self.steps = 0.0, 0
        c.set_progress_handler(self._progress, PROGRESS_EVERY)

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
        self.steps += PROGRESS_EVERY
        return int(time.monotonic() > self.deadline or self.steps > self.limits["max_vm_steps"])

    def run(self, sql: str) -> dict[str, Any]:
        lim = self.limits
        if self.present:
            lowered = sql.lower()
            if "natural" in lowered or ("using" in lowered and any(col in lowered for col in self.present)):
                return {"ok": False, "text": NOT_ALLOWED}
        self.deadline, self.steps = time.monotonic() + lim["time_limit_s"], 0
        _cpu_limit(lim["time_limit_s"])
        cur = None
        try:
            cur = self.conn.execute(sql)
            header = [d[0] for d in cur.description or ()]
            rows = cur.fetchmany(lim["max_rows"])
            more, truncated = 0, False
            if len(rows) == lim["max_rows"]:
                while more < lim["count_rows"] and cur.fetchone() is not None:
                    more += 1
                truncated = more == lim["count_rows"] and cur.fetchone() is not None
        except sqlite3.Warning as e:          # e.g. more than one statement
            return {"ok": False, "text": f"error: {e}"}
        except sqlite3.Error as e:
            return {"ok": False, "text": _explain(e, lim)}
        except MemoryError:                   # SQLITE_NOMEM: the heap limit
            return {"ok": False, "text": "error: the query needs more memory than the sandbox allows; narrow it down"}
        except (ValueError, OverflowError, RecursionError) as e:
            return {"ok": False, "text": f"error: {type(e).__name__}: {str(e)[:200]}"}
        finally:
            if cur is not None:
                try:
                    cur.close()
                except sqlite3.Error:
                    pass
        return {"ok": True, "text": render(header, rows, more, truncated, lim),
                "rows_shown": len(rows), "rows_total": len(rows) + more, "truncated": truncated}

    def close(self) -> None:
        self.conn.close()


NOT_ALLOWED = "error: not allowed: the sandbox runs read-only SELECT queries over the org's tables"


def _cpu_limit(seconds: float) -> None:
    """Let this process use ``seconds`` more CPU (and a margin) before the kernel stops it."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    total = used.ru_utime + used.ru_stime
    soft = math.ceil(total + seconds) + 2
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def _explain(e: sqlite3.Error, lim: dict[str, Any]) -> str:
    msg = str(e)
    if "interrupted" in msg:
        return (f"error: the query was stopped after {lim['time_limit_s']:g} s or "
                f"{lim['max_vm_steps']:,} steps; narrow it down (filters, LIMIT)")
    if "not authorized" in msg or "prohibited" in msg:
        return NOT_ALLOWED
    if "out of memory" in msg:
        return "error: the query needs more memory than the sandbox allows; narrow it down"
    return f"error: {msg[:300]}"


def render(header: list[str], rows: list[tuple[object, ...]], more: int, truncated: bool,
           lim: dict[str, Any]) -> str:
    """The observation: a header line, one line per row (cells cut), the count of rows not shown."""
    if not header:
        return "(no result)"
    lines = [" | ".join(header)]
    for row in rows:
        lines.append(" | ".join(_cell(v, lim["max_cell_chars"]) for v in row))
    if not rows:
        lines.append("(0 rows)")
    text = "\n".join(lines)
    if len(text) > lim["max_chars"]:
        text = text[:lim["max_chars"]].rsplit("\n", 1)[0] + f"\n[cut at {lim['max_chars']} characters]"
    if more:
        text += f"\n... {more}{'+' if truncated else ''} more rows"
    return text


def _cell(value: object, cap: int) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    text = str(value).replace("\n", " ").replace("|", "/")
    return text if len(text) <= cap else text[:cap - 1] + "…"


def _handle(req: dict[str, Any], conns: dict[str, _Conn]) -> dict[str, Any]:
    key = json.dumps(req["db"], sort_keys=True)
    conn = conns.pop(key, None)
    if conn is None:
        try:
            conn = _Conn(req["db"])
        except (ValueError, sqlite3.Error, OSError) as e:
            return {"ok": False, "open_error": str(e)[:300]}
        while len(conns) >= MAX_CONNECTIONS:
            conns.pop(next(iter(conns))).close()
    conns[key] = conn                         # most recently used last
    if req["op"] == "open":
        return {"ok": True, "tables": conn.tables, "hidden": sorted(conn.hidden)}
    reply = conn.run(req["sql"])
    reply["peak_kb"] = _peak_kb()
    return reply


def _peak_kb() -> int:
    """This process's peak resident memory (kB): ``VmHWM``, which starts afresh at exec (``ru_maxrss``
    keeps the parent's peak across fork and exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str]) -> int:
    as_bytes = int(argv[1]) if len(argv) > 1 else 0
    if as_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (as_bytes, as_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)        # Ctrl-C reaches the parent, which closes us
    sqlite3.connect(":memory:").execute(f"PRAGMA hard_heap_limit = {HEAP_LIMIT_BYTES}").close()
    conns: dict[str, _Conn] = {}
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    for line in stdin:
        try:
            reply = _handle(json.loads(line), conns)
        except MemoryError:
            reply = {"ok": False, "text": "error: the query needs more memory than the sandbox allows"}
        except Exception as e:  # noqa: BLE001  (a bad request must not end the worker)
            reply = {"ok": False, "text": f"error: {type(e).__name__}: {str(e)[:200]}"}
        stdout.write(json.dumps(reply).encode() + b"\n")
        stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
