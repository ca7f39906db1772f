"""A hostile corpus against the agentic sandbox, at its default limits: every query and every episode
is refused or bounded (under 2.5 s and 600 MB), the org files never change, and no observation holds
a value of the answer key (the columns agents must not read). Every case of issue 28 is here: the
USING / NATURAL join leak, one-call string functions on long values, compile-time CTE expansion,
thousands of result columns, temporary storage, quadratic turn parsing, answers over the token budget.
"""

from __future__ import annotations

import hashlib
import resource
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seccrm.world.agent_org import agent_org
from seccrm.world.episode import Episode, EpisodeSettings, question_only, schema_for
from seccrm.world.org.schema import AGENT_HIDDEN_COLUMNS
from seccrm.world.sandbox import Sandbox

WALL_S = 2.5
PEAK_MB = 600

# --- the corpus --------------------------------------------------------------------------------

LEAKS = [   # issue 28: the authorizer is not consulted for the columns a USING / NATURAL join compares
    "SELECT Id, PolicyRule__c FROM Knowledge__kav FULL JOIN (SELECT 1 AS PolicyRule__c WHERE 0) USING (PolicyRule__c)",
    "SELECT Id, Budget__c FROM Lead FULL JOIN (SELECT 1 AS Budget__c WHERE 0) USING (Budget__c)",
    "SELECT Id, TimelineDays__c FROM Lead FULL JOIN (SELECT 1 AS TimelineDays__c WHERE 0) USING (TimelineDays__c)",
    "SELECT Id, NeedFamily__c FROM Lead FULL JOIN (SELECT 1 AS NeedFamily__c WHERE 0) USING (NeedFamily__c)",
    'SELECT Id, OfferedSolution__c FROM "Case" NATURAL FULL JOIN (SELECT 1 AS OfferedSolution__c WHERE 0)',
    'SELECT a.Id, b.Id FROM "Case" a JOIN "Case" b USING (OfferedSolution__c) WHERE a.Id < b.Id',
    "SELECT Id, Competitors__c FROM VoiceCallTranscript__c FULL JOIN (SELECT 1 AS Competitors__c WHERE 0) "
    "USING (Competitors__c)",
    "SELECT Id, Topics__c FROM VoiceCallTranscript__c NATURAL LEFT JOIN (SELECT 1 AS Topics__c WHERE 0)",
    "SELECT * FROM Lead NATURAL FULL JOIN (SELECT 1 AS Budget__c, 2 AS TimelineDays__c WHERE 0)",
    "SELECT Id, PolicyRule__c FROM (SELECT 1 AS PolicyRule__c WHERE 0) RIGHT JOIN Knowledge__kav USING (PolicyRule__c)",
    'SELECT OfferedSolution__c, count(*) FROM "Case" NATURAL JOIN (SELECT DISTINCT OfferedSolution__c FROM "Case") '
    "GROUP BY 1",
    "SELECT Budget__c FROM Lead", "SELECT PolicyRule__c FROM Knowledge__kav", 'SELECT "Topics__c" FROM VoiceCallTranscript__c',
    "SELECT [NeedFamily__c] FROM Lead", "SELECT `TimelineDays__c` FROM Lead", "SELECT l.budget__C FROM Lead l",
    "SELECT * FROM Lead", "SELECT * FROM Knowledge__kav", 'SELECT * FROM "Case"', "SELECT * FROM VoiceCallTranscript__c",
    "SELECT sql FROM sqlite_master", "SELECT name FROM pragma_table_info('Lead')",
    "SELECT * FROM Lead l1 NATURAL JOIN Lead l2", 'SELECT count(*) FROM "Case" a NATURAL JOIN "Case" b',
]


def _long(n: int, seed: str = "ab") -> str:
    """A subquery yielding one string of about ``n`` characters, built by doubling."""
    return (f"(WITH RECURSIVE s(x) AS (SELECT '{seed}' UNION ALL SELECT x || x FROM s WHERE length(x) < {n}) "
            f"SELECT x FROM s ORDER BY length(x) DESC LIMIT 1)")


def _cte_expansion(levels: int, join: bool = False) -> str:
    body = "SELECT a.x FROM c{p} a, c{p} b" if join else "SELECT x FROM c{p} UNION ALL SELECT x FROM c{p}"
    parts = ["c0(x) AS (SELECT 1)"] + [f"c{i}(x) AS ({body.format(p=i - 1)})" for i in range(1, levels + 1)]
    return "WITH " + ", ".join(parts) + f" SELECT count(*) FROM c{levels}"


RESOURCES = [   # issue 28: calls no progress handler interrupts, compile-time memory, temp storage
    f"SELECT length(trim({_long(60_000)}, {_long(30_000, 'ba')}))",
    f"SELECT length(trim({_long(8_192)}, substr({_long(8_192, 'ba')}, 1, 1800)))",
    f"SELECT length(ltrim({_long(8_192)}, substr({_long(8_192, 'ba')}, 1, 1800)))",
    f"SELECT {_long(300_000)} LIKE '%' || {_long(20_000)} || 'c%'",
    f"SELECT {_long(16_000)} LIKE '%' || substr({_long(256)}, 1, 250) || 'c%'",
    f"SELECT {_long(8_192)} GLOB '*' || substr({_long(256)}, 1, 250) || 'c*'",
    f"SELECT instr({_long(900_000)}, {_long(450_000)} || 'c')",
    f"SELECT instr({_long(8_192)}, substr({_long(8_192)}, 1, 4000) || 'c')",
    f"SELECT length(replace({_long(8_192)}, 'a', 'aaaaaaaa'))",
    f"SELECT length(group_concat(x)) FROM (SELECT {_long(8_192)} AS x FROM Account)",
    "SELECT length(group_concat(Description, Description)) FROM \"Case\"",
    _cte_expansion(12), _cte_expansion(20), _cte_expansion(24), _cte_expansion(20, join=True),
    "SELECT " + ",".join(["v"] * 1900) + " FROM (SELECT 1 AS v)",
    "SELECT " + ",".join(["v"] * 300) + f" FROM (SELECT {_long(8_192)} AS v)",
    "WITH RECURSIVE r(x) AS (SELECT 1 UNION SELECT x + 1 FROM r) SELECT count(*) FROM r",
    "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r LIMIT 100000000) SELECT x FROM r ORDER BY x DESC LIMIT 1",
    "WITH RECURSIVE r(x, s) AS (SELECT 1, 'abcdefgh' UNION ALL SELECT x + 1, s || 'abcdefgh' FROM r WHERE x < 2000) "
    "SELECT count(DISTINCT s) FROM r",
    'SELECT a.Id FROM "Case" a, "Case" b, Account c ORDER BY a.Subject || b.Subject || c.Name',
    'SELECT count(*) FROM "Case" a, "Case" b, "Case" c',
    'SELECT DISTINCT a.Description || b.Description FROM "Case" a, "Case" b',
    "SELECT " + " + ".join(["(1"] * 150) + ")" * 150,
    "SELECT " + " UNION SELECT ".join(str(i) for i in range(60)),
    "SELECT coalesce(" + ",".join(["1"] * 40) + ")",
    "SELECT char(" + ",".join(["65"] * 40) + ")",
    "SELECT '" + "x" * 3_990 + "'", "SELECT '" + "é" * 3_000 + "'",
    "SELECT printf('%.*c', 1000000000, 'x')", "SELECT randomblob(1000000000)", "SELECT zeroblob(2000000000)",
    "SELECT load_extension('/lib/x.so')", "SELECT readfile('/etc/passwd')", "SELECT writefile('/tmp/x', 'y')",
    "SELECT fts3_tokenizer('simple')", "SELECT sqlite_offset(Id) FROM Account", "SELECT ?", "SELECT :x, @y, $z",
]

WRITES = [
    "DELETE FROM Account", "UPDATE Account SET Name = 'x'", "INSERT INTO Account (Id) VALUES ('x')",
    "REPLACE INTO Account (Id) VALUES ('x')", "DROP TABLE Account", "DROP INDEX ix_Case_OwnerId",
    "CREATE TABLE t (x)", "CREATE TEMP TABLE t AS SELECT * FROM Account", "CREATE VIEW v AS SELECT 1",
    "CREATE TEMP VIEW v AS SELECT Budget__c FROM Lead", "CREATE INDEX i ON Account (Name)",
    "CREATE TRIGGER tr AFTER INSERT ON Account BEGIN SELECT 1; END", "CREATE VIRTUAL TABLE v USING fts5(x)",
    "ALTER TABLE Account ADD COLUMN x", "ALTER TABLE Account RENAME TO A2", "ATTACH DATABASE '/tmp/x.db' AS x",
    "ATTACH ':memory:' AS m", "DETACH main", "PRAGMA writable_schema = 1", "PRAGMA query_only = 0",
    "PRAGMA trusted_schema = 1", "PRAGMA temp_store = FILE", "PRAGMA hard_heap_limit = 0",
    "PRAGMA journal_mode = DELETE", "PRAGMA table_info(Lead)", "VACUUM", "VACUUM INTO '/tmp/copy28.db'",
    "REINDEX", "ANALYZE", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT a", "RELEASE a", "SELECT 1; DELETE FROM Account",
    "WITH x AS (SELECT 1) DELETE FROM Account", "EXPLAIN SELECT 1", "EXPLAIN QUERY PLAN SELECT * FROM Account",
]

NOISE = ["", "   ", "SELECT", "SELECT * FROM nosuch", "SELECT * FROM Account WHERE", "\ufeffSELECT 1",
         "SELECT 'é∆😀\u202e'", "SELECT * FROM Account\x00; DROP TABLE Account", "SELECT '" + "x" * 100_000 + "'",
         "/*", "--", "SELECT 1 /*", "SELECT ((((((((((1))))))))))", "SELECT 1e999, -1e999, 9223372036854775807 + 1",
         "SELECT abs(-9223372036854775808)", "SELECT 1/0, 1%0", "SELECT CAST(x'ff' AS TEXT)", "SELECT hex(x'00ff')"]

CORPUS = LEAKS + RESOURCES + WRITES + NOISE


def test_the_corpus_is_as_large_as_promised() -> None:
    assert len(CORPUS) >= 100


# --- fixtures ---------------------------------------------------------------------------------

def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def org(tiny_suite: Path) -> Path:
    return tiny_suite / "org.sqlite"


@pytest.fixture(scope="module")
def answer_key(org: Path) -> set[str]:
    """The hidden values that appear nowhere in the agents' copy: an observation holding one leaked it."""
    conn = sqlite3.connect(f"file:{org}?mode=ro", uri=True)
    values: set[str] = set()
    for table, cols in AGENT_HIDDEN_COLUMNS.items():
        for col in cols:
            values |= {str(v) for (v,) in conn.execute(f'SELECT DISTINCT "{col}" FROM "{table}" WHERE "{col}" IS NOT NULL')}
    conn.close()
    copy = agent_org(org).read_bytes()
    key = {v for v in values if len(v) >= 4 and v.encode() not in copy}
    assert len(key) >= 20, "the tiny org should hide enough distinctive values for this test to mean something"
    return key


@pytest.fixture(scope="module")
def box(org: Path) -> Iterator[Sandbox]:
    with Sandbox(agent_org(org)) as b:       # what an episode opens
        yield b


def _bounded(box: Sandbox, sql: str, answer_key: set[str]) -> Any:
    t0 = time.monotonic()
    r = box.run(sql)
    wall = time.monotonic() - t0
    assert wall < WALL_S, f"{wall:.2f} s: {sql[:100]}"
    assert box.peak_rss_mb < PEAK_MB, f"worker peak {box.peak_rss_mb:.0f} MB: {sql[:100]}"
    assert isinstance(r.text, str) and len(r.text) < 3_000 and (r.ok or r.text.startswith("error:")), sql[:100]
    leaked = [v for v in answer_key if v in r.text]
    assert not leaked, f"{sql[:100]} -> {leaked[:2]}"
    return r


# --- queries ----------------------------------------------------------------------------------

def test_every_hostile_query_is_refused_or_bounded_and_leaks_nothing(org: Path, box: Sandbox,
                                                                      answer_key: set[str]) -> None:
    copy = agent_org(org)
    before = (_sha(org), _sha(copy))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for sql in CORPUS:
        r = _bounded(box, sql, answer_key)
        if sql in WRITES[:-2]:
            assert not r.ok, sql
    assert box.run("SELECT COUNT(*) FROM Account").ok                 # still usable afterwards
    assert (_sha(org), _sha(copy)) == before
    assert not Path("/tmp/copy28.db").exists()
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024 < 200


def test_the_using_join_leak_of_issue_28_returns_no_hidden_value(org: Path, box: Sandbox) -> None:
    # On the full org, the authorizer alone let this through with every PolicyRule__c value.
    for sql in LEAKS[:8]:
        r = box.run(sql)
        assert not r.ok or "NULL" in r.text.splitlines()[1], (sql, r.text[:200])
    r = box.run(LEAKS[0])
    assert not r.ok and "PolicyRule__c" in r.text           # the column does not exist in the agents' copy
    # The second layer: a sandbox opened on the full org refuses these joins; plain reads give NULL.
    with Sandbox(org) as full:
        for sql in LEAKS[:11]:
            assert not full.run(sql).ok, sql
        assert full.run("SELECT count(*) AS n FROM Lead WHERE Budget__c IS NOT NULL").text == "n\n0"


def test_a_query_no_progress_handler_reaches_is_bounded_and_the_sandbox_goes_on(box: Sandbox) -> None:
    """A 24-level CTE expansion compiles without the progress handler ever firing (about 48 GB
    unbounded). Whichever bound binds first on this machine, the memory cap (the worker survives) or
    the deadline (the worker is killed and replaced), the query is refused in time and the next runs."""
    pid = box.worker_pid
    t0 = time.monotonic()
    r = box.run(_cte_expansion(24))
    assert time.monotonic() - t0 < WALL_S and not r.ok
    killed = "stopped" in r.text
    assert killed or "memory" in r.text, r.text
    assert (box.worker_pid != pid) == killed                  # killed and replaced only after the deadline
    assert box.run("SELECT count(*) FROM Account").ok


# --- episodes ---------------------------------------------------------------------------------

def _instances(tiny_suite: Path) -> list[dict[str, Any]]:
    from seccrm.data import load_split
    insts = load_split(tiny_suite, "train")
    schema = schema_for(tiny_suite / "org.sqlite")
    by_task: dict[str, dict[str, Any]] = {}
    for i in insts:
        by_task.setdefault(i["task"], question_only(i, schema))
    return list(by_task.values())


TAGS = "<execute>" * 11_000                       # 99 KB of opening tags: quadratic for the old regex
EPISODE_TURNS: list[list[str]] = [
    [f"<execute>{LEAKS[0]}</execute>", f"<execute>{LEAKS[2]}</execute>", "<answer>Timeline</answer>"],
    [f"<execute>{q}</execute>" for q in LEAKS[1:6]] + ["<answer>None</answer>"],
    [TAGS], [TAGS * 2], [("<execute>" + "x" * 90) * 10_000], ["<EXECUTE>" * 50_000 + "</execute" * 50_000],
    ["<answer>" * 20_000 + "</answer>"], ["<execute>SELECT 1</execute>" * 5_000],
    [f"<execute>{RESOURCES[12]}</execute>", "<execute>SELECT count(*) FROM Account</execute>", "<answer>1</answer>"],
    [f"<execute>{RESOURCES[0]}</execute>", f"<execute>{RESOURCES[3]}</execute>", f"<execute>{RESOURCES[6]}</execute>"],
    [f"<execute>{RESOURCES[19]}</execute>", f"<execute>{RESOURCES[21]}</execute>", "<answer>x</answer>"],
    [f"<execute>{w}</execute>" for w in WRITES[:6]],
    ["<execute>SELECT 1</execute><answer>1</answer>", "<answer>2</answer>"],
    ["<answer>1</answer><execute>DELETE FROM Account</execute>"],
    ["<execute>SELECT 1", "no tags at all"], ["<execute></execute>", "<execute>\x00</execute>"],
    ["<ExEcUtE>SELECT Budget__c FROM Lead</eXeCuTe>", "<AnSwEr>None</aNsWeR>"],
    ["<execute>SELECT 'İ' || 'K'</execute>", "<answer>İ</answer>"],
    [f"<execute>{_cte_expansion(20, join=True)}</execute>"] * 3 + ["<answer>None</answer>"],
    ["<execute>SELECT * FROM Knowledge__kav</execute>", "<execute>SELECT * FROM Lead</execute>",
     "<execute>SELECT * FROM VoiceCallTranscript__c</execute>", '<execute>SELECT * FROM "Case"</execute>'],
    ["<execute>" + NOISE[8] + "</execute>", "<answer>" + "y" * 200_000 + "</answer>"],
]


def test_every_hostile_episode_is_bounded_and_leaks_nothing(tiny_suite: Path, org: Path, answer_key: set[str]) -> None:
    assert len(EPISODE_TURNS) >= 20
    insts = _instances(tiny_suite)
    lead = next(i for i in insts if i["task"] == "lead_qualification")
    before = _sha(org)
    for n, turns in enumerate(EPISODE_TURNS):
        inst = lead if n == 0 else insts[n % len(insts)]
        ep = Episode(inst, org, EpisodeSettings(max_turns=8, max_model_tokens=10**7, max_new_tokens_per_turn=10**6))
        for text in turns:
            t0 = time.monotonic()
            reply = ep.act(text, tokens=len(text) // 4)
            assert time.monotonic() - t0 < WALL_S, f"episode {n}: {text[:60]!r}"
            assert reply is None or not [v for v in answer_key if v in reply], f"episode {n} leaked"
            if reply is None:
                break
        ep.stop("test_end")
        assert ep.sandbox.peak_rss_mb < PEAK_MB
        if n == 0:          # the issue's winning exploit: its two queries find nothing to read
            assert [t.query_ok for t in ep.turns[:2]] == [False, False]
    assert _sha(org) == before


def test_an_answer_over_the_token_budget_does_not_score(tiny_suite: Path, org: Path) -> None:
    inst = _instances(tiny_suite)[0]
    gold = f"<answer>{inst['answer'][0]}</answer>"
    s = EpisodeSettings(max_turns=4, max_model_tokens=100, max_new_tokens_per_turn=100)
    ok = Episode(inst, org, s)
    ok.act(gold, tokens=100)
    assert ok.end_reason == "answer" and ok.score()["reward"] == 1.0
    over = Episode(inst, org, s)
    over.act("<execute>SELECT 1</execute>", tokens=60)
    over.act(gold, tokens=41)
    d = over.score()
    assert over.end_reason == "token_budget" and d["reward"] == 0.0 and not d["formatted"] and not d["correct"]


# --- random SQL from the schema -----------------------------------------------------------------

TABLE_COLUMNS = {"Account": ["Id", "Name", "Industry"], "Lead": ["Id", "Status", "Budget__c", "TimelineDays__c"],
                 '"Case"': ["Id", "Subject", "Description", "OfferedSolution__c", "Status"],
                 "Knowledge__kav": ["Id", "Title", "PolicyRule__c"], "VoiceCallTranscript__c": ["Id", "Topics__c"]}
FUNCS = ["trim", "ltrim", "instr", "replace", "substr", "upper", "length", "hex", "group_concat", "coalesce",
         "like", "printf", "randomblob", "count", "max"]


@st.composite
def random_sql(draw: st.DrawFn) -> str:
    t1, t2 = draw(st.sampled_from(sorted(TABLE_COLUMNS))), draw(st.sampled_from(sorted(TABLE_COLUMNS)))
    cols = TABLE_COLUMNS[t1] + TABLE_COLUMNS[t2]
    atom = st.one_of(st.sampled_from(cols), st.just(_long(draw(st.integers(1, 20_000)))),
                     st.text(alphabet="abc%_", max_size=20).map(lambda s: f"'{s}'"), st.integers(-5, 10**6).map(str))
    expr = st.recursive(atom, lambda inner: st.one_of(
        st.tuples(st.sampled_from(FUNCS), st.lists(inner, min_size=1, max_size=3)).map(
            lambda f: f"{f[0]}({', '.join(f[1])})"),
        st.tuples(inner, st.sampled_from(["||", "+", "LIKE", "=", "<"]), inner).map(lambda b: f"({b[0]} {b[1]} {b[2]})")),
        max_leaves=8)
    select = ", ".join(draw(st.lists(expr, min_size=1, max_size=4)))
    join = draw(st.sampled_from(["", f", {t2}", f" NATURAL JOIN {t2}", f" FULL JOIN {t2} USING (Id)",
                                 f" JOIN {t2} USING ({draw(st.sampled_from(cols))})", f" LEFT JOIN {t2} ON 1"]))
    where = draw(st.one_of(st.just(""), expr.map(lambda e: f" WHERE {e}")))
    tail = draw(st.sampled_from(["", " ORDER BY 1", " GROUP BY 1", " LIMIT 5", " ORDER BY random()"]))
    return f"SELECT {select} FROM {t1}{join}{where}{tail}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(sql=random_sql())
def test_random_sql_from_the_schema_is_bounded_and_leaks_nothing(box: Sandbox, answer_key: set[str], sql: str) -> None:
    _bounded(box, sql, answer_key)
