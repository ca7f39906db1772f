"""The question-only rendering of seccrm's single-turn instances as episodes."""

from __future__ import annotations

import json
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


def test_an_agentic_build_has_the_single_suite_instances_question_only(tiny_suite: Path, tmp_path: Path) -> None:
    from seccrm.data import build_suite
    from seccrm.data.check import check_suite
    from seccrm.world.references import rewrite_levels

    manifest = build_suite(tmp_path / "agentic", seed=0, size="tiny", train_per_task=12, test_per_task=6,
                           progress=False, mode="agentic")
    assert manifest["agentic"] and manifest["mode"] == "agentic"
    schema = schema_for(tiny_suite / "org.sqlite")
    kept, seen = 0, set()
    for split in ("train", "val", "test"):
        single = {r["id"]: r for r in load_split(tiny_suite, split)}
        for a in load_split(tmp_path / "agentic", split):
            s = single[a["id"]]                                   # the same instance, question-only
            plain = question_only(s, schema)                       # then rewritten for its level
            assert a["messages"] == rewrite_levels([plain], tiny_suite / "org.sqlite")[0]["messages"]
            assert a["answer"] == s["answer"]
            key = json.dumps(a["messages"])
            assert key not in seen                                 # each episode once, in one split
            seen.add(key)
            kept += 1
    total = sum(len(load_split(tiny_suite, s)) for s in ("train", "val", "test"))
    dropped = manifest["agentic_dropped"]
    assert kept + dropped["duplicate"] + dropped["ambiguous"] + dropped["records_shown"] == total
    assert dropped["duplicate"] > 0
    assert check_suite(tmp_path / "agentic") == []


def test_single_turn_training_on_an_agentic_suite_is_refused(tmp_path: Path) -> None:
    import pytest

    from seccrm.data import build_suite, suite_mode
    from seccrm.rl.config import TrainConfig
    from seccrm.rl.trainer import Trainer

    build_suite(tmp_path / "agentic", seed=0, size="tiny", train_per_task=4, test_per_task=2, progress=False,
                mode="agentic")
    assert suite_mode(tmp_path / "agentic") == "agentic" and suite_mode(tmp_path) == "single"
    cfg = TrainConfig(data=str(tmp_path / "agentic"), model="tiny", out=str(tmp_path / "run"), steps=1)
    with pytest.raises(ValueError, match="--mode agentic"):
        Trainer(cfg)
    assert not (tmp_path / "run" / ".lock").exists()
