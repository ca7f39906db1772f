"""Agentic levels: medium and hard episodes name records, candidates and policies so that the agent
must look them up. Paired with the same build without the rewrites: same golds, every rewritten
episode still solved by the scripted analysts, and with at least one more query per kind rewritten."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import seccrm.data.build as build
from seccrm.data import build_suite, load_split
from seccrm.world.oracle import oracle_table
from seccrm.world.references import KINDS, POLICY_POINTER, rewrite_levels


def _all(path: Path) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for s in ("train", "val", "test") for i in load_split(path, s)}


@pytest.fixture(scope="module")
def paired(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    root = tmp_path_factory.mktemp("levels")
    build_suite(root / "levels", seed=0, size="tiny", train_per_task=12, test_per_task=6, progress=False,
                mode="agentic")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(build, "rewrite_levels", lambda recs, org: recs)
        build_suite(root / "plain", seed=0, size="tiny", train_per_task=12, test_per_task=6, progress=False,
                    mode="agentic")
    return root / "levels", _all(root / "levels"), _all(root / "plain")


def _user(inst: dict[str, Any]) -> str:
    return str(inst["messages"][-1]["content"])


def test_levels_rewrite_what_they_say(paired: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    _, levels, plain = paired
    assert levels.keys() == plain.keys()
    seen = {k: 0 for k in KINDS}
    for i, inst in levels.items():
        kinds = inst["metadata"]["references"]
        assert inst["answer"] == plain[i]["answer"]
        if inst["difficulty"] == "easy":
            assert kinds == [] and _user(inst) == _user(plain[i])
        elif inst["difficulty"] == "medium":
            assert len(kinds) <= 1
        for kind in kinds:
            seen[kind] += 1
        text, before = _user(inst), _user(plain[i])
        assert (text != before) == bool(kinds)
        if "people" in kinds:
            assert "005Wt" not in text and "005Wt" in before
        if "policy" in kinds:
            assert POLICY_POINTER in text and len(text) < len(before)
        if "names" in kinds:
            ids = set(re.findall(r"\b(?:01t|a03|001|006|0Q0|00Q)Wt\w{13}\b", before))
            assert ids - set(re.findall(r"\b\w{18}\b", text)), i
    assert all(seen.values()), seen
    hard = [i for i in levels.values() if i["difficulty"] == "hard" and i["task"] == "handle_time"]
    assert any(i["metadata"]["references"] == ["names", "people"] for i in hard)


def test_rewritten_episodes_are_solved_with_more_queries(paired: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    path, levels, plain = paired
    rewritten = [i for i in levels.values() if i["metadata"]["references"]]
    rows = {r["id"]: r for r in oracle_table(rewritten, path / "org.sqlite")}
    before = {r["id"]: r for r in oracle_table([plain[i["id"]] for i in rewritten], path / "org.sqlite")}
    failed = [r for r in rows.values() if not r["correct"]]
    assert not failed, failed[:3]
    for inst in rewritten:
        extra = rows[inst["id"]]["queries"] - before[inst["id"]]["queries"]
        assert extra >= len(inst["metadata"]["references"]), (inst["id"], extra)


def test_a_name_that_is_not_unique_keeps_its_id(tmp_path: Path,
                                                paired: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    """A rewrite is made only where the org can undo it: with a second product of the same name, the
    question keeps the product's id."""
    path, levels, plain = paired
    inst = next(i for i in levels.values() if i["task"] == "top_issue_identification"
                and i["metadata"]["references"] == ["names"])
    original = plain[inst["id"]]
    product = re.search(r"\(Product2Id (01t\w{15})\)", _user(original)).group(1)  # type: ignore[union-attr]
    org = tmp_path / "org.sqlite"
    org.write_bytes((path / "org.sqlite").read_bytes())
    with sqlite3.connect(org) as conn:
        conn.execute("INSERT INTO Product2 (Id, Name) SELECT '01tWt9999999999ZZZ', Name FROM Product2 WHERE Id = ?",
                     (product,))
    again = rewrite_levels([original], org)[0]
    assert again["metadata"]["references"] == [] and _user(again) == _user(original)
    assert rewrite_levels([original], path / "org.sqlite")[0]["messages"] == inst["messages"]
