"""Any combination of TrainConfig values either trains one tiny step with finite numbers, or is refused
before any work with a message that names a flag it set."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from seccrm.rl.config import TrainConfig
from seccrm.rl.trainer import Trainer

FLOATS = st.sampled_from([0.0, -1.0, 1e-4, 0.3, 1.0, 2.0, 11.0, 1e9, math.inf, -math.inf, math.nan])
SMALL_INTS = st.sampled_from([-3, -1, 0, 1, 2, 4])
FIELDS: dict[str, Any] = {
    "lr": FLOATS, "temperature": FLOATS, "top_p": FLOATS, "clip_eps": FLOATS, "grad_clip": FLOATS,
    "alpha": FLOATS, "tau": FLOATS, "kl_coef": FLOATS, "entropy_coef": FLOATS, "weight_decay": FLOATS,
    "prompts_per_step": SMALL_INTS, "group_size": SMALL_INTS, "mini_batches": SMALL_INTS,
    "micro_batch_groups": SMALL_INTS, "dynamic_sampling": st.sampled_from([-1, 0, 1]),
    "max_new_tokens": st.sampled_from([-1, 0, 1, 4, 100_000]), "logits_chunk": st.sampled_from([-1, 0, 1, 1024]),
    "max_prompt_tokens": st.sampled_from([-5, 0, 100_000]), "lora_r": st.sampled_from([-3, 0, 2]),
    "eval_every": st.sampled_from([-1, 0]), "eval_limit": st.sampled_from([-1, 0, 2]),
    "save_every": st.sampled_from([-1, 0, 1]), "max_nan_steps": st.sampled_from([-1, 0, 2]),
    "keep_checkpoints": st.sampled_from([-1, 0, 1]), "scale_adv_by_std": st.booleans(),
    "skip_zero_adv": st.booleans(), "curriculum": st.sampled_from(["sec", "uniform", "nope"]),
    "curriculum_signal": st.sampled_from(["advantage", "correctness", "x"]),
    "unsampled": st.sampled_from(["hold", "decay", "later"]), "device": st.sampled_from(["cpu", "cpux", "cuda:x"]),
    "bf16": st.sampled_from(["off", "on", "maybe"]), "rollout_backend": st.sampled_from(["auto", "shared", "warp"]),
    "loss_agg": st.sampled_from(["token-mean", "seq-mean-token-mean", "seq-sum"]),
}


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.fixed_dictionaries({}, optional=FIELDS))
@example(values={"lr": 1.0, "temperature": 2.0, "skip_zero_adv": False, "entropy_coef": 1e9, "kl_coef": 0.3})
@example(values={"prompts_per_step": 4, "mini_batches": 2, "micro_batch_groups": 2, "curriculum": "uniform",
                 "lora_r": 2, "keep_checkpoints": 0, "max_nan_steps": 0, "loss_agg": "seq-mean-token-mean"})
def test_any_config_trains_one_finite_step_or_is_refused_naming_a_flag(tiny_suite: Path, tmp_path_factory,
                                                                        values: dict[str, Any]) -> None:
    out = tmp_path_factory.mktemp("run")
    base = {"data": str(tiny_suite), "model": "tiny", "out": str(out), "steps": 1, "prompts_per_step": 2,
            "group_size": 2, "max_new_tokens": 4, "eval_every": 0, "eval_max_new_tokens": 4, "save_every": 1,
            "device": "cpu", "bf16": "off"}
    try:
        trainer = Trainer(TrainConfig(**{**base, **values}))
    except ValueError as e:
        flags = [f"--{k.replace('_', '-')}" for k in values] + ["--curriculum"]
        assert any(f in str(e) for f in flags), f"refused without naming a flag it set: {e}"
        assert not (out / "metrics.jsonl").exists() or not (out / "metrics.jsonl").read_text().strip()
        return
    last = trainer.train()
    numbers = {k: v for k, v in last.items() if isinstance(v, float)}
    assert all(math.isfinite(v) for k, v in numbers.items() if k.startswith(("policy/", "train/"))), numbers
    assert last.get("train/nonfinite_steps_total", 0) == 0
