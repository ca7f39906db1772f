"""The POLICY oracles: they must solve every episode of their tasks through the sandbox alone, finding
the policy articles, the quote lines and the transcripts themselves (a question-only episode shows none)."""

from __future__ import annotations

from typing import Any

import pytest

from seccrm.data import build_suite, load_split
from seccrm.world.oracle import oracle_table

POLICY = ("lead_qualification", "quote_approval", "invalid_config", "policy_violation_identification")


@pytest.fixture(scope="module")
def policy_rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    path = tmp_path_factory.mktemp("oracle_policy") / "agentic"
    build_suite(path, seed=0, size="tiny", train_per_task=12, test_per_task=6, progress=False, mode="agentic")
    insts = [i for s in ("train", "val", "test") for i in load_split(path, s) if i["task"] in POLICY]
    return oracle_table(insts, path / "org.sqlite")


def test_every_policy_episode_is_solved_through_the_sandbox(policy_rows: list[dict[str, Any]]) -> None:
    failed = [r for r in policy_rows if not r["correct"]]
    assert not failed, "\n".join(f"{r['id']}: {r.get('error')} (answer {r.get('answer')!r}, gold {r.get('gold')})"
                                 for r in failed[:5])
    assert {(r["task"], r["difficulty"]) for r in policy_rows} == {
        (t, d) for t in POLICY for d in ("easy", "medium", "hard")}
    assert all(r["queries"] >= 3 and r["failed_queries"] == 0 for r in policy_rows)


def test_the_policy_golds_are_not_all_none(policy_rows: list[dict[str, Any]]) -> None:
    """The oracles name articles and factors, not only "None": both kinds of gold are solved."""
    for task in POLICY:
        golds = [r["gold"] for r in policy_rows if r["task"] == task]
        assert any(g != ["None"] for g in golds), task
