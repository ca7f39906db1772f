"""The agentic sandbox: read-only, bounded in time and output, never raising on hostile SQL; its worker
process; the agents' copy of the org; untrusted org files."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import re
import resource
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seccrm.data.load import AGENT_ORG_FILE
from seccrm.world import sandbox_pool
from seccrm.world.agent_org import (
    agent_copy_problems,
    agent_org,
    agent_org_path,
    build_agent_org,
    hidden_columns,
)
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


# --- the worker process ---------------------------------------------------------------------------

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_each_query_runs_in_a_capped_worker_at_a_few_milliseconds(org: Path) -> None:
    sandbox_pool.close_all()                              # a fresh worker: its peak memory is this test's
    with Sandbox(org) as box:
        pid = box.worker_pid
        assert pid is not None and pid != os.getpid()
        limits = Path(f"/proc/{pid}/limits").read_text()
        assert re.search(r"Max address space\s+536870912\s", limits), limits
        assert re.search(r"Max file size\s+0\s", limits), limits
        box.run("SELECT 1")
        t0 = time.perf_counter()
        for _ in range(100):
            assert box.run("SELECT Name FROM Account WHERE Id = 'x'").ok
        per_query_ms = (time.perf_counter() - t0) * 10
        assert per_query_ms < 20, f"{per_query_ms:.1f} ms a query"
        assert 0 < box.peak_rss_mb < 100


def test_sqlite_limits_bound_values_patterns_columns_and_depth(org: Path) -> None:
    long = "(WITH RECURSIVE s(x) AS (SELECT 'ab' UNION ALL SELECT x || x FROM s WHERE length(x) < 20000) " \
           "SELECT x FROM s ORDER BY length(x) DESC LIMIT 1)"
    mid = long.replace("20000", "8000")                  # 8,192 characters: within the limit
    with Sandbox(org) as box:
        assert "too big" in box.run(f"SELECT length({long})").text
        assert box.run(f"SELECT length({mid})").text.endswith("8192")
        assert "LIKE or GLOB pattern" in box.run(f"SELECT 'a' LIKE substr({mid}, 1, 300)").text
        assert "too many columns" in box.run("SELECT " + ",".join(["1"] * 300)).text
        assert "too many terms in compound SELECT" in box.run(" UNION ".join(["SELECT 1"] * 60)).text
        assert "too many arguments" in box.run("SELECT coalesce(" + ",".join(["1"] * 40) + ")").text
        assert "maximum depth" in box.run("SELECT 1" + " + 1" * 250).text


def test_a_stuck_query_is_killed_and_the_next_one_runs_on_a_fresh_worker(org: Path) -> None:
    expand = "WITH " + ", ".join(["c0(x) AS (SELECT 1)"] + [
        f"c{i}(x) AS (SELECT x FROM c{i - 1} UNION ALL SELECT x FROM c{i - 1})" for i in range(1, 25)]) + \
        " SELECT count(*) FROM c24"               # compiles for minutes: no progress handler runs
    with Sandbox(org, SandboxLimits(time_limit_s=0.3, kill_after_s=0.2)) as box:
        pid = box.worker_pid
        assert pid is not None
        t0 = time.monotonic()
        r = box.run(expand)
        assert time.monotonic() - t0 < 1.5 and not r.ok and "stopped" in r.text
        assert box.worker_pid != pid
        time.sleep(0.1)
        assert not _alive(pid)
        assert box.run("SELECT COUNT(*) FROM Account").ok


def test_closing_leaks_no_worker_process(org: Path) -> None:
    sandbox_pool.close_all()
    boxes = [Sandbox(org) for _ in range(sandbox_pool.MAX_IDLE + 2)]
    pids = [b.worker_pid for b in boxes]
    assert len(set(pids)) == len(boxes)                   # one worker each while open
    for b in boxes:
        b.close()
    b.close()                                             # idempotent
    idle = sandbox_pool.idle_workers()
    assert len(idle) == sandbox_pool.MAX_IDLE
    assert [p for p in pids if p not in idle and p is not None and _alive(p)] == []
    lost = Sandbox(org)                                   # never closed: handed back when collected
    pid = lost.worker_pid
    del lost
    gc.collect()
    assert pid in sandbox_pool.idle_workers()
    sandbox_pool.close_all()
    assert sandbox_pool.idle_workers() == [] and not any(_alive(p) for p in pids if p is not None)
    with Sandbox(org) as box:                             # the pool starts again
        assert box.run("SELECT 1").ok


# --- the agents' copy and untrusted org files ---------------------------------------------------

def test_the_agents_copy_has_no_hidden_column_and_no_hidden_byte(tiny_suite: Path, org: Path) -> None:
    copy = tiny_suite / AGENT_ORG_FILE
    manifest = json.loads((tiny_suite / "suite.json").read_text())
    assert manifest["sha256"][AGENT_ORG_FILE] == _sha(copy)   # built with the suite, hashed
    assert agent_org(org) == copy.resolve() and agent_org_path(org) == copy
    assert hidden_columns(org) and hidden_columns(copy) == []
    assert agent_copy_problems(org, copy) == []
    conn = sqlite3.connect(f"file:{org}?mode=ro", uri=True)
    rules = [v for (v,) in conn.execute("SELECT PolicyRule__c FROM Knowledge__kav WHERE length(PolicyRule__c) > 40")]
    conn.close()
    data = copy.read_bytes()
    assert rules and not any(r.encode()[:60] in data for r in rules)


def test_an_older_suite_gets_its_copy_on_first_use_and_a_stale_copy_is_rebuilt(tmp_path: Path, org: Path) -> None:
    old = tmp_path / "org.sqlite"
    shutil.copy(org, old)
    copy = agent_org(old)                                 # no copy yet: built, atomically
    assert copy == tmp_path / AGENT_ORG_FILE and agent_copy_problems(old, copy) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [AGENT_ORG_FILE, "org.sqlite"]
    shutil.copy(org, copy)                                # a copy that holds the answer key
    assert any("hidden column" in p for p in agent_copy_problems(old, copy))
    other = tmp_path / "b" / "org.sqlite"
    other.parent.mkdir()
    shutil.copy(old, other)
    with sqlite3.connect(other) as c:
        c.execute("UPDATE Account SET Name = Name || 'x'")
    c.close()
    build_agent_org(other, copy)                          # made from another org
    assert any("not made from" in p for p in agent_copy_problems(old, copy))
    os.utime(old)                                         # a new version of the org: checked again
    assert agent_org(old) == copy and agent_copy_problems(old, copy) == []


def test_an_org_file_failing_the_integrity_check_is_refused_at_import(tmp_path: Path) -> None:
    from seccrm.data.importers.crmarena_pro import check_org_file
    p = tmp_path / "org.db"
    with sqlite3.connect(p) as c:
        c.execute("CREATE TABLE t (x TEXT)")
        c.execute("CREATE INDEX i ON t (x)")
        c.executemany("INSERT INTO t VALUES (?)", [(f"value {i} " * 5,) for i in range(3000)])
    c.close()
    check_org_file(p)
    data = bytearray(p.read_bytes())
    data[5 * 4096 + 100:5 * 4096 + 4000] = b"A" * 3900
    p.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="fails SQLite's integrity check"):
        check_org_file(p)
    (tmp_path / "x.db").write_text("not a database")
    with pytest.raises(ValueError, match="not an SQLite database"):
        check_org_file(tmp_path / "x.db")
