"""``python -m seccrm.integrations.verl.main [hydra overrides]``: VERL's PPO entry point with the SEC sampler.

It takes exactly the configuration of ``python -m verl.trainer.main_ppo`` (VERL's own
``ppo_trainer.yaml`` and any overrides) and runs VERL's own trainer. Two names are swapped, inside
VERL's task-runner process only:

- the sampler factory (``create_rl_sampler``): when ``data.sampler.class_path`` is set it builds that
  class (the :class:`~seccrm.integrations.verl.sampler.SECSampler`), otherwise VERL's own sampler;
- the trainer class (``RayPPOTrainer``) by a subclass whose ``_update_actor(batch)`` first gives the
  batch (advantages computed, rows already reordered) to ``sampler.update`` and then adds the
  curriculum metrics (``curriculum/p/<arm>``, ``curriculum/q/<arm>``, ...) to the step's metrics.

Why: VERL 0.8 removed the curriculum-sampler hook, so on 0.8+ this is how the bandit sees each step.
On 0.7.x VERL's hook still exists; running through this entry point there also updates the
bandit *before* the step's checkpoint (VERL's hook runs after it, so a run resumed from VERL's own
hook misses one update), and :data:`~seccrm.integrations.verl.sampler.UPDATED_FLAG` keeps the
second call from updating twice. VERL 0.6 has no ``_update_actor`` step: the trainer is left as it
is and VERL's own hook updates the sampler. VERL 0.5 cannot take another task runner: use
``python -m verl.trainer.main_ppo`` there.

VERL 0.8+ defaults to its "v1" trainer (``trainer.use_v1=true``). Where it is installed (with
TransferQueue), this entry point runs it with :class:`SECTaskRunnerV1`, whose ``run`` applies
:func:`seccrm.integrations.verl.v1.install` (the same sampler factory, and every v1 trainer's
``step`` followed by the bandit's update). ``trainer.use_v1=false`` keeps the legacy
``RayPPOTrainer`` path above; releases without v1 (0.5-0.7) always take it.
"""

from __future__ import annotations

import functools
import inspect
import os
from types import ModuleType
from typing import Any

from seccrm.integrations.verl import v1
from seccrm.integrations.verl.sampler import create_sampler

__all__ = ["SECTaskRunner", "create_sampler", "install", "main", "run", "sec_trainer_class"]

_SECCRM_TRAINER = "_seccrm_trainer"


def sec_trainer_class(base: type) -> type:
    """A subclass of VERL's ``RayPPOTrainer`` that updates the curriculum sampler every step."""
    if getattr(base, _SECCRM_TRAINER, False):
        return base
    if not hasattr(base, "_update_actor"):  # VERL <= 0.6: no such step; VERL's own hook updates the sampler
        return base

    class SECRayPPOTrainer(base):  # type: ignore[misc, valid-type]
        """VERL's trainer; ``_update_actor`` first teaches the curriculum sampler from the batch."""

        def _update_actor(self, batch: Any) -> Any:
            sampler = getattr(getattr(self, "train_dataloader", None), "sampler", None)
            update = getattr(sampler, "update", None)  # any curriculum sampler; VERL's own have none
            metrics = update(batch) if callable(update) else None
            output = super()._update_actor(batch)
            if metrics:
                # reduce_metrics averages each entry; a scalar is its own mean
                output.meta_info.setdefault("metrics", {}).update(metrics)
            return output

    setattr(SECRayPPOTrainer, _SECCRM_TRAINER, True)
    return SECRayPPOTrainer


def runner_module() -> ModuleType:
    """The module whose ``TaskRunner.run`` builds the sampler and the trainer (it moved in 0.8)."""
    try:
        from verl.trainer import main_ppo_v0 as module  # VERL 0.8+
    except ImportError:
        from verl.trainer import main_ppo as module  # VERL 0.5-0.7
    return module


def install(module: ModuleType) -> None:
    """Swap ``create_rl_sampler`` and ``RayPPOTrainer`` in ``module`` (idempotent)."""
    module.RayPPOTrainer = sec_trainer_class(module.RayPPOTrainer)  # type: ignore[attr-defined]
    current = module.create_rl_sampler  # type: ignore[attr-defined]
    if not isinstance(current, functools.partial):
        module.create_rl_sampler = functools.partial(create_sampler, fallback=current)  # type: ignore[attr-defined]


def _plain_task_runner() -> type:
    """VERL's ``TaskRunner`` as a plain class (0.8+ decorates it with ``ray.remote``)."""
    base = runner_module().TaskRunner
    return getattr(base, "__ray_actor_class__", base)


class SECTaskRunner(_plain_task_runner()):  # type: ignore[misc]
    """VERL's task runner; ``run`` installs the two swaps in its own (Ray actor) process first.

    Defined at module level so that Ray pickles it by reference: the actor imports this module and
    VERL's, and ``super().run`` then reads the swapped names from VERL's module.
    """

    def run(self, config: Any) -> Any:
        install(runner_module())
        return super().run(config)


def _plain_task_runner_v1() -> type | None:
    """VERL's ``TaskRunnerV1`` as a plain class, or None where this VERL has no v1 trainer."""
    if not v1.available():
        return None
    from verl.trainer import main_ppo

    base = main_ppo.TaskRunnerV1
    return getattr(base, "__ray_actor_class__", base)  # type: ignore[no-any-return]


_V1_BASE = _plain_task_runner_v1()
if _V1_BASE is not None:

    class SECTaskRunnerV1(_V1_BASE):  # type: ignore[misc, valid-type]
        """VERL's v1 task runner; ``run`` installs the sampler factory and the SEC trainers first."""

        def run(self, config: Any) -> Any:
            v1.install()
            return super().run(config)


def run(config: Any) -> None:
    """Prepare the config as VERL's own ``main`` does, then run VERL with :class:`SECTaskRunner`."""
    import ray
    from omegaconf import open_dict
    from verl.trainer import main_ppo
    from verl.utils.device import auto_set_device

    if "task_runner_class" not in inspect.signature(main_ppo.run_ppo).parameters:
        raise SystemExit("this VERL (<= 0.5) cannot take seccrm's task runner: run `python -m "
                         "verl.trainer.main_ppo` with the same data.sampler.* keys (VERL's own sampler hook)")
    auto_set_device(config)
    if hasattr(main_ppo, "migrate_legacy_reward_impl"):  # VERL 0.7: legacy reward keys -> reward.*
        config = main_ppo.migrate_legacy_reward_impl(config)
    if config.trainer.get("use_v1", False):
        if _V1_BASE is not None:
            if hasattr(main_ppo, "validate_config"):  # what VERL's own main does before run_ppo
                main_ppo.validate_config(config=config, use_reference_policy=main_ppo.need_reference_policy(config),
                                         use_critic=main_ppo.need_critic(config))
            print("seccrm: running VERL's v1 trainer "
                  f"(trainer_mode={config.trainer.v1.get('trainer_mode', 'sync')}) with the SEC sampler")
            main_ppo.run_ppo(config, task_runner_class=ray.remote(num_cpus=1)(SECTaskRunnerV1))
            return
        print("seccrm: running VERL's RayPPOTrainer (trainer.use_v1=false): this VERL has no v1 trainer "
              "(or TransferQueue is not installed)")
        with open_dict(config):
            config.trainer.use_v1 = False
    main_ppo.run_ppo(config, task_runner_class=ray.remote(num_cpus=1)(SECTaskRunner))


def main() -> None:
    """Hydra entry point over VERL's own ``ppo_trainer`` config."""
    import hydra
    import verl.trainer

    config_dir = os.path.join(os.path.dirname(verl.trainer.__file__), "config")
    hydra.main(config_path=config_dir, config_name="ppo_trainer", version_base=None)(run)()


if __name__ == "__main__":
    main()
