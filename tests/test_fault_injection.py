"""Kill a tiny training run with SIGKILL at 20 random moments (mid-rollout, mid-update, mid-save),
resume it each time, and require the end state to equal an uninterrupted run bit for bit: weights,
optimizer state, curriculum, pools, RNG and metrics lines."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

KILLS = 20
STEPS = 6


def _cmd(suite: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "seccrm", "train", "--data", str(suite), "--model", "tiny", "--out", str(out),
            "--seed", "3", "--steps", str(STEPS), "--prompts-per-step", "2", "--group-size", "2",
            "--max-new-tokens", "6", "--eval-every", "0", "--save-every", "1", "--keep-checkpoints", "2",
            "--no-skip-zero-adv", "--entropy-coef", "0.01", "--lr", "1e-3", "--device", "cpu", "--bf16", "off",
            "--resume"]


def _stable(line: str) -> dict:
    row = json.loads(line)
    return {k: v for k, v in row.items() if not k.startswith(("time/", "mem/", "sys/"))}


def _final(out: Path) -> dict:
    ck = out / "checkpoints" / f"step_{STEPS:06d}"
    state = json.loads((ck / "trainer_state.json").read_text())
    state.pop("config", None)
    opt = torch.load(ck / "optimizer.pt", weights_only=True)
    return {"weights": load_file(ck / "model.safetensors"), "optimizer": opt, "state": state,
            "metrics": [_stable(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]}


def _equal(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_equal, a, b))
    return a == b


@pytest.mark.slow
def test_20_sigkills_then_resume_end_bit_identical(tiny_suite: Path, tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    subprocess.run(_cmd(tiny_suite, ref), check=True, capture_output=True, timeout=600)
    expected = _final(ref)
    assert [m["step"] for m in expected["metrics"]] == list(range(1, STEPS + 1))

    out = tmp_path / "killed"
    rng = random.Random(20)
    kills, starts, t_start = 0, 0, time.monotonic()
    while kills < KILLS:
        proc = subprocess.Popen(_cmd(tiny_suite, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        starts += 1
        try:
            proc.wait(timeout=rng.uniform(0.8, 5.0))       # startup is ~2-3 s; a step and a save well under 1 s
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        assert proc.returncode == 0
        if (out / "checkpoints" / f"step_{STEPS:06d}").is_dir():   # it finished: start a fresh run to kill
            out = tmp_path / f"killed{starts}"
        assert time.monotonic() - t_start < 900
    subprocess.run(_cmd(tiny_suite, out), check=True, capture_output=True, timeout=600)
    got = _final(out)
    print(f"{kills} SIGKILLs over {starts} starts; the resumed run equals the uninterrupted one")
    for part in ("weights", "optimizer", "state", "metrics"):
        assert _equal(got[part], expected[part]), part
