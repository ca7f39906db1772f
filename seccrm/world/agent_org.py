"""The agents' copy of an org: the same tables and rows without the answer key.

An agentic episode queries this copy, never the org the verifiers and the task generators read. The
columns of ``AGENT_HIDDEN_COLUMNS`` (a seccrm org's JSON rules and the facts that gold answers are
computed from and that no question entitles the agent to see) are dropped from it, so that no SQL,
however written, can read them: the sandbox's authorizer, which reads them as NULL, is only a second
layer, and SQLite does not consult it for the columns that a ``USING`` or ``NATURAL`` join compares.

``seccrm build`` writes the copy once per suite (``agent_org.sqlite`` beside ``org.sqlite``) and
records its sha256 in ``suite.json``; ``seccrm check`` verifies it (:func:`agent_copy_problems`).
For a suite built before copies existed, :func:`agent_org` builds it on first use, atomically
(written under a temporary name, then renamed), in the suite folder, or in the system's temporary
folder when that one is read-only. An org with nothing to hide (an imported CRMArena-Pro org) is
its own agents' copy.

The copy records the sha256 of the org it was made from (``OrgInfo.agent_copy_of``), so a copy left
over from another org is never used: it is rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
import threading
from pathlib import Path

from seccrm.files import sha256_file
from seccrm.world.org.schema import AGENT_HIDDEN_COLUMNS, META_TABLE, qi
from seccrm.world.sandbox import open_untrusted

AGENT_ORG_PREFIX = "agent_"
SOURCE_KEY = "agent_copy_of"
"""The ``OrgInfo`` key of the copy that holds the sha256 of the org it was made from."""


def agent_org_path(org_path: str | Path) -> Path:
    """Where the agents' copy of an org lives: ``agent_org.sqlite`` beside ``org.sqlite``."""
    p = Path(org_path)
    return p.with_name(AGENT_ORG_PREFIX + p.name)


def hidden_columns(path: str | Path) -> list[tuple[str, str]]:
    """The (table, column) pairs of the file that agents must not read: those of
    ``AGENT_HIDDEN_COLUMNS`` that it has, for a seccrm org (one with ``OrgInfo``); none for others."""
    conn = open_untrusted(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if META_TABLE not in tables:
            return []
        out = []
        for table, cols in sorted(AGENT_HIDDEN_COLUMNS.items()):
            if table in tables:
                have = {r[0] for r in conn.execute("SELECT name FROM pragma_table_info(?)", (table,))}
                out += [(table, c) for c in cols if c in have]
        return out
    finally:
        conn.close()


def build_agent_org(org_path: str | Path, out: str | Path | None = None) -> Path:
    """Write the agents' copy of ``org_path`` to ``out`` (default :func:`agent_org_path`) atomically;
    returns ``out``. The hidden columns are dropped with ``secure_delete`` on and the file vacuumed,
    so that not even its free pages hold a hidden value."""
    src = Path(org_path)
    dst = Path(out) if out is not None else agent_org_path(src)
    hidden = hidden_columns(src)
    digest = sha256_file(src)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        conn = open_untrusted(src)
        try:
            conn.execute("VACUUM INTO ?", (str(tmp),))
        finally:
            conn.close()
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA trusted_schema = OFF")
            conn.execute("PRAGMA secure_delete = ON")
            conn.execute("PRAGMA journal_mode = OFF")
            for table, col in hidden:
                conn.execute(f"ALTER TABLE {qi(table)} DROP COLUMN {qi(col)}")
            if hidden:
                conn.execute(f"INSERT OR REPLACE INTO {qi(META_TABLE)} VALUES (?, ?)", (SOURCE_KEY, digest))
            conn.execute("VACUUM")
        finally:
            conn.close()
        left = hidden_columns(tmp)
        if left:
            raise RuntimeError(f"the agents' copy of {src} still has {left}")
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def agent_copy_problems(org_path: str | Path, copy_path: str | Path) -> list[str]:
    """Why ``copy_path`` is not a sound agents' copy of ``org_path`` (empty: it is): a hidden column
    still there, a table of the org missing, or made from another org."""
    org, copy = Path(org_path), Path(copy_path)
    if not copy.is_file():
        return [f"{copy} is missing"]
    try:
        left = hidden_columns(copy)
        conn = open_untrusted(copy)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            source = (conn.execute(f"SELECT value FROM {qi(META_TABLE)} WHERE key = ?", (SOURCE_KEY,)).fetchone()
                      if META_TABLE in tables else None)
        finally:
            conn.close()
        src = open_untrusted(org)
        try:
            wanted = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            src.close()
    except (ValueError, sqlite3.Error) as e:
        return [f"{copy} is unreadable ({e})"]
    problems = [f"{copy} holds the hidden column {t}.{c}" for t, c in left]
    problems += [f"{copy} lacks the table {t}" for t in sorted(wanted - tables)]
    if source is None or source[0] != sha256_file(org):
        problems.append(f"{copy} was not made from {org} (its {SOURCE_KEY} differs from the org's sha256)")
    return problems


_lock = threading.Lock()
_ready: dict[tuple[str, int, int], Path] = {}


def agent_org(org_path: str | Path) -> Path:
    """The file agents query for the org at ``org_path``: its agents' copy, built (once per org
    version and process, atomically) where it is missing or stale; the org itself when it has
    nothing to hide."""
    src = Path(org_path).resolve()
    if not src.is_file():
        raise FileNotFoundError(f"no org database at {src}")
    st = src.stat()
    key = (str(src), st.st_size, st.st_mtime_ns)
    with _lock:
        done = _ready.get(key)
        if done is not None and done.is_file():
            return done
        if not hidden_columns(src):
            result = src
        else:
            result = agent_org_path(src)
            if agent_copy_problems(src, result):
                try:
                    build_agent_org(src, result)
                except OSError:                # a read-only suite folder
                    result = _fallback_path(src)
                    if agent_copy_problems(src, result):
                        build_agent_org(src, result)
        _ready[key] = result
        return result


def _fallback_path(src: Path) -> Path:
    folder = Path(tempfile.gettempdir()) / "seccrm-agent-orgs"
    folder.mkdir(exist_ok=True)
    return folder / f"{hashlib.sha256(str(src).encode()).hexdigest()[:16]}-{src.name}"
