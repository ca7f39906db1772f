"""The launch recipe's config composes on top of VERL's own ``ppo_trainer`` and holds the report's values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

# "verl.protocol", not "verl": pytest puts tests/ on sys.path, where tests/verl passes for a package
verl = pytest.importorskip("verl.protocol")

from hydra import compose, initialize_config_dir  # noqa: E402

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "verl"


def _compose(*overrides: str) -> Any:
    with initialize_config_dir(config_dir=str(RECIPE / "config"), version_base=None):
        return compose(config_name="sec_grpo", overrides=list(overrides))


def test_recipe_holds_the_reports_settings(verl_export: Path, tokenizer_dir: Path) -> None:
    cfg = _compose(f"data.train_files={verl_export / 'train.parquet'}", f"actor_rollout_ref.model.path={tokenizer_dir}",
                   "++data.sampler.metrics_path=/tmp/curriculum.jsonl")
    actor, rollout = cfg.actor_rollout_ref.actor, cfg.actor_rollout_ref.rollout
    assert cfg.algorithm.adv_estimator == "grpo" and cfg.data.train_batch_size == 256
    assert (rollout.n, rollout.temperature, rollout.top_p) == (8, 0.7, 0.9)
    assert (actor.optim.lr, actor.grad_clip, actor.clip_ratio, actor.loss_agg_mode) == (1e-6, 1.0, 0.2, "token-mean")
    assert (rollout.name, rollout.tensor_model_parallel_size, rollout.gpu_memory_utilization) == ("vllm", 2, 0.25)
    assert rollout.enable_chunked_prefill and rollout.enforce_eager
    assert actor.entropy_from_logits_with_chunking and cfg.actor_rollout_ref.model.enable_gradient_checkpointing
    assert actor.strategy == "fsdp" and not actor.use_kl_loss and not cfg.algorithm.use_kl_in_reward
    assert (cfg.trainer.nnodes, cfg.trainer.n_gpus_per_node) == (1, 2)
    assert cfg.data.dataloader_num_workers == 0
    assert cfg.data.sampler.class_path == "pkg://seccrm.integrations.verl.sampler"
    assert (cfg.data.sampler.alpha, cfg.data.sampler.tau, cfg.data.sampler.unsampled) == (0.3, 0.5, "hold")
    assert cfg.reward.custom_reward_function.name == "compute_score"
    # VERL's own checks of a config (batch sizes against GPUs, mini-batches, ...) accept it
    from verl.utils.config import validate_config

    validate_config(config=cfg, use_reference_policy=False, use_critic=False)


def test_launch_script_uses_the_recipe() -> None:
    script = (RECIPE / "run_sec_grpo.sh").read_text()
    assert "--config-name sec_grpo" in script and "seccrm.integrations.verl.main" in script
    assert "verl.model_merger merge --backend fsdp" in script


def _leaves(node: Any, prefix: str = "") -> list[str]:
    from omegaconf import DictConfig

    out: list[str] = []
    for key in node:
        path = f"{prefix}{key}"
        value = node[key]
        out += _leaves(value, path + ".") if isinstance(value, DictConfig) else [path]
    return out


def test_recipe_keys_exist_in_this_verl(verl_config: Any) -> None:
    """Hydra merges unknown keys of a recipe file silently: check each one against VERL's own schema,
    so that a renamed option (a typo, a VERL release that dropped it) fails here, not on a GPU node."""
    from omegaconf import OmegaConf

    recipe = OmegaConf.load(RECIPE / "config" / "sec_grpo.yaml")
    del recipe["hydra"], recipe["defaults"]
    base = verl_config()

    def declared(dotted: str) -> bool:  # the key exists (its value may still be "???", like rollout.name)
        *parents, last = dotted.split(".")
        node = OmegaConf.select(base, ".".join(parents)) if parents else base
        return node is not None and last in node.keys()  # `in node` is False for "???" values

    missing = [k for k in _leaves(recipe) if not k.startswith("data.sampler.") and not declared(k)]
    assert missing == []
    assert not declared("actor_rollout_ref.actor.no_such_option")


def test_entry_point_prepares_config_and_runner(tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``run(config)`` does what VERL's own ``main`` does to the config and hands VERL's ``run_ppo`` the
    seccrm task runner (stopped there: no Ray, no GPUs): the v1 runner where this VERL has the v1
    trainer, the legacy one when ``trainer.use_v1=false`` or on releases without v1."""
    from verl.trainer import main_ppo

    from seccrm.integrations.verl import main as entry
    from seccrm.integrations.verl import v1

    calls: list[tuple[Any, Any]] = []
    monkeypatch.setattr(main_ppo, "run_ppo", lambda config, task_runner_class: calls.append((config, task_runner_class)))
    monkeypatch.setattr(main_ppo, "validate_config", lambda **kwargs: None, raising=False)  # needs GPU settings
    entry.run(_compose(f"actor_rollout_ref.model.path={tokenizer_dir}", "++trainer.use_v1=true"))
    (config, runner), = calls
    assert config.reward.custom_reward_function.name == "compute_score"
    if v1.available():
        assert config.trainer.use_v1 is True
        assert runner.__ray_actor_class__ is entry.SECTaskRunnerV1  # ray.remote(...) around seccrm's v1 runner
        assert issubclass(entry.SECTaskRunnerV1, main_ppo.TaskRunnerV1.__ray_actor_class__)
    else:
        assert config.trainer.use_v1 is False
        assert runner.__ray_actor_class__ is entry.SECTaskRunner
    calls.clear()
    entry.run(_compose(f"actor_rollout_ref.model.path={tokenizer_dir}", "++trainer.use_v1=false"))
    (config, runner), = calls
    assert config.trainer.use_v1 is False and runner.__ray_actor_class__ is entry.SECTaskRunner
