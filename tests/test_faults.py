"""Faults that used to lose data or give wrong results with exit 0: a killed or mixed build, a broken
org, input files of the wrong shape."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seccrm.cli import main
from seccrm.data import build_suite, load_split
from seccrm.world.rewards import InstanceError, score_details


def _copy(suite: Path, dest: Path) -> Path:
    shutil.copytree(suite, dest)
    return dest


def _crud(suite: Path) -> dict:
    return next(i for i in load_split(suite, "train") if i["skill"] == "CRUD")


# --- a killed or mixed build -------------------------------------------------------------------------
def test_a_mixed_suite_is_refused_by_every_loader(tiny_suite: Path, tmp_path: Path, capsys) -> None:
    s = _copy(tiny_suite, tmp_path / "s")
    other = tmp_path / "other"
    build_suite(other, seed=1, size="tiny", train_per_task=3, test_per_task=1, progress=False)
    shutil.copy(other / "org.sqlite", s / "org.sqlite")          # a new org beside the old tasks
    with pytest.raises(ValueError, match="org.sqlite does not match .*suite.json.*mixed"):
        load_split(s, "train")
    assert main(["train", "--data", str(s), "--model", "tiny", "--out", str(tmp_path / "run"), "--steps", "1"]) == 2
    assert "mixed" in capsys.readouterr().err
    (s / "suite.json").unlink()
    with pytest.raises(ValueError, match="no suite.json: its build did not finish"):
        load_split(s, "val")


def test_a_suite_of_a_newer_format_is_refused(tiny_suite: Path, tmp_path: Path) -> None:
    s = _copy(tiny_suite, tmp_path / "s")
    m = json.loads((s / "suite.json").read_text())
    assert m["format"] == 2
    (s / "suite.json").write_text(json.dumps({**m, "format": 99}))
    with pytest.raises(ValueError, match="suite format 99, but this seccrm reads formats 1-2"):
        load_split(s, "train")
    del m["format"]                                               # a suite written before the field: format 1
    (s / "suite.json").write_text(json.dumps(m))
    assert load_split(s, "train")


def test_a_build_killed_over_an_existing_suite_leaves_the_old_one_whole(tmp_path: Path) -> None:
    s = tmp_path / "s"
    build_suite(s, seed=0, size="tiny", train_per_task=3, test_per_task=1, progress=False)
    before = {p.name: p.read_bytes() for p in s.iterdir()}
    cmd = [sys.executable, "-m", "seccrm", "build", "--out", str(s), "--seed", "5", "--size", "tiny",
           "--train-per-task", "30", "--test-per-task", "6", "--no-progress"]
    for delay in (0.5, 2.0, 4.0):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        names = {p.name for p in s.iterdir()}
        if "suite.json" in names:   # the old suite (or a whole new one): every loader accepts it
            assert all(load_split(s, sp) is not None for sp in ("train", "val", "test"))
        else:                       # killed mid-swap: refused, never read as a suite
            with pytest.raises(ValueError, match="no suite.json"):
                load_split(s, "train")
    build_suite(s, seed=0, size="tiny", train_per_task=3, test_per_task=1, progress=False)
    assert {p.name: p.read_bytes() for p in s.iterdir()} == before   # rebuilding gives the same bytes
    assert not [n for n in os.listdir(tmp_path) if ".building-" in n]  # killed builds' folders removed


# --- a broken org --------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated", "empty", "dropped table", "not sqlite"])
def test_a_broken_org_is_an_instance_error_not_a_wrong_answer(tiny_suite: Path, tmp_path: Path,
                                                             damage: str) -> None:
    s = _copy(tiny_suite, tmp_path / "s")
    inst = _crud(s)
    org = s / "org.sqlite"
    if damage == "truncated":
        org.write_bytes(org.read_bytes()[: org.stat().st_size // 3])
    elif damage == "empty":
        org.write_bytes(b"")
    elif damage == "dropped table":
        conn = sqlite3.connect(org)
        conn.execute('DROP TABLE "Opportunity"')
        conn.commit()
        conn.close()
    else:
        org.write_text("hello")
    with pytest.raises(InstanceError, match="org file .*org.sqlite is broken"):
        score_details(inst, '<answer>{"op": "update", "object": "Case", "id": "x", "fields": {}}</answer>')


def test_score_stops_with_the_org_named(tiny_suite: Path, tmp_path: Path, capsys) -> None:
    s = _copy(tiny_suite, tmp_path / "s")
    inst = _crud(s)
    comp = tmp_path / "c.jsonl"
    comp.write_text(json.dumps({"id": inst["id"], "completion": "<answer>{}</answer>"}) + "\n")
    (s / "org.sqlite").write_bytes(b"")
    assert main(["score", "--data", str(s / "train.jsonl"), "--completions", str(comp)]) == 2
    assert "org.sqlite" in capsys.readouterr().err
