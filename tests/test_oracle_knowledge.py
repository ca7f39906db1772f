"""The knowledge tasks' scripted analysts solve every agentic episode of a tiny suite.

One kind of single-turn instance cannot be solved from its question alone: knowledge_qa's article form
with a None gold ("which of the articles above answers ...?" when the answering article was not among
those shown). Question-only rendering drops the shown articles, so nothing in the episode tells it
from the same question whose answering article was shown; the agentic build drops it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from seccrm.data import build_suite, load_split
from seccrm.world.oracle import oracle_table

TASKS = ("knowledge_qa", "named_entity_disambiguation", "sales_insight_mining", "activity_priority")


def unsolvable(inst: dict[str, Any]) -> bool:
    """An article-form question whose answering article was left out of the (dropped) records."""
    return inst["task"] == "knowledge_qa" and inst["metadata"].get("article_shown") is False


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("agentic_knowledge")
    build_suite(path, seed=0, size="tiny", train_per_task=12, test_per_task=6, progress=False, mode="agentic")
    return path


def test_oracles_solve_every_knowledge_episode(suite: Path) -> None:
    instances = [inst for split in ("train", "val", "test") for inst in load_split(suite, split)
                 if inst["task"] in TASKS]
    assert not [inst for inst in instances if unsolvable(inst)]           # the build dropped them
    assert {inst["task"] for inst in instances} == set(TASKS)
    rows = oracle_table(instances, suite / "org.sqlite")
    failures = [f"{r['id']}: {r['end_reason']} {r['error']} answer={r.get('answer')!r} gold={r.get('gold')}"
                for r in rows if not r["correct"]]
    assert not failures, "\n".join(failures)


def test_the_dropped_kind_is_what_the_oracle_cannot_know(tiny_suite: Path) -> None:
    """On the single-turn suite rendered question-only, the oracle names the answering article: right
    whenever it was shown, wrong only when it was not (the kind the agentic build drops)."""
    from seccrm.world.episode import gold_depends_on_records_shown, question_only, schema_for

    schema = schema_for(tiny_suite / "org.sqlite")
    instances = [question_only(inst, schema) for split in ("train", "val", "test")
                 for inst in load_split(tiny_suite, split)
                 if inst["task"] == "knowledge_qa" and inst["metadata"]["form"] == "article"]
    rows = oracle_table(instances, tiny_suite / "org.sqlite")
    assert rows and any(unsolvable(inst) for inst in instances)
    assert all(r["correct"] != unsolvable(inst) for r, inst in zip(rows, instances, strict=True))
    assert all(gold_depends_on_records_shown(inst) == unsolvable(inst) for inst in instances)
