"""The SEC curriculum in VERL's v1 trainer, against the installed VERL (0.8+) and a real TransferQueue.

The batch of a v1 step lives in TransferQueue. These tests put completions there as VERL's agent loop
does, let VERL's own ``PPOTrainer._compute_advantage`` compute GRPO advantages from the queue, then
run the SEC trainer's ``step`` hook, which reads them back and updates the bandit. The bandit's Q must
equal seccrm's own SEC fed the same advantages. The v1 fit loop itself needs GPUs and an inference
engine; on CPU the tests reach the sampler, the queue and VERL's advantage code.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("verl.protocol")
pytest.importorskip("transfer_queue")
pytest.importorskip("verl.trainer.ppo.v1")

import torch  # noqa: E402
from torchdata.stateful_dataloader import StatefulDataLoader  # noqa: E402
from verl.utils.dataset.rl_dataset import collate_fn  # noqa: E402

from seccrm.curriculum import SEC  # noqa: E402
from seccrm.integrations.verl import main as sec_main  # noqa: E402
from seccrm.integrations.verl import v1  # noqa: E402
from seccrm.integrations.verl.sampler import SECSampler, derive_seed  # noqa: E402
from seccrm.rl.grpo import group_advantages  # noqa: E402

N = 4  # completions per prompt (actor_rollout_ref.rollout.n)


@pytest.fixture(scope="module")
def queue(verl_config: Callable[..., Any]) -> Iterator[Any]:
    """A local Ray and TransferQueue, configured from VERL's own ``transfer_queue`` config."""
    import ray
    import transfer_queue as tq

    # TransferQueue starts a controller and one actor per storage unit, each holding one logical CPU:
    # VERL's default of 8 storage units would wait for ever for CPUs on a small machine.
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    tq.init(verl_config("transfer_queue.backend.SimpleStorage.num_data_storage_units=1").transfer_queue)
    try:
        yield tq
    finally:
        tq.close()
        ray.shutdown()


def test_install_wraps_every_v1_trainer_and_the_sampler_factory(train_dataset: Any,
                                                                 sampler_config: Callable[..., Any]) -> None:
    from verl.trainer.ppo.v1 import PPOTrainerSync, get_trainer_cls, trainer_base

    assert v1.available() and sec_main._V1_BASE is not None
    v1.install()
    classes = {name: get_trainer_cls(name) for name in trainer_base.TRAINER_REGISTRY}
    assert {"sync", "colocate_async", "separate_async"} <= set(classes)
    assert issubclass(classes["sync"], PPOTrainerSync) and classes["sync"].__name__ == "SECPPOTrainerSync"
    v1.install()  # idempotent: no second wrapping
    assert {name: get_trainer_cls(name) for name in trainer_base.TRAINER_REGISTRY} == classes
    # What PPOTrainer._init_dataloader calls: the SEC sampler from data.sampler.*, VERL's own otherwise.
    sampler = trainer_base.create_rl_sampler(sampler_config().data, train_dataset)
    assert isinstance(sampler, SECSampler)
    plain = trainer_base.create_rl_sampler(sampler_config("~data.sampler.class_path").data, train_dataset)
    assert not isinstance(plain, SECSampler)


def _put_step(tq: Any, train_dataset: Any, rows: list[int], seed: int, step: int) -> tuple[Any, list[float], list[str]]:
    """Put N completions of each prompt row into TransferQueue as VERL's agent loop does
    (keys ``{uid}_{session}_{index}``; the first prompt's first session is a two-output episode).
    Returns the step's ``KVBatchMeta``, the final outputs' rewards (group-major) and their arms."""
    from transfer_queue import KVBatchMeta
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    gen = torch.Generator().manual_seed(seed)
    keys, fields, tags, rewards, arms = [], [], [], [], []
    for p, row in enumerate(rows):
        info = train_dataset[row]["extra_info"]
        uid = f"s{step}p{p}"
        for session in range(N):
            outputs = 2 if (p == 0 and session == 0) else 1
            score = float([0.0, 0.1, 1.0][int(torch.randint(0, 3, (1,), generator=gen))])
            for index in range(outputs):
                length = int(torch.randint(1, 9, (1,), generator=gen))
                mask = torch.ones(length, dtype=torch.int64)
                mask[: length // 3] = 0 if index == 1 else 1       # a later turn: tool tokens at its start
                token_scores = torch.zeros(length)
                token_scores[-1] = score                            # the reward sits on the last token
                keys.append(f"{uid}_{session}_{index}")
                fields.append({"prompts": torch.arange(3, dtype=torch.int64), "uid": uid,
                               "responses": torch.arange(length, dtype=torch.int64),
                               "response_mask": mask, "rm_scores": token_scores,
                               "old_log_probs": torch.zeros(length), "extra_info": dict(info)})
                tags.append({"status": "success", "global_steps": step})
            rewards.append(score)
            arms.append(str(info["arm"]))
    order = list(range(len(keys)))
    random.Random(seed).shuffle(order)  # the queue's rows need not be group-major
    keys, fields, tags = [keys[i] for i in order], [fields[i] for i in order], [tags[i] for i in order]
    # VERL pads a batch to a multiple of the data-parallel size with copies tagged is_padding
    keys.append(f"pad{step}_0_0")
    fields.append({**fields[0], "uid": f"pad{step}"})
    tags.append({"status": "success", "global_steps": step, "is_padding": True})
    tq.kv_batch_put(keys=keys, partition_id="train", fields=list_of_dict_to_tensordict(fields), tags=tags)
    return KVBatchMeta(partition_id="train", keys=keys, tags=tags), rewards, arms


class _VerlStep:
    """Stands in for a v1 trainer: its ``step`` runs VERL's own advantage code on the queued batch."""

    def __init__(self, config: Any, loader: Any) -> None:
        self.config, self.train_dataloader, self.batch = config, loader, None

    def step(self, metrics: dict, timing_raw: dict) -> Any:
        from verl.trainer.ppo.v1.trainer_base import PPOTrainer

        return PPOTrainer._compute_advantage(self, self.batch, metrics)  # reads the queue, writes advantages


def test_step_updates_the_bandit_from_transfer_queue_exactly(queue: Any, train_dataset: Any,
                                                             sampler_config: Callable[..., Any],
                                                             verl_config: Callable[..., Any],
                                                             tmp_path: Path) -> None:
    config = sampler_config(f"actor_rollout_ref.rollout.n={N}", "algorithm.adv_estimator=grpo")
    sampler = SECSampler(train_dataset, config.data)
    loader = StatefulDataLoader(train_dataset, batch_size=8, sampler=sampler, num_workers=0, drop_last=True,
                                collate_fn=collate_fn)
    trainer = v1.sec_trainer_class(_VerlStep)(config, loader)
    ref = SEC(sampler.arms, seed=derive_seed(sampler.seed, "curriculum"))
    rng = random.Random(0)
    for step in range(3):
        rows = rng.sample(range(len(train_dataset)), 6)
        trainer.batch, rewards, arms = _put_step(queue, train_dataset, rows, seed=step, step=step)
        metrics: dict[str, Any] = {}
        trainer.step(metrics, {})
        adv = group_advantages(torch.tensor(rewards), N, scale_by_std=True).tolist()
        assert any(abs(a) > 0.1 for a in adv)
        ref.update(arms, adv, rewards)
        for arm in sampler.arms:
            assert sampler.curriculum.q[arm] == pytest.approx(ref.q[arm], rel=1e-6, abs=1e-9), arm
            assert metrics[f"curriculum/q/{arm}"] == pytest.approx(ref.q[arm], rel=1e-6, abs=1e-9)
            assert metrics[f"curriculum/n/{arm}"] == ref.metrics()[f"curriculum/n/{arm}"]
        queue.kv_clear(keys=trainer.batch.keys, partition_id="train")
    assert sampler.curriculum.step == 3 and any(abs(q) > 1e-3 for q in sampler.curriculum.q.values())

    # The state v1 writes into data.pt (after the step's update) resumes the bandit and the draws.
    torch.save(loader.state_dict(), tmp_path / "data.pt")
    after = [e["instance_id"] for e in next(iter(loader))["extra_info"]]
    sampler2 = SECSampler(train_dataset, config.data)
    loader2 = StatefulDataLoader(train_dataset, batch_size=8, sampler=sampler2, num_workers=0, drop_last=True,
                                 collate_fn=collate_fn)
    loader2.load_state_dict(torch.load(tmp_path / "data.pt", weights_only=False))
    assert [e["instance_id"] for e in next(iter(loader2))["extra_info"]] == after
    assert sampler2.curriculum.state_dict() == sampler.curriculum.state_dict()  # both after one more draw
    assert sampler2.curriculum.q == sampler.curriculum.q and sampler2.curriculum.step == 3


def test_tq_stats_count_each_episode_once_and_skip_padding() -> None:
    from tensordict import TensorDict

    nested = lambda rows: torch.nested.nested_tensor([torch.tensor(r, dtype=torch.float32) for r in rows],  # noqa: E731
                                                      layout=torch.jagged)
    data = TensorDict({"advantages": nested([[0.5, 0.5], [0.5, 0.5, 0.5], [-1.0], [2.0]]),
                       "response_mask": nested([[1, 1], [0, 1, 1], [1], [1]]),
                       "rm_scores": nested([[0.0, 1.0], [0.0, 0.0, 1.0], [0.1], [1.0]])}, batch_size=[4])
    data["extra_info"] = [{"arm": "CRUD/easy"}, {"arm": "CRUD/easy"}, {"arm": "POLICY/hard"}, {"arm": "CRUD/easy"}]
    keys = ["u_0_0", "u_0_1", "u_1_0", "pad_0_0"]
    tags = [{}, {}, {}, {"is_padding": True}]
    arms, adv, rewards = v1.tq_completion_stats(data, tags, keys)
    assert arms == ["CRUD/easy", "POLICY/hard"]  # u_0_0 is an earlier turn of u_0's episode; pad skipped
    assert adv == pytest.approx([0.5, -1.0]) and rewards == pytest.approx([1.0, 0.1])
