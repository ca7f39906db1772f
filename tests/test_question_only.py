"""The question-only rendering of seccrm's single-turn instances as episodes."""

from __future__ import annotations

from pathlib import Path

from seccrm.data import load_split
from seccrm.world.episode import question_only, schema_for


def test_question_only_drops_every_record_table_and_keeps_the_question(tiny_suite: Path) -> None:
    schema = schema_for(tiny_suite / "org.sqlite")
    insts = load_split(tiny_suite, "train") + load_split(tiny_suite, "test")
    tasks = set()
    for inst in insts:
        q = question_only(inst, schema)
        user = q["messages"][1]["content"]
        original = inst["messages"][1]["content"]
        assert q["answer"] == inst["answer"] and q["id"] == inst["id"]
        assert " rows)\n" not in user                                    # no record table is left
        question = original[original.index("Question:"):]
        assert question in user                                          # question and answer format
        assert "<execute>" in q["messages"][0]["content"] and '"Case"' in q["messages"][0]["content"]
        assert len(user) < len(original)
        tasks.add(inst["task"])
    assert len(tasks) >= 19
