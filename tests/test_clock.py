"""The demo's time estimate: stage estimates from measured units, and the remaining-time line."""

from __future__ import annotations

import pytest

from seccrm.experiments.clock import RunClock, Units, estimate

OPTS = dict(max_new_tokens=64, eval_base=12, warmup_steps=10, warmup_batch=4, warmup_check_every=0,
            warmup_probe=16, probe_k=4, probe_n=50, steps=20)
TRAIN = dict(prompts_per_step=4, group_size=8, dynamic_sampling=0)


def test_estimate_scales_with_the_work_each_stage_does() -> None:
    units = Units(greedy_s=2.0, sample_s=0.5, train_token_s=0.001, prompt_tokens=400, seconds=30)
    est = estimate(units, OPTS, n_val=200, n_test=48, train=TRAIN)
    assert est["eval_base_s"] == pytest.approx(2 * 12 * 2.0)
    # Evaluation after training: answers stop early (half the base's cost), plus the sampled probe.
    assert est["eval_sec_s"] == pytest.approx(248 * 1.0 + 4 * 50 * 0.5)
    step = 4 * 8 * 0.5 + 4 * (400 + 8 * 64) * 0.001
    assert est["train_s"] == pytest.approx(20 * step)
    # Redrawing groups without signal doubles the rollouts drawn, and twice the steps cost twice as much.
    assert estimate(units, OPTS, 200, 48, {**TRAIN, "dynamic_sampling": 1})["train_s"] > est["train_s"]
    assert estimate(units, {**OPTS, "steps": 40}, 200, 48, TRAIN)["train_s"] == pytest.approx(2 * est["train_s"])


def test_remaining_time_rescales_by_how_far_finished_stages_were_off() -> None:
    clock = RunClock({"a_s": 10.0, "b_s": 30.0}, machine="test CPU")
    assert clock.remaining() == pytest.approx(40.0)
    line = clock.finished("a_s", 20.0)      # twice as slow as estimated: what is left doubles too
    assert clock.remaining() == pytest.approx(60.0)
    assert "min left" in line and "test CPU" in line
    clock.finished("b_s", 55.0)
    assert clock.remaining() == 0.0
