"""An experiment's time estimate: stage estimates from measured units, and the remaining-time line."""

from __future__ import annotations

import pytest

from seccrm.experiments.clock import RunClock, Units, estimate

TRAIN = dict(prompts_per_step=4, group_size=8, dynamic_sampling=0, max_new_tokens=64)
PLAN = dict(eval_max_new_tokens=64, eval_base=12, warmup_steps=10, warmup_default_steps=12, warmup_batch=4,
            warmup_check_every=0, warmup_probe=16, probe_k=4, probe_n=50, steps=20, train=TRAIN)


def test_estimate_scales_with_the_work_each_stage_does() -> None:
    units = Units(greedy_s=2.0, sample_s=0.5, train_token_s=0.001, prompt_tokens=400, seconds=30)
    est = estimate(units, PLAN, n_val=200, n_test=48, runs=["sec/seed0", "uniform/seed0"])
    assert est["eval_base_s"] == pytest.approx(2 * 12 * 2.0)
    # Evaluation after training: answers stop early (half the base's cost), plus the sampled probe.
    assert est["eval/sec/seed0"] == est["eval_warmup_s"] == pytest.approx(248 * 1.0 + 4 * 50 * 0.5)
    step = 4 * 8 * 0.5 + 4 * (400 + 8 * 64) * 0.001
    assert est["train/sec/seed0"] == est["train/uniform/seed0"] == pytest.approx(20 * step)
    # Redrawing groups without signal doubles the rollouts drawn, and twice the steps cost twice as much.
    redraw = {**PLAN, "train": {**TRAIN, "dynamic_sampling": 1}}
    assert estimate(units, redraw, 200, 48, ["sec/seed0"])["train/sec/seed0"] > est["train/sec/seed0"]
    longer = estimate(units, {**PLAN, "steps": 40}, 200, 48, ["sec/seed0"])
    assert longer["train/sec/seed0"] == pytest.approx(2 * est["train/sec/seed0"])
    # Without a warm-up (none asked for), no warm-up stages.
    assert "warmup_s" not in estimate(units, {**PLAN, "warmup_steps": 0}, 200, 48, [])


def test_remaining_time_rescales_by_how_far_finished_stages_were_off() -> None:
    clock = RunClock({"a_s": 10.0, "b_s": 30.0}, machine="test CPU")
    assert clock.remaining() == pytest.approx(40.0)
    line = clock.finished("a_s", 20.0)      # twice as slow as estimated: what is left doubles too
    assert clock.remaining() == pytest.approx(60.0)
    assert "min left" in line and "test CPU" in line
    clock.finished("b_s", 55.0)
    assert clock.remaining() == 0.0
