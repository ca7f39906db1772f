"""Read-only SQL over an org, for agentic episodes: the model writes a query, the sandbox answers
with a compact table or an error message, and nothing the model writes can change the org, read
another file, read the answer key, or hold the process for long or take much memory.

Defences, each one enough on its own for what it guards:

- agents query **their own copy of the org**, without the answer key: `seccrm.world.agent_org`
  drops the hidden columns (``AGENT_HIDDEN_COLUMNS``: a seccrm org's JSON rules and the facts gold
  answers are computed from) from a copy built once per suite; `seccrm.world.episode` opens that
  copy, the verifiers and the suite checker the full org;
- every query runs in a **worker process** (`seccrm.world.sandbox_worker`, reused across queries
  and sandboxes) under ``RLIMIT_AS`` (``worker_memory_bytes``), ``RLIMIT_CPU``, no file writes,
  SQLite's hard heap limit with temporary storage in memory, and SQLite's own limits (values of
  ``max_value_bytes``, SQL of ``max_sql_chars``, LIKE patterns, columns, expression depth, compound
  selects, function arguments, program size, no attached databases). A progress handler stops a
  query after ``time_limit_s`` or ``max_vm_steps``; work that no progress handler reaches (one long
  ``trim`` / ``LIKE`` / ``instr`` call, a query that takes long to compile) is ended by the parent,
  which kills the worker ``kill_after_s`` later, answers with an error and starts a new one;
- the file is opened ``mode=ro`` with ``query_only`` and ``trusted_schema = OFF``; an authorizer
  allows SELECT, reads of the main database (the org's tables and the query's own CTEs) and a list
  of plain functions; hidden columns read as NULL and are left out of the schema the agent is shown,
  and, since SQLite does not consult the authorizer for the columns a ``USING`` or ``NATURAL`` join
  compares, a sandbox opened on a file that still has hidden columns (a full org: the second layer)
  refuses NATURAL joins and USING joins in queries that name a hidden column; everything else (writes, CREATE of any kind, ATTACH, PRAGMA,
  transactions, ``load_extension``, ``randomblob`` / ``zeroblob``, ``printf``) is denied;
- at most ``max_rows`` rows are shown and at most ``count_rows`` are counted ("N more rows"), and
  the rendered table is cut at ``max_chars`` characters.

Every failure comes back as ``QueryResult(ok=False, text="error: ...")``, never as an exception:
hostile SQL is an observation for the model, not a crash of the trainer. docs/failure-modes.md has
the measured bounds.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seccrm.world.org.schema import AGENT_HIDDEN_COLUMNS, META_TABLE
from seccrm.world.sandbox_pool import Worker, acquire, release
from seccrm.world.sandbox_worker import ALLOWED_FUNCTIONS

__all__ = ["ALLOWED_FUNCTIONS", "QueryResult", "Sandbox", "SandboxLimits", "default_hidden", "schema_text"]


@dataclass(frozen=True)
class SandboxLimits:
    """How much one query may take and show. Defaults suit a small model on CPU."""

    time_limit_s: float = 1.5
    """Wall time per query; a longer one is interrupted."""
    kill_after_s: float = 0.5
    """Grace after ``time_limit_s`` before the worker is killed (work no progress handler reaches)."""
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
    max_value_bytes: int = 16_384
    """Largest string or blob a query may build or read (SQLITE_LIMIT_LENGTH); a seccrm org's longest
    value is under 2 KB. An imported org with longer values needs more."""
    max_sql_chars: int = 4_000
    """Longest query text accepted."""
    worker_memory_bytes: int = 512 * 2**20
    """Address space of the worker process (RLIMIT_AS)."""

    def __post_init__(self) -> None:
        if self.time_limit_s <= 0 or self.kill_after_s <= 0:
            raise ValueError("time_limit_s and kill_after_s must be > 0")
        if self.worker_memory_bytes < 64 * 2**20:
            raise ValueError("worker_memory_bytes below 64 MB leaves the worker no room to start")


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
    """Read-only queries over one org file, run in a worker process.

    >>> box = Sandbox("data/tiny/agent_org.sqlite")                  # doctest: +SKIP
    >>> print(box.run("SELECT COUNT(*) AS n FROM Account").text)     # doctest: +SKIP
    n
    60
    >>> box.close()                                                  # doctest: +SKIP

    ``close()`` (or the ``with`` block) hands the worker back for the next sandbox; one that is never
    closed hands it back when it is garbage-collected.
    """

    def __init__(self, org_path: str | Path, limits: SandboxLimits | None = None,
                 hidden: Mapping[str, tuple[str, ...]] | None = None):
        self.path = Path(org_path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no org database at {self.path}")
        self.limits = limits or SandboxLimits()
        candidates = AGENT_HIDDEN_COLUMNS if hidden is None else hidden
        self._spec = {"path": str(self.path.resolve()),
                      "limits": dataclasses.asdict(self.limits),
                      "hidden": sorted([t, c] for t, cols in candidates.items() for c in cols),
                      "hidden_if_table": META_TABLE if hidden is None else None}
        self._lock = threading.Lock()
        self._worker: Worker | None = acquire(self.limits.worker_memory_bytes)
        self.peak_rss_mb = 0.0
        """The worker's peak resident memory over this sandbox's queries (MB; 0 before any)."""
        reply = self._call({"op": "open", "db": self._spec}, self.limits.time_limit_s + 5.0)
        if reply is None or "open_error" in reply:
            self.close()
            why = "the worker did not answer" if reply is None else reply["open_error"]
            raise ValueError(why if "not an SQLite database" in why else f"cannot open {self.path}: {why}")
        self.tables: set[str] = set(reply["tables"])
        self.hidden: set[tuple[str, str]] = {(t, c) for t, c in reply["hidden"]}

    @property
    def worker_pid(self) -> int | None:
        """The worker process's id (None once closed)."""
        return self._worker.pid if self._worker is not None else None

    def _call(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
        """One request to the worker; None when it did not answer in time or died (it is then killed
        and a fresh one takes its place)."""
        if self._worker is None:
            raise RuntimeError("the sandbox is closed")
        reply = self._worker.call(request, timeout_s)
        if reply is None:
            self._worker.kill()
            self._worker = acquire(self.limits.worker_memory_bytes)
        return reply

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
        with self._lock:
            reply = self._call({"op": "run", "db": self._spec, "sql": sql}, lim.time_limit_s + lim.kill_after_s)
        seconds = time.monotonic() - t0
        if reply is None:
            return QueryResult(False, f"error: the query was stopped after {lim.time_limit_s + lim.kill_after_s:g} s "
                                      "(or ran out of memory); narrow it down (filters, LIMIT, shorter strings)",
                               seconds=seconds)
        self.peak_rss_mb = max(self.peak_rss_mb, float(reply.get("peak_kb", 0)) / 1024)
        if "open_error" in reply:
            return QueryResult(False, f"error: {reply['open_error']}", seconds=seconds)
        return QueryResult(bool(reply["ok"]), str(reply["text"]), int(reply.get("rows_shown", 0)),
                           int(reply.get("rows_total", 0)), bool(reply.get("truncated", False)), seconds)

    def close(self) -> None:
        """Hand the worker back (idempotent)."""
        worker, self._worker = getattr(self, "_worker", None), None
        if worker is not None:
            release(worker)

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def default_hidden(tables: set[str]) -> dict[str, tuple[str, ...]]:
    """The columns hidden from agents in an org with these tables: ``AGENT_HIDDEN_COLUMNS`` for a
    seccrm org (it has the ``OrgInfo`` table), none for any other (an imported CRMArena-Pro org)."""
    return dict(AGENT_HIDDEN_COLUMNS) if META_TABLE in tables else {}


def open_untrusted(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to an org file from anywhere (``trusted_schema = OFF``: no function
    of the file's schema runs with more rights than a query's); ValueError when it is not SQLite."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no org database at {p}")
    conn = sqlite3.connect(p.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        conn.execute("PRAGMA trusted_schema = OFF")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as e:
        conn.close()
        raise ValueError(f"{p} is not an SQLite database ({e})") from None
    return conn


def schema_text(org_path: str | Path, max_columns: int = 60) -> str:
    """The org's tables and columns with their types, one line per table, introspected from the file
    (works for any SQLite org: seccrm's or an imported CRMArena-Pro one), without hidden columns."""
    conn = open_untrusted(org_path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        hidden = {(t, c) for t, cols in default_hidden(set(names)).items() for c in cols}
        lines = []
        for name in names:
            cols = [f"{c[1]} {c[2] or 'TEXT'}".strip() for c in conn.execute("SELECT * FROM pragma_table_info(?)", (name,))
                    if (name, c[1]) not in hidden]
            shown = cols[:max_columns] + ([f"... {len(cols) - max_columns} more"] if len(cols) > max_columns else [])
            lines.append(f"{name}({', '.join(shown)})")
        return "\n".join(lines)
    except sqlite3.DatabaseError as e:
        raise ValueError(f"{org_path} is not a readable SQLite database ({e})") from None
    finally:
        conn.close()
