"""SECGRPOTrainer under two processes (torch.distributed over gloo, on the CPU), single- and multi-turn.

Each test launches ``tests/trl_worker.py`` with ``torchrun --nproc_per_node 2`` for three steps of one
prompt and four completions, so that every group is split two and two across the processes, and
checks what the two processes recorded: the same final curriculum state, the same chunk of prompts
drawn at every step, and every group of ``num_generations`` completions on one prompt.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch(data: Path, out: Path, mode: str) -> list[dict[str, Any]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRL_EXPERIMENTAL_SILENCE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(ROOT / "tests" / "trl_worker.py"), "--data", str(data),
           "--out", str(out), "--mode", mode, "--steps", "3"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def check_ranks_agree(ranks: list[dict[str, Any]]) -> None:
    """The properties the tests assert, on the two processes' records (see the module docstring)."""
    a, b = ranks
    assert a["world_size"] == b["world_size"] == 2
    assert len(a["steps"]) == len(b["steps"]) == 3
    g = a["num_generations"]
    for step_a, step_b in zip(a["steps"], b["steps"], strict=True):
        assert step_a["chunk"] == step_b["chunk"], "the processes drew different prompts"
        assert step_a["ids"] == step_b["ids"] and step_a["arms"] == step_b["arms"]
        ids = step_a["ids"]
        groups = [ids[i:i + g] for i in range(0, len(ids), g)]
        assert all(len(set(group)) == 1 for group in groups), f"a group spans several prompts: {groups}"
        assert [group[0] for group in groups] == step_a["chunk_ids"]        # the groups are the drawn chunk
    assert a["state"] == b["state"], "the processes' curricula differ"
    assert any(abs(q) > 1e-6 for q in a["state"]["extra"]["q"].values())    # the bandit learned something


@pytest.mark.slow
def test_two_processes_keep_one_curriculum_and_whole_groups(tiny_suite: Path, tmp_path: Path) -> None:
    check_ranks_agree(_launch(tiny_suite, tmp_path / "run", "single"))


@pytest.fixture(scope="module")
def agentic_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from seccrm.data import build_suite
    out = tmp_path_factory.mktemp("agentic")
    build_suite(out, seed=0, size="tiny", train_per_task=6, test_per_task=2, progress=False, mode="agentic")
    return out


@pytest.mark.slow
def test_two_processes_of_multi_turn_episodes_keep_one_curriculum(agentic_suite: Path, tmp_path: Path) -> None:
    ranks = _launch(agentic_suite, tmp_path / "run", "agentic")
    check_ranks_agree(ranks)
