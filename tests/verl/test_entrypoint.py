"""``seccrm.integrations.verl.main``: the swaps it makes in VERL's task runner, and the trainer hook.

A whole VERL run needs GPUs; these tests check the two places where the entry point touches VERL:
the names ``TaskRunner.run`` reads, and ``_update_actor`` of VERL's real ``RayPPOTrainer`` subclass.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

# "verl.protocol", not "verl": pytest puts tests/ on sys.path, where tests/verl passes for a package
verl = pytest.importorskip("verl.protocol")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from verl import DataProto  # noqa: E402

from seccrm.integrations.verl import main as entry  # noqa: E402
from seccrm.integrations.verl.sampler import SECSampler  # noqa: E402


def test_task_runner_reads_the_swapped_names(monkeypatch: pytest.MonkeyPatch) -> None:
    module = entry.runner_module()
    monkeypatch.setattr(module, "create_rl_sampler", module.create_rl_sampler)  # undone after the test
    monkeypatch.setattr(module, "RayPPOTrainer", module.RayPPOTrainer)
    base_run = entry._plain_task_runner().run
    assert issubclass(entry.SECTaskRunner, entry._plain_task_runner())
    # VERL's run() looks both names up in its module at call time, so swapping them there is enough.
    assert base_run.__globals__ is vars(module)
    assert {"create_rl_sampler", "RayPPOTrainer"} <= set(base_run.__code__.co_names)
    original_trainer = module.RayPPOTrainer
    entry.install(module)
    entry.install(module)  # idempotent: no double wrapping
    assert module.RayPPOTrainer.__mro__[1] is original_trainer
    assert getattr(module.RayPPOTrainer, entry._SECCRM_TRAINER)
    assert module.create_rl_sampler.func is entry.create_sampler


def test_update_actor_teaches_the_sampler_first(train_dataset: Any, sampler_config: Callable[..., Any],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    sampler = SECSampler(train_dataset, sampler_config().data)
    seen: list[float] = []

    def actor_update(self: Any, batch: DataProto) -> DataProto:  # stands in for the FSDP workers
        seen.append(sum(sampler.curriculum.q.values()))  # the bandit had already learned
        return DataProto(meta_info={"metrics": {"actor/pg_loss": [0.5]}})

    monkeypatch.setattr(RayPPOTrainer, "_update_actor", actor_update)
    trainer_cls = entry.sec_trainer_class(RayPPOTrainer)
    trainer = object.__new__(trainer_cls)  # no workers: only the hook is under test
    trainer.train_dataloader = SimpleNamespace(sampler=sampler)

    rows = [train_dataset[i]["extra_info"] for i in range(4)]
    adv = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [0.5, 0.0], [-0.5, 0.0]])
    batch = DataProto.from_dict(
        tensors={"advantages": adv, "response_mask": torch.tensor([[1, 1], [1, 1], [1, 0], [1, 0]])},
        non_tensors={"extra_info": np.array(rows, dtype=object)})
    out = trainer._update_actor(batch)
    assert seen and seen[0] > 0
    assert sampler.curriculum.step == 1
    assert out.meta_info["metrics"]["actor/pg_loss"] == [0.5]
    for arm in sampler.arms:
        assert out.meta_info["metrics"][f"curriculum/q/{arm}"] == sampler.curriculum.q[arm]
    # VERL 0.7 calls its own hook on the same batch at the end of the step: no second update
    sampler.update(batch)
    assert sampler.curriculum.step == 1
