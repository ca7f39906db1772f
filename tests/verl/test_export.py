"""The VERL export and the reward function, checked without VERL (they need only pyarrow).

The reward must grade exactly as ``seccrm.world.rewards.score`` does on the JSONL records, for every row
of every split, CRUD rows included (they replay actions on the org copy the export made).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from seccrm.data import load_split
from seccrm.integrations.verl.export import SPLIT_FILES
from seccrm.integrations.verl.reward import compute_score
from seccrm.world.rewards import InstanceError, gold_completion, score


def _rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def test_layout_matches_verl_rl_dataset(verl_export: Path, tiny_suite: Path) -> None:
    for split, name in SPLIT_FILES.items():
        records = load_split(tiny_suite, split)
        rows = _rows(verl_export / name)
        assert len(rows) == len(records) > 0
        for i, (row, rec) in enumerate(zip(rows, records, strict=True)):
            assert set(row) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
            assert row["data_source"] == f"seccrm/{rec['task']}"
            assert row["prompt"] == rec["messages"]
            assert row["ability"] == rec["skill"]
            assert row["reward_model"] == {"style": "rule", "ground_truth": json.dumps(rec["answer"])}
            extra = row["extra_info"]
            assert (extra["index"], extra["split"], extra["instance_id"]) == (i, split, rec["id"])
            assert (extra["task"], extra["skill"], extra["difficulty"], extra["arm"]) == (
                rec["task"], rec["skill"], rec["difficulty"], rec["arm"])
            assert extra["org_path"] == str((verl_export / "org.sqlite").resolve())
            stored = json.loads(extra["instance"])
            assert stored["answer"] == rec["answer"] and stored["messages"] == rec["messages"]
            assert "org_path" not in stored["metadata"]  # no path of the exporting machine inside
    manifest = json.loads((verl_export / "verl_export.json").read_text())
    assert manifest["splits"]["test"]["rows"] == len(load_split(tiny_suite, "test"))
    assert all(r["extra_info"]["task"] != "quote_approval" for r in _rows(verl_export / "train.parquet"))


def test_export_is_deterministic_and_cli_works(tiny_suite: Path, verl_export: Path, tmp_path: Path) -> None:
    from seccrm.cli import main

    assert main(["export", "verl", "--data", str(tiny_suite), "--out", str(tmp_path / "again"),
                 "--org-path", str((verl_export / "org.sqlite").resolve())]) == 0
    for name in SPLIT_FILES.values():
        digest = [hashlib.sha256((d / name).read_bytes()).hexdigest() for d in (verl_export, tmp_path / "again")]
        assert digest[0] == digest[1], name
    assert main(["export", "verl", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2


@pytest.mark.parametrize("split", list(SPLIT_FILES))
def test_compute_score_equals_project_reward(verl_export: Path, tiny_suite: Path, split: str) -> None:
    records = {r["id"]: r for r in load_split(tiny_suite, split)}
    rewards = set()
    for row in _rows(verl_export / SPLIT_FILES[split]):
        rec = records[row["extra_info"]["instance_id"]]
        gold = gold_completion(rec)
        wrong = "<answer>None</answer>" if rec["answer"] != ["None"] else "<answer>Budget</answer>"
        for completion in (gold, "Thinking... " + gold, wrong, "no answer", "<answer>'; DROP TABLE \"Case\"; --"):
            out = compute_score(row["data_source"], completion, row["reward_model"]["ground_truth"],
                                dict(row["extra_info"]))
            assert out["score"] == score(rec, completion), (rec["task"], completion)
            assert out["acc"] == (1.0 if out["score"] == 1.0 else 0.0)
            assert isinstance(out["error"], str) and isinstance(out["f1"], float)
            assert (out["task"], out["arm"]) == (rec["task"], rec["arm"])
            rewards.add(out["score"])
        assert compute_score(row["data_source"], gold, row["reward_model"]["ground_truth"],
                             dict(row["extra_info"]))["score"] == 1.0
    assert 1.0 in rewards and 0.0 in rewards


def test_org_path_override_and_mismatched_rows(verl_export: Path, tmp_path: Path) -> None:
    crud = next(r for r in _rows(verl_export / "train.parquet") if r["extra_info"]["skill"] == "CRUD")
    gold = gold_completion(json.loads(crud["extra_info"]["instance"]))
    moved = dict(crud["extra_info"], org_path=str(tmp_path / "gone.sqlite"))  # the row's path is stale
    shutil.copyfile(verl_export / "org.sqlite", tmp_path / "here.sqlite")
    ok = compute_score(crud["data_source"], gold, crud["reward_model"]["ground_truth"], moved,
                       org_path=str(tmp_path / "here.sqlite"))
    assert ok["score"] == 1.0
    with pytest.raises(InstanceError, match="reward_kwargs.org_path"):  # a wrong path stops the run
        compute_score(crud["data_source"], gold, crud["reward_model"]["ground_truth"], moved)
    with pytest.raises(ValueError, match="does not match"):
        compute_score(crud["data_source"], gold, json.dumps(["something else"]), dict(crud["extra_info"]))
    with pytest.raises(ValueError, match="no 'instance'"):
        compute_score("seccrm/handle_time", gold, None, {"arm": "CRUD/easy"})
