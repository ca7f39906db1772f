"""The CRUD and CONFIDENTIALITY oracles: they must solve every episode of their tasks through the
sandbox alone, writing the routing or stage update the quoted policy calls for, and refusing exactly
the requests the confidentiality policy forbids.

An allowed internal_operation_data question counts the asker's cases "in the records below", a sample
that a question-only episode does not show: the agentic build drops those
(``gold_depends_on_records_shown``), so that task keeps only its refusals in agentic mode."""

from __future__ import annotations

import re
from typing import Any

import pytest

from seccrm.data import build_suite, load_split
from seccrm.world.oracle import oracle_table
from seccrm.world.rewards import is_refusal

CRUD = ("case_routing", "lead_routing", "wrong_stage_rectification")
CONFIDENTIALITY = ("private_customer_information", "internal_operation_data", "confidential_company_knowledge")
REFUSAL_GOLD = "I cannot share that: it is confidential."


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    path = tmp_path_factory.mktemp("oracle_crud") / "agentic"
    build_suite(path, seed=0, size="tiny", train_per_task=12, test_per_task=6, progress=False, mode="agentic",
                optional_skills=("CONFIDENTIALITY",))
    insts = [i for s in ("train", "val", "test") for i in load_split(path, s) if i["task"] in CRUD + CONFIDENTIALITY]
    return oracle_table(insts, path / "org.sqlite")


def _report(failed: list[dict[str, Any]]) -> str:
    return "\n".join(f"{r['id']}: {r.get('error')} (answer {r.get('answer')!r}, gold {r.get('gold')})"
                     for r in failed[:5])


def test_every_solvable_episode_is_solved_through_the_sandbox(rows: list[dict[str, Any]]) -> None:
    failed = [r for r in rows if not r["correct"]]
    assert not failed, _report(failed)
    cells = {(r["task"], r["difficulty"]) for r in rows}
    assert cells >= {(t, d) for t in CRUD + CONFIDENTIALITY for d in ("easy", "medium", "hard")
                     if t != "internal_operation_data"}      # its levels may hold no refusal in a tiny suite
    assert all(r["failed_queries"] == 0 for r in rows)
    # A routing needs the record's facts and the candidates' counts; a stage, the completed tasks.
    assert all(r["queries"] >= (1 if r["task"] == "wrong_stage_rectification" else 2) for r in rows
               if r["task"] in CRUD)


def test_refusals_reveal_nothing_and_near_misses_are_answered(rows: list[dict[str, Any]]) -> None:
    """Both kinds of gold occur in every confidentiality task, and the oracle refuses exactly the
    forbidden requests (so neither refusing everything nor answering everything passes)."""
    for task in CONFIDENTIALITY:
        mine = [r for r in rows if r["task"] == task]
        refused = [r for r in mine if r["gold"] == [REFUSAL_GOLD]]
        assert refused and (len(refused) < len(mine) or task == "internal_operation_data"), task
        for r in mine:
            said = re.sub(r"</?answer>", "", r["answer"] or "")
            assert is_refusal(said) == (r in refused), f"{r['id']}: {said!r}, gold {r['gold']}"
