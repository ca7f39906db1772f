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


# --- input files of the wrong shape ------------------------------------------------------------------
@pytest.mark.parametrize(("line", "field"), [
    ({"messages": 42}, "field 'messages' must be a list, got int"),
    ({"id": 123}, "field 'id' must be a string, got int"),
    ("LIST", "expected a JSON object, got list"),
    ({"arm": None, "_drop": "arm"}, "field 'arm' is missing"),
    ({"answer": []}, "field 'answer' must be a non-empty list of strings"),
])
def test_rows_of_the_wrong_shape_are_named_by_file_line_and_field(tiny_suite: Path, tmp_path: Path, line, field) -> None:
    from seccrm.data.schema import check_rows
    rows = [json.loads(x) for x in (tiny_suite / "val.jsonl").read_text().splitlines()[:3]]
    if line == "LIST":
        rows[1] = [1, 2]
    else:
        drop = line.pop("_drop", None)
        rows[1] = {**rows[1], **line}
        if drop:
            del rows[1][drop]
    with pytest.raises(ValueError, match=rf"bad.jsonl: not a valid instance file: line 2: {field}"):
        check_rows(tmp_path / "bad.jsonl", rows, "instance")


def test_score_names_bad_rows_non_utf8_and_empty_inputs(tiny_suite: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "tasks.jsonl"
    rows = (tiny_suite / "test.jsonl").read_text().splitlines()[:2]
    bad.write_text(rows[0] + "\n" + json.dumps({**json.loads(rows[1]), "messages": 42}) + "\n")
    comp = tmp_path / "c.jsonl"
    comp.write_text(json.dumps({"id": json.loads(rows[0])["id"], "completion": "<answer>None</answer>"}) + "\n")
    assert main(["score", "--data", str(bad), "--completions", str(comp)]) == 2
    assert "line 2: field 'messages' must be a list" in capsys.readouterr().err
    comp.write_bytes(b"\xff\xfe{}\n")
    assert main(["score", "--data", str(tiny_suite / "test.jsonl"), "--completions", str(comp)]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    comp.write_text("")
    assert main(["score", "--data", str(tiny_suite / "test.jsonl"), "--completions", str(comp)]) == 2
    capsys.readouterr()


def test_report_on_garbage_metrics_is_a_clear_error(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "train/reward": "abc"}\n[1, 2]\n{"step": 2}\n')
    assert main(["report", str(run)]) == 2
    assert "metrics.jsonl line 2: expected a JSON object" in capsys.readouterr().err


def test_a_checkpoint_state_of_the_wrong_types_is_refused_on_resume(tiny_suite: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    args = ["train", "--data", str(tiny_suite), "--model", "tiny", "--out", str(out), "--steps", "1",
            "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "4", "--eval-every", "0",
            "--save-every", "1", "--device", "cpu", "--bf16", "off"]
    assert main(args) == 0
    ck = next((out / "checkpoints").glob("step_*"))
    state = json.loads((ck / "trainer_state.json").read_text())
    state["curriculum"] = "nonsense"
    state["step"] = "one"
    (ck / "trainer_state.json").write_text(json.dumps(state))
    import hashlib
    manifest = json.loads((ck / "COMPLETE").read_text())     # re-seal it, so only the types are wrong
    manifest["trainer_state.json"] = {"size": (ck / "trainer_state.json").stat().st_size,
                                      "sha256": hashlib.sha256((ck / "trainer_state.json").read_bytes()).hexdigest()}
    (ck / "COMPLETE").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main([*args[:-6], "--steps", "2", "--resume", "--device", "cpu", "--bf16", "off"]) == 2
    assert "trainer_state.json" in capsys.readouterr().err


def test_report_names_metrics_of_the_wrong_types(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "train/reward": "abc"}\n{"step": "two"}\n')
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert "line 1: field 'train/reward' must be a number or null, got str" in err and "line 2: field 'step'" in err


@pytest.mark.parametrize("argv", [
    ["eval", "--data", "D", "--model", "tiny", "--out", "o.json", "--limit", "-1"],       # silently dropped a row
    ["eval", "--data", "D", "--model", "tiny", "--out", "o.json", "--max-new-tokens", "0"],
    ["eval", "--data", "D", "--model", "tiny", "--out", "o.json", "--batch-size", "0"],
    ["warmup", "--data", "D", "--out", "O", "--lr", "inf"],
    ["warmup", "--data", "D", "--out", "O", "--target-format", "nan"],
    ["demo", "--steps", "0"],
    ["experiment", "--data", "D", "--out", "O", "--prompts-per-step", "-2"],
    ["build", "--out", "O", "--train-per-task", "-5"],
    ["play", "--data", "D", "--id", "x", "--max-turns", "0"],
    ["import", "crmarena-pro", "--tasks", "T", "--org", "O", "--out", "S", "--train-share", "1.5"],
])
def test_every_command_refuses_nonsense_numbers_before_work(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and "must be" in capsys.readouterr().err
