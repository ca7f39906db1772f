"""The scripted analysts: the framework (reading results and questions) and the ANALYTICS oracles,
which must solve every episode of their tasks through the sandbox alone."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from seccrm.data import build_suite, load_split
from seccrm.world.oracle import OracleError, Question, oracle_table, parse_result
from seccrm.world.sandbox import Sandbox, SandboxLimits, schema_text

ANALYTICS = ("handle_time", "transfer_count", "top_issue_identification", "monthly_trend_analysis",
             "best_region_identification", "sales_amount_understanding", "sales_cycle_understanding",
             "conversion_rate_comprehension")


@pytest.fixture(scope="module")
def agentic_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("oracle") / "agentic"
    build_suite(path, seed=0, size="tiny", train_per_task=12, test_per_task=6, progress=False, mode="agentic")
    return path


def test_every_analytics_episode_is_solved_through_the_sandbox(agentic_suite: Path) -> None:
    insts = [i for s in ("train", "val", "test") for i in load_split(agentic_suite, s) if i["task"] in ANALYTICS]
    rows = oracle_table(insts, agentic_suite / "org.sqlite")
    failed = [r for r in rows if not r["correct"]]
    assert not failed, failed[:5]
    assert {r["task"] for r in rows} == set(ANALYTICS)
    assert all(r["queries"] >= 1 and r["failed_queries"] == 0 for r in rows)
    levels = {(r["task"], r["difficulty"]) for r in rows}
    assert len(levels) == 3 * len(ANALYTICS)


def test_a_wrong_oracle_is_caught(agentic_suite: Path) -> None:
    """The check can fail: an episode answered with another candidate is scored wrong."""
    from seccrm.world.episode import run_episode

    inst = next(i for i in load_split(agentic_suite, "train") if i["task"] == "handle_time")
    other = next(a for a in Question(inst["messages"][-1]["content"]).ids("005") if a != inst["answer"][0])
    ep = run_episode(lambda m: (f"<answer>{other}</answer>", 0), inst, agentic_suite / "org.sqlite")
    assert ep.score()["correct"] is False


def test_parse_result_reads_tables_and_refuses_cut_results(tiny_suite: Path) -> None:
    org = tiny_suite / "org.sqlite"
    with Sandbox(org, SandboxLimits(max_rows=3, max_cell_chars=20)) as box:
        rows = parse_result(f"<result>\n{box.run('SELECT Id, NULL AS n FROM Account ORDER BY Id LIMIT 2').text}\n</result>")
        assert [set(r) for r in rows] == [{"Id", "n"}] * 2 and rows[0]["n"] is None
        assert parse_result(box.run("SELECT Id FROM Account WHERE 0").text) == []
        with pytest.raises(OracleError, match="cut"):
            parse_result(box.run("SELECT Id FROM Account").text)                 # more than 3 rows
        with pytest.raises(OracleError, match="cut"):
            parse_result(box.run("SELECT FAQ_Answer__c FROM Knowledge__kav LIMIT 1").text)
        with pytest.raises(OracleError, match="failed"):
            parse_result(box.run("SELECT nope FROM Account").text)


def test_question_windows_follow_the_stated_definitions() -> None:
    def window(text: str) -> tuple[dt.date, dt.date]:
        w = Question(f"Today's date: 2025-06-30\n\nQuestion: {text}\n\nAnswer format: x").window()
        return w.start, w.end

    d = dt.date
    assert window("cases created in March 2024?") == (d(2024, 3, 1), d(2024, 4, 1))
    assert window("created in Q4 2023 and") == (d(2023, 10, 1), d(2024, 1, 1))
    assert window("created in Winter 2025,") == (d(2024, 12, 1), d(2025, 3, 1))
    assert window("created from November 2024 to January 2025, is") == (d(2024, 11, 1), d(2025, 2, 1))
    assert window("in the past 3 months") == (d(2025, 3, 1), d(2025, 6, 1))
    assert window("in the past 2 quarters") == (d(2024, 10, 1), d(2025, 4, 1))
    with pytest.raises(OracleError):
        window("at some point")


def test_hidden_columns_read_as_null_and_are_not_in_the_schema(tiny_suite: Path) -> None:
    org = tiny_suite / "org.sqlite"
    with Sandbox(org) as box:
        assert box.run("SELECT COUNT(*) AS n FROM Knowledge__kav WHERE PolicyRule__c IS NOT NULL").text == "n\n0"
        assert box.run("SELECT COUNT(*) AS n FROM Lead WHERE Budget__c > 0 OR NeedFamily__c != ''").text == "n\n0"
        assert box.run("SELECT MAX(OfferedSolution__c) AS s FROM \"Case\"").text == "s\nNULL"
        assert box.run("SELECT COUNT(*) AS n FROM Knowledge__kav WHERE FAQ_Answer__c IS NOT NULL").text != "n\n0"
    with Sandbox(org, hidden={}) as box:                                   # nothing hidden when asked
        assert box.run("SELECT COUNT(*) AS n FROM Knowledge__kav WHERE PolicyRule__c IS NOT NULL").text != "n\n0"
    schema = schema_text(org)
    for column in ("PolicyRule__c", "Budget__c", "TimelineDays__c", "NeedFamily__c", "OfferedSolution__c",
                   "Competitors__c", "Topics__c"):
        assert column not in schema
    assert "FAQ_Answer__c" in schema and "TranscriptBody__c" in schema
