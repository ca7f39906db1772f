"""The agentic sandbox: read-only, bounded in time and output, never raising on hostile SQL."""

from __future__ import annotations

import hashlib
import resource
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seccrm.world.sandbox import Sandbox, SandboxLimits, schema_text

LIMIT_S = 0.5
MARGIN_S = 0.5
HOSTILE = [
    "DELETE FROM Account", "UPDATE Account SET Name = 'x'", "INSERT INTO Account (Id) VALUES ('x')",
    "DROP TABLE Account", "CREATE TABLE t (x)", "CREATE TEMP TABLE t AS SELECT * FROM Account",
    "CREATE VIEW v AS SELECT 1", "ALTER TABLE Account ADD COLUMN x", "ATTACH DATABASE '/tmp/x.db' AS x",
    "ATTACH ':memory:' AS m", "DETACH main", "PRAGMA writable_schema = 1", "PRAGMA query_only = 0",
    "PRAGMA journal_mode = DELETE", "VACUUM", "VACUUM INTO '/tmp/copy.db'", "REINDEX", "ANALYZE",
    "BEGIN", "COMMIT", "SAVEPOINT a", "SELECT load_extension('/lib/x.so')",
    "SELECT randomblob(1000000000)", "SELECT zeroblob(2000000000)", "SELECT hex(randomblob(600000000))",
    "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r",
    "WITH RECURSIVE r(x) AS (SELECT 'a' UNION ALL SELECT x || x FROM r) SELECT length(x) FROM r",
    'SELECT count(*) FROM "Case" a, "Case" b, "Case" c',
    'SELECT a.Id FROM "Case" a, "Case" b, Account c ORDER BY a.Subject || b.Subject || c.Name',
    "SELECT printf('%.*c', 1000000000, 'x')", "SELECT 1; DELETE FROM Account",
    "SELECT '" + "x" * 100_000 + "'", "SELECT 'é∆😀\u202e'", "SELECT * FROM Account\x00; DROP TABLE Account",
    "", "   ", "SELECT", "SELECT * FROM nosuch", "SELECT * FROM Account WHERE", "\ufeffSELECT 1",
]


@pytest.fixture()
def org(tiny_suite: Path) -> Path:
    return tiny_suite / "org.sqlite"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_plain_reads_answer_as_a_compact_table(org: Path) -> None:
    with Sandbox(org, SandboxLimits(max_rows=3)) as box:
        r = box.run("SELECT Id, Name FROM Account ORDER BY Id")
        assert r.ok and r.rows_shown == 3 and r.rows_total > 3
        lines = r.text.splitlines()
        assert lines[0] == "Id | Name" and lines[-1] == f"... {r.rows_total - 3} more rows"
        r = box.run("SELECT Name FROM Account WHERE Id = 'nope'")
        assert r.ok and r.text == "Name\n(0 rows)"
        r = box.run('WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n LIMIT 3) SELECT x FROM n')
        assert r.ok and r.text.splitlines()[1:] == ["1", "2", "3"]


def test_hostile_sql_is_an_error_observation_bounded_in_time_and_the_org_never_changes(org: Path) -> None:
    before = _sha(org)
    with Sandbox(org, SandboxLimits(time_limit_s=LIMIT_S)) as box:
        for sql in HOSTILE:
            t0 = time.monotonic()
            r = box.run(sql)
            assert time.monotonic() - t0 < LIMIT_S + MARGIN_S, sql[:80]
            assert len(r.text) < 3_000, sql[:80]
            if sql.strip().upper().startswith(("DELETE", "UPDATE", "INSERT", "DROP", "CREATE", "ATTACH",
                                               "PRAGMA", "VACUUM", "BEGIN")):
                assert not r.ok and r.text.startswith("error:"), sql
        assert box.run("SELECT COUNT(*) FROM Account").ok          # still usable afterwards
    assert _sha(org) == before
    assert not Path("/tmp/copy.db").exists() or Path("/tmp/copy.db").stat().st_mtime < time.time() - 60


def test_memory_stays_bounded_under_the_worst_queries(org: Path) -> None:
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with Sandbox(org, SandboxLimits(time_limit_s=LIMIT_S)) as box:
        for sql in HOSTILE:
            box.run(sql)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    assert grown_mb < 200, f"peak RSS grew {grown_mb:.0f} MB"


SQL_WORDS = st.sampled_from(["SELECT", "FROM", "WHERE", "Account", '"Case"', "Lead", "*", ",", "(", ")", "JOIN",
                             "ON", "=", "1", "'x'", "UNION", "ALL", "WITH", "RECURSIVE", "ORDER BY", "LIMIT",
                             "count(*)", "randomblob(99999999)", "||", ";", "DELETE", "ATTACH", "PRAGMA", "--",
                             "/*", "\x00", "é", "NULL", "GROUP BY", "Id", "Name", "r(x) AS", "x + 1"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(SQL_WORDS, max_size=25), noise=st.text(max_size=30))
def test_any_text_is_answered_in_time_without_raising(org: Path, words: list[str], noise: str) -> None:
    before = org.stat().st_mtime_ns
    with Sandbox(org, SandboxLimits(time_limit_s=0.2)) as box:
        t0 = time.monotonic()
        r = box.run(" ".join(words) + noise)
        assert time.monotonic() - t0 < 0.2 + MARGIN_S
        assert isinstance(r.text, str) and (r.ok or r.text.startswith("error:"))
    assert org.stat().st_mtime_ns == before


def test_missing_or_foreign_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Sandbox(tmp_path / "none.sqlite")
    (tmp_path / "x.sqlite").write_text("not a database")
    with pytest.raises(ValueError, match="not an SQLite database"):
        Sandbox(tmp_path / "x.sqlite")


def test_schema_text_lists_every_table_with_typed_columns(org: Path) -> None:
    text = schema_text(org)
    assert "Account(Id TEXT, Name TEXT" in text and "Case(" in text
    assert len(text.splitlines()) >= 20
