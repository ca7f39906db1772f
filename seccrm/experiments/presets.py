"""The experiment driver's presets (``seccrm experiment --preset``; ``seccrm demo`` runs ``demo``).

Each preset holds the training settings (a TrainConfig preset plus overrides), the experiment's own
settings (curricula, seeds, steps, warm-up, evaluation sizes and prompt limits, the sampled probe) and
what changes on an agentic suite (``agentic``: its ``train`` merges into the training settings, the
rest replaces the experiment's). Settings a preset leaves out take ``OPTIONAL_SETTINGS``.
"""

from __future__ import annotations

from typing import Any

from seccrm.curriculum.registry import CURRICULA
from seccrm.rl.config import PRESETS

ALL_CURRICULA: tuple[str, ...] = tuple(CURRICULA)   # the registry's names

# On an agentic suite: every run trains on episodes and every evaluation plays them. Per-turn lengths
# long enough for a query; fewer, smaller groups, since an episode costs several turns of decoding.
AGENTIC_TRAIN: dict[str, Any] = dict(mode="agentic", max_turns=6, max_new_tokens=160, eval_max_new_tokens=160,
                                     max_prompt_tokens=3000, prompts_per_step=2, group_size=6,
                                     micro_batch_groups=1, micro_batch_completions=1)

# The demo's GRPO recipe on top of the cpu-demo preset, chosen by measurement (docs/results.md, run R1):
# up to 3 extra draws of 4 prompts a step, so that most steps train on groups that mix right and wrong
# answers (2.6 of 4 on average, against 0.7 without); one group per backward pass with activation
# checkpointing, so the update's memory is one group's.
DEMO_TRAIN: dict[str, Any] = {**{k: v for k, v in PRESETS["cpu-demo"].items() if k not in ("model", "steps")},
                              "max_prompt_tokens": 1024, "bf16": "auto", "eval_limit": 0, "dynamic_sampling": 3,
                              "micro_batch_groups": 1, "gradient_checkpointing": "on"}

EXPERIMENT_PRESETS: dict[str, dict[str, Any]] = {
    # The embedded SmolLM2-135M on a 2-core CPU (about 11 minutes a run, 3.5 of them training, and 3 hours
    # in all: docs/results.md): SEC, uniform and learnability over 5 seeds of 12 short steps. SEC's tau is 0.15, not the paper's 0.5: tau sets how
    # greedy the softmax is relative to the signal's scale, and the correctness signal of a 135M model
    # averages at most 0.2 on its best arm (0.01-0.2 over the arms), against 0.5-0.8 for the paper's
    # |A|. At 0.5, SEC stayed within 0.10-0.17 of uniform and drew exactly uniform's arms for all 12
    # steps of seed 0 (same seed, same draws); tau = 0.15 keeps the paper's greediness on this scale.
    "cpu-exp": dict(
        train=dict(prompts_per_step=4, group_size=8, max_new_tokens=32, max_prompt_tokens=1024, lr=2e-5,
                   scale_adv_by_std=False, micro_batch_groups=4, eval_every=0, eval_limit=48,
                   eval_max_new_tokens=32, save_every=100, keep_checkpoints=0, tau=0.15),
        curricula=("sec", "uniform", "learnability"), seeds=(0, 1, 2, 3, 4), steps=12,
        warmup_steps="auto", warmup_default_steps=12, warmup_batch=4, warmup_lr=1e-4, warmup_check_every=3,
        eval_val=200, eval_test=48, eval_max_new_tokens=32, eval_max_prompt_tokens=1024,
        eval_test_max_prompt_tokens=1536,   # the held-out prompts show several policy articles
        agentic=dict(train=AGENTIC_TRAIN, eval_max_new_tokens=160, eval_max_prompt_tokens=0,
                     eval_test_max_prompt_tokens=0),
        note="CPU budget: SEC, uniform and learnability over 5 seeds, 12 steps of 4 prompts x 8 completions "
             "at lr 2e-5 without std scaling, SEC at tau 0.15 (the paper's 0.5 is for a signal about three "
             "times larger), prompts of at most 1,024 tokens, evaluation on 200 validation and 48 test "
             "instances (add curricula with --curricula)."),
    # One GPU, the same protocol with every curriculum; for SmolLM2, Qwen2.5-3B or any local folder.
    "gpu-exp": dict(
        train={**{k: v for k, v in PRESETS["gpu"].items() if k != "steps"}, "save_every": 20,
               "keep_checkpoints": 0, "eval_every": 0},
        curricula=ALL_CURRICULA, seeds=(0, 1, 2), steps=100,
        warmup_steps="auto", warmup_default_steps=60, warmup_batch=16, warmup_lr=5e-5,
        eval_val=240, eval_test=300, eval_max_new_tokens=256, eval_max_prompt_tokens=0,
        agentic=dict(train=dict(mode="agentic", max_turns=6), eval_max_prompt_tokens=0, eval_test_max_prompt_tokens=0),
        note="GPU budget: all 7 curricula, 3 seeds, 100 steps of 64 prompts x 8 completions."),
    # The main job (`seccrm demo`): SEC, one seed, 40 steps of the demo's recipe after 12 warm-up steps;
    # 200 validation instances with a sampled probe (avg@4) on 48 of them; the base model only on 12
    # instances of each set (without the answer format it scores 0). Agentic: an episode costs several
    # turns of decoding (about 16 s greedy on a 2-core CPU): 32 validation and 8 test episodes, no probe.
    # Agentic recipe (docs/results.md, run a3): 72 steps of imitating the analysts, so that the model's
    # second queries run (24 steps left loops, and GRPO then learnt to answer after one query); GRPO at
    # lr 1e-5 with 0.05 a query that ran (at most 0.15) and a repeated query costing what it earns.
    # Evaluation turns of up to 384 tokens: the analysts' turns reach 380, and at 160 a third of the
    # validation episodes ended with a query cut short (accuracy 9.4%; 25.0% at 384, same model).
    "demo": dict(
        train=DEMO_TRAIN, curricula=("sec",), seeds=(0,), steps=40, learning_curve=False,
        warmup_steps=12, warmup_default_steps=12, warmup_batch=4, warmup_lr=1e-4, warmup_check_every=3,
        warmup_probe=16, warmup_target_format=0.8,
        eval_val=200, eval_test=48, eval_base=12, probe_k=4, probe_n=48, eval_max_new_tokens=64,
        eval_max_prompt_tokens=1024, eval_test_max_prompt_tokens=1536,
        agentic=dict(train={**AGENTIC_TRAIN, "dynamic_sampling": 0, "lr": 1e-5, "query_bonus": 0.05,
                            "query_bonus_cap": 0.15, "repeat_penalty": 0.05}, steps=6, warmup_steps=72,
                     warmup_check_every=0, eval_val=32, eval_test=8, eval_base=8, probe_k=0,
                     eval_max_new_tokens=384, eval_max_prompt_tokens=3000, eval_test_max_prompt_tokens=3000),
        note="The main job: SEC from the format warm-up, one seed, the demo's recipe (docs/results.md)."),
}

# Experiment settings that presets may leave out, with their defaults.
OPTIONAL_SETTINGS: dict[str, Any] = dict(warmup_check_every=0, warmup_probe=32, warmup_target_format=0.9, eval_base=0,
                                 probe_k=0, probe_n=0, learning_curve=True, eval_test_max_prompt_tokens=0)
