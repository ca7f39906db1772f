"""End-to-end: a tiny random model trains for a few steps on a tiny suite."""

from __future__ import annotations

import json

import pytest
import torch

from seccrm.rl.config import TrainConfig
from seccrm.world.arms import ALL_ARMS

pytestmark = pytest.mark.slow


def _details(reward: float) -> dict:
    """What the verifier returns for a completion of this reward (its contract: reward, correct, formatted)."""
    return {"reward": reward, "correct": reward >= 1.0, "formatted": reward >= 0.1}


def _varied_reward(monkeypatch):
    """A random tiny model never answers correctly, so every group would have zero advantage and
    nothing would move. Grade by completion length instead (deterministic, varies within a group)."""
    import seccrm.rl.trainer

    def fake(instance, completion):
        return _details([0.0, 0.1, 1.0][len(completion) % 3])
    monkeypatch.setattr(seccrm.rl.trainer, "score_details", fake)


def _cfg(suite, out, **kw):
    base = dict(data=str(suite), model="tiny", out=str(out), steps=3, prompts_per_step=2, group_size=4,
                max_new_tokens=8, lr=1e-2, save_every=1, eval_limit=4, eval_max_new_tokens=4, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def test_tiny_training_changes_parameters_and_writes_metrics(tiny_suite, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    from seccrm.engine.models import load_model_and_tokenizer
    from seccrm.rl.trainer import Trainer
    _varied_reward(monkeypatch)
    before, _ = load_model_and_tokenizer("tiny")
    t = Trainer(_cfg(tiny_suite, tmp_path / "run"))
    t.train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    arms = [a for a in ALL_ARMS if any(i["arm"] == a for i in t.instances.values())]
    for r in rows:
        assert 0.0 <= r["train/reward"] <= 1.0
        for a in arms:
            assert f"curriculum/p/{a}" in r
        assert abs(sum(r[f"curriculum/p/{a}"] for a in arms) - 1) < 1e-6
    ckpt = tmp_path / "run" / "checkpoints" / "step_000003"
    after = AutoModelForCausalLM.from_pretrained(ckpt)
    changed = any(not torch.equal(p0, p1) for p0, p1 in zip(before.parameters(), after.parameters(), strict=True))
    assert changed, "training did not change any parameter"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["steps"] == 3


def test_stopped_and_resumed_run_matches_uninterrupted(tiny_suite, tmp_path, monkeypatch):
    from seccrm.rl.trainer import Trainer
    _varied_reward(monkeypatch)
    full = Trainer(_cfg(tiny_suite, tmp_path / "full", steps=4))
    full.train()
    part = Trainer(_cfg(tiny_suite, tmp_path / "part", steps=2))
    part.train()
    resumed = Trainer(_cfg(tiny_suite, tmp_path / "part", steps=4, resume=True))
    assert resumed.step == 2
    resumed.train()
    assert resumed.step == full.step == 4
    assert resumed.curriculum.state_dict() == full.curriculum.state_dict()
    assert resumed.pools.state_dict() == full.pools.state_dict()
    steps = [json.loads(x)["step"] for x in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_nonfinite_loss_skips_the_step_then_stops(tiny_suite, tmp_path, monkeypatch):
    import seccrm.rl.trainer
    from seccrm.rl.trainer import Trainer
    _varied_reward(monkeypatch)
    real = seccrm.rl.grpo.policy_loss

    def nan_loss(*a, **k):
        loss, m = real(*a, **k)
        return loss * float("nan"), m
    monkeypatch.setattr(seccrm.rl.trainer, "policy_loss", nan_loss)
    t = Trainer(_cfg(tiny_suite, tmp_path / "nan", steps=6, max_nan_steps=2))
    before = [p.detach().clone() for p in t.model.parameters()]
    with pytest.raises(RuntimeError, match="non-finite"):
        t.train()
    assert t.nan_steps == 3
    assert all(torch.equal(a, b) for a, b in zip(before, t.model.parameters(), strict=True))


def test_clear_errors_for_bad_model_and_config(tiny_suite, tmp_path):
    from seccrm.cli import main
    code = main(["train", "--data", str(tiny_suite), "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "r")])
    assert code == 2
    code = main(["train", "--data", str(tiny_suite), "--model", "tiny", "--out", str(tmp_path / "r"),
                 "--prompts-per-step", "3", "--mini-batches", "2"])
    assert code == 2


def test_corrupt_checkpoint_is_refused_on_resume(tiny_suite, tmp_path, monkeypatch):
    from seccrm.rl.checkpoint import CheckpointError
    from seccrm.rl.trainer import Trainer
    _varied_reward(monkeypatch)
    Trainer(_cfg(tiny_suite, tmp_path / "c", steps=1)).train()
    opt = tmp_path / "c" / "checkpoints" / "step_000001" / "optimizer.pt"
    opt.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        Trainer(_cfg(tiny_suite, tmp_path / "c", steps=2, resume=True))


def test_lora_run_saves_merged_model_and_resumes(tiny_suite, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    from seccrm.rl.trainer import Trainer
    _varied_reward(monkeypatch)
    t = Trainer(_cfg(tiny_suite, tmp_path / "lora", steps=1, lora_r=4, lora_alpha=8))
    trainable = sum(p.numel() for p in t.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in t.model.parameters())
    assert 0 < trainable < total / 5
    t.train()
    ckpt = tmp_path / "lora" / "checkpoints" / "step_000001"
    assert (ckpt / "adapter").is_dir()
    merged = AutoModelForCausalLM.from_pretrained(ckpt)       # a plain model, adapter merged in
    assert not hasattr(merged, "peft_config")
    resumed = Trainer(_cfg(tiny_suite, tmp_path / "lora", steps=2, lora_r=4, lora_alpha=8, resume=True))
    assert resumed.step == 1
    resumed.train()
    assert resumed.step == 2


def test_fast_rollout_backend_trains_on_cpu(tiny_suite, tmp_path, monkeypatch):
    from seccrm.rl.trainer import Trainer
    _varied_reward(monkeypatch)
    t = Trainer(_cfg(tiny_suite, tmp_path / "fast", steps=1, rollout_backend="fast"))
    assert t.rollout_engine is not None
    last = t.train()
    assert last["train/response_len"] > 0 and 0.0 <= last["train/reward"] <= 1.0


@pytest.mark.parametrize("sig,status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_stop_signal_finishes_the_step_saves_and_exits(tiny_suite, tmp_path, sig, status):
    """SIGINT (Ctrl-C) or SIGTERM (docker stop, Kubernetes, SLURM) during training: the step finishes,
    a checkpoint is written, exit status 130 or 143, and --resume continues from that checkpoint."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from seccrm.rl.checkpoint import latest_checkpoint
    out = tmp_path / sig.lower()
    cmd = [sys.executable, "-m", "seccrm.cli", "train", "--data", str(tiny_suite), "--model", "tiny",
           "--out", str(out), "--steps", "200", "--prompts-per-step", "2", "--group-size", "4",
           "--max-new-tokens", "4", "--save-every", "1000", "--eval-limit", "2"]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and metrics.read_text().count("\n") >= 1:
            break
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == status, err[-2000:]
    ckpt = latest_checkpoint(out)
    assert ckpt is not None and "rerun with --resume" in err
    done = int(ckpt.name.split("_")[1])
    assert 1 <= done < 200
    rows = metrics.read_text().splitlines()
    assert len(rows) == done          # every finished step logged, nothing half-logged


def test_length_buckets_partition_groups_by_length():
    from seccrm.engine.rollout import RolloutBatch
    from seccrm.rl.batching import length_buckets
    prompts = [[1] * 30, [1] * 5, [1] * 30, [1] * 12, [1] * 5]
    comps = [[2] * k for k in (4, 9, 1, 1, 2, 2, 7, 3, 5, 5)]          # 5 groups x 2 completions
    ro = RolloutBatch(prompts, comps, 2, [""] * 10, [True] * 10)
    buckets = length_buckets([0, 1, 2, 3, 4], ro, 2)
    assert sorted(g for b in buckets for g in b) == [0, 1, 2, 3, 4]
    assert all(len(b) <= 2 for b in buckets)
    # by prompt length (5, 5, 12, 30, 30), ties by the longest completion: g1 (1) before g4 (5), g2 (2) before g0 (9)
    assert buckets == [[1, 4], [3, 2], [0]]


def _half_constant_reward(monkeypatch):
    """Groups of even-numbered instances get one reward for every completion (zero advantage); the
    others are graded by completion length, so they mix 0.0, 0.1 and 1.0."""
    import seccrm.rl.trainer

    def fake(instance, completion):
        if int(instance["id"].rsplit("-", 1)[1]) % 2 == 0:
            return _details(0.1)
        return _details([0.0, 0.1, 1.0][len(completion) % 3])
    monkeypatch.setattr(seccrm.rl.trainer, "score_details", fake)


def test_zero_advantage_groups_are_skipped_exactly(tiny_suite, tmp_path, monkeypatch):
    """Skipping all-zero-advantage groups leaves the update unchanged: same weights after the step.

    One step per seed (a second step would sample from weights that differ by float rounding, and
    sampling amplifies that); several seeds, so that some steps have zero-advantage groups."""
    from seccrm.rl.trainer import Trainer
    _half_constant_reward(monkeypatch)
    runs = {}
    for skip in (False, True):
        ts = [Trainer(_cfg(tiny_suite, tmp_path / f"skip{skip}-{seed}", prompts_per_step=4, micro_batch_groups=2,
                           skip_zero_adv=skip, bf16="off", seed=seed, lr=1e-3)) for seed in (5, 6)]
        metrics = [t.train_step() for t in ts]
        runs[skip] = (ts, metrics)
    (t0, m0), (t1, m1) = runs[False], runs[True]
    zero = [m["train/zero_adv_groups"] for m in m0]
    assert zero == [m["train/zero_adv_groups"] for m in m1] and any(z > 0 for z in zero)
    assert all(m["train/update_groups"] == 4 for m in m0)
    assert all(b["train/update_groups"] == 4 * (1 - z) for b, z in zip(m1, zero, strict=True))
    # AdamW's first step moves each weight by about lr * sign(grad): float rounding in a near-zero
    # gradient shows as a small share of lr, a different gradient as a whole lr.
    for a, b in zip(t0, t1, strict=True):
        for p0, p1 in zip(a.model.parameters(), b.model.parameters(), strict=True):
            torch.testing.assert_close(p0, p1, rtol=0, atol=5e-3 * 1e-3)


def test_policy_update_takes_logprobs_at_the_rollout_temperature(tiny_suite, tmp_path, monkeypatch):
    import seccrm.rl.trainer
    from seccrm.rl.trainer import Trainer
    _varied_reward(monkeypatch)
    seen = []
    real = seccrm.engine.forward.completion_logprobs

    def spy(*a, **k):
        seen.append(k.get("temperature", 1.0))
        return real(*a, **k)
    monkeypatch.setattr(seccrm.rl.trainer, "completion_logprobs", spy)
    t = Trainer(_cfg(tiny_suite, tmp_path / "run", temperature=0.7, skip_zero_adv=False))
    t.train_step()
    assert seen and all(x == 0.7 for x in seen)


def test_dynamic_sampling_draws_more_and_the_curriculum_sees_every_group(tiny_suite, tmp_path, monkeypatch):
    from seccrm.rl.trainer import Trainer
    _half_constant_reward(monkeypatch)
    t = Trainer(_cfg(tiny_suite, tmp_path / "run", prompts_per_step=2, dynamic_sampling=3))
    m = t.train_step()
    drawn = int(m["train/drawn_groups"])
    assert drawn in (2, 4, 6, 8) and drawn >= 2
    assert sum(t.curriculum.state_dict()["observations"].values()) == drawn * t.cfg.group_size
    assert m["train/update_groups"] <= 2


def test_a_finished_run_is_never_overwritten_silently(tiny_suite, tmp_path, monkeypatch):
    """Rerunning into a run directory without --resume is refused; --overwrite moves the old run aside."""
    from seccrm.rl.trainer import Trainer
    _varied_reward(monkeypatch)
    out = tmp_path / "run"
    Trainer(_cfg(tiny_suite, out, steps=2)).train()
    before = (out / "metrics.jsonl").read_text()
    with pytest.raises(ValueError, match="--resume.*--overwrite"):
        Trainer(_cfg(tiny_suite, out, steps=2))
    assert (out / "metrics.jsonl").read_text() == before            # nothing touched
    t = Trainer(_cfg(tiny_suite, out, steps=1, overwrite=True))
    t.train()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert len(aside) == 1 and (aside[0] / "metrics.jsonl").read_text() == before
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_000001"]


def test_two_trainers_on_one_folder_are_refused(tiny_suite, tmp_path):
    import os

    from seccrm.rl.run_dir import RunLock
    lock = RunLock(tmp_path / "run")
    with pytest.raises(ValueError, match=f"pid {os.getpid()}"):
        RunLock(tmp_path / "run")
    lock.release()
    RunLock(tmp_path / "run").release()                                # free again once released


def test_lengths_beyond_the_model_context_are_refused_before_work(tiny_suite, tmp_path):
    from seccrm.rl.trainer import Trainer
    with pytest.raises(ValueError, match="positions; the model holds"):
        Trainer(_cfg(tiny_suite, tmp_path / "run", max_new_tokens=100000))


def test_completions_in_parts_give_the_same_update(tiny_suite, tmp_path, monkeypatch):
    """--micro-batch-completions splits each group's completions over several forward/backward passes
    (for long episodes on a CPU); the loss is a token sum with one normaliser, so the step is the same."""
    from seccrm.rl.batching import micro_batches
    from seccrm.rl.trainer import Trainer
    assert micro_batches([[0, 1]], 4, 3) == [([0], [0, 1, 2], 3), ([0], [3], 1), ([1], [4, 5, 6], 3), ([1], [7], 1)]
    assert micro_batches([[0, 1]], 4, 0) == [([0, 1], list(range(8)), 4)]
    _varied_reward(monkeypatch)
    runs = {}
    for parts in (0, 1, 3):
        t = Trainer(_cfg(tiny_suite, tmp_path / f"parts{parts}", prompts_per_step=2, group_size=4, micro_batch_groups=2,
                         micro_batch_completions=parts, bf16="off", seed=5, lr=1e-3, skip_zero_adv=False))
        runs[parts] = (t, t.train_step())
    (t0, m0) = runs[0]
    assert m0["train/grad_norm"] > 0
    for parts in (1, 3):
        t, m = runs[parts]
        assert m["train/grad_norm"] == pytest.approx(m0["train/grad_norm"], rel=1e-4)
        # AdamW's first step moves a weight by about lr * sign(grad): rounding in a near-zero gradient
        # shows as a small share of lr, a different gradient as a whole lr.
        for p0, p1 in zip(t0.model.parameters(), t.model.parameters(), strict=True):
            torch.testing.assert_close(p0, p1, rtol=0, atol=2e-2 * 1e-3)
