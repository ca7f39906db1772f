"""The optional CONFIDENTIALITY skill: refusal golds where the policy forbids, near misses that must be
answered, so that neither refusing nor answering everything pays."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from seccrm.data import build_suite, load_split
from seccrm.world.arms import OPTIONAL_TASK_SKILLS
from seccrm.world.rewards import score_details
from seccrm.world.tasks import get_task
from seccrm.world.tasks.base import Org
from seccrm.world.tasks.confidentiality import REFUSAL

TASKS = tuple(OPTIONAL_TASK_SKILLS)


@pytest.fixture(scope="module")
def org(tiny_suite: Path) -> Org:
    return Org(sqlite3.connect(f"file:{tiny_suite / 'org.sqlite'}?mode=ro", uri=True))


def _record(name: str, inst) -> dict:
    return {"id": "x", "task": name, "answer": inst.answer, "metadata": inst.metadata}


@pytest.mark.parametrize("name", TASKS)
def test_golds_score_one_and_the_refusal_share_is_about_a_fifth(org: Org, name: str) -> None:
    task = get_task(name)
    refused, always_refuse = 0, 0
    n = 0
    for d in ("easy", "medium", "hard"):
        for i in range(40):
            inst = task.generate(org, d, random.Random(1000 * i + len(d)))
            rec = _record(name, inst)
            assert score_details(rec, f"<answer>{inst.answer[0]}</answer>")["correct"], (name, d, i)
            refused += inst.metadata["refuse"]
            always_refuse += score_details(rec, f"<answer>{REFUSAL}</answer>")["correct"]
            if not inst.metadata["refuse"]:
                assert "Put it inside <answer></answer>" in inst.messages[1]["content"]
            n += 1
    assert 0.08 < refused / n < 0.35
    assert always_refuse == refused                  # a refusal passes exactly the refusal items


def test_the_allowed_answers_are_the_askers_own_records(org: Org) -> None:
    for i in range(30):
        inst = get_task("private_customer_information").generate(org, "medium", random.Random(i))
        meta = inst.metadata
        asker = org.query("SELECT AccountId FROM Contact WHERE Id = ?", (meta["asker"],))[0][0]
        target = org.query("SELECT AccountId, Email FROM Contact WHERE Id = ?", (meta["target"],))[0]
        assert meta["refuse"] == (target["AccountId"] != asker)
        if not meta["refuse"]:
            assert inst.answer == [target["Email"]]
        else:   # the value itself is not a refusal: answering it scores 0 (or 0.1)
            rec = _record("private_customer_information", inst)
            assert not score_details(rec, f"<answer>{target['Email']}</answer>")["correct"]


def test_the_skill_is_off_by_default_and_trains_when_built(tiny_suite: Path, tmp_path: Path) -> None:
    assert not any(r["skill"] == "CONFIDENTIALITY" for s in ("train", "val", "test") for r in load_split(tiny_suite, s))
    out = tmp_path / "s"
    m = build_suite(out, seed=0, size="tiny", train_per_task=8, test_per_task=2, progress=False,
                    optional_skills=("CONFIDENTIALITY",))
    assert m["optional_skills"] == ["CONFIDENTIALITY"]
    arms = {r["arm"] for r in load_split(out, "train")}
    assert {"CONFIDENTIALITY/easy", "CONFIDENTIALITY/medium", "CONFIDENTIALITY/hard"} <= arms
    from seccrm.data import check_suite
    assert check_suite(out) == []
    from seccrm.rl.config import TrainConfig
    from seccrm.rl.trainer import Trainer
    t = Trainer(TrainConfig(data=str(out), model="tiny", out=str(tmp_path / "run"), steps=1, prompts_per_step=2,
                            group_size=2, max_new_tokens=4, eval_every=0, save_every=1, device="cpu", bf16="off"))
    assert "CONFIDENTIALITY/hard" in t.curriculum.arms and len(t.curriculum.arms) == 15
    with pytest.raises(ValueError, match="unknown optional skill"):
        build_suite(tmp_path / "u", size="tiny", train_per_task=2, test_per_task=1, progress=False,
                    optional_skills=("TELEPATHY",))
