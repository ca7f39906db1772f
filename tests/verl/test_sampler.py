"""The SEC sampler inside real VERL: built by VERL's factory, drawing by the bandit's probabilities,
learning from a real ``DataProto`` exactly as ``seccrm``'s own curriculum does, and resuming.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

# "verl.protocol", not "verl": pytest puts tests/ on sys.path, where tests/verl passes for a package
verl = pytest.importorskip("verl.protocol")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchdata.stateful_dataloader import StatefulDataLoader  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage  # noqa: E402
from verl.utils.dataset.rl_dataset import collate_fn  # noqa: E402

from seccrm.curriculum import SEC, ArmPools  # noqa: E402
from seccrm.integrations.verl.main import install, runner_module  # noqa: E402
from seccrm.integrations.verl.sampler import SECSampler, dataset_rows, derive_seed  # noqa: E402


def _verl_factory() -> Callable[[Any, Any], Any]:
    """VERL's own sampler factory: ``create_rl_sampler`` of VERL 0.5-0.7 builds ``data.sampler`` itself;
    on 0.8+ it only knows random/sequential samplers, and seccrm's entry point installs the hook."""
    module = runner_module()
    try:
        from verl.experimental.dataset.sampler import AbstractCurriculumSampler  # noqa: F401
    except ImportError:
        install(module)
    return module.create_rl_sampler


def _sampler(train_dataset: Any, sampler_config: Callable[..., Any], *extra: str) -> SECSampler:
    return _verl_factory()(sampler_config(*extra).data, train_dataset)


def test_verl_factory_builds_the_sec_sampler(train_dataset: Any, sampler_config: Callable[..., Any],
                                             verl_config: Callable[..., Any]) -> None:
    sampler = _sampler(train_dataset, sampler_config, "++data.sampler.tau=0.25", "++data.sampler.seed=7")
    assert isinstance(sampler, SECSampler)
    try:  # on 0.5-0.7 VERL's trainer calls update() only on its own interface
        from verl.experimental.dataset.sampler import AbstractCurriculumSampler
        assert isinstance(sampler, AbstractCurriculumSampler)
    except ImportError:
        pass
    assert isinstance(sampler.curriculum, SEC) and sampler.curriculum.tau == 0.25 and sampler.seed == 7
    arms = {e["arm"] for e in (train_dataset[i]["extra_info"] for i in range(len(train_dataset)))}
    assert set(sampler.arms) == arms and len(arms) == 12
    assert len(sampler) == len(train_dataset) // 8 * 8
    plain = _verl_factory()(verl_config("data.dataloader_num_workers=0").data, train_dataset)
    assert not isinstance(plain, SECSampler)  # no class_path: VERL's own sampler
    with pytest.raises(ValueError, match="dataloader_num_workers=0"):
        SECSampler(train_dataset, sampler_config("data.dataloader_num_workers=2").data)


def test_draws_follow_the_bandit(train_dataset: Any, sampler_config: Callable[..., Any]) -> None:
    sampler = _sampler(train_dataset, sampler_config)
    # Give the bandit distinct values so that its distribution is far from uniform.
    state = sampler.curriculum.state_dict()
    state["extra"]["q"] = {a: 0.15 * i for i, a in enumerate(sampler.arms)}
    sampler.curriculum.load_state_dict(state)
    p = sampler.probs()
    assert max(p.values()) > 5 * min(p.values())

    # Same seed, same draws as seccrm's own curriculum and pools (as `seccrm train` seeds them).
    ref = SEC(sampler.arms, seed=derive_seed(sampler.seed, "curriculum"))
    ref.load_state_dict(state)
    by_arm: dict[str, list[str]] = {}
    for i in range(len(train_dataset)):
        e = train_dataset[i]["extra_info"]
        by_arm.setdefault(e["arm"], []).append(e["instance_id"])
    pools = ArmPools(by_arm, seed=derive_seed(sampler.seed, "pools"))
    loader = StatefulDataLoader(train_dataset, batch_size=8, sampler=sampler, num_workers=0,
                                drop_last=True, collate_fn=collate_fn)
    first = next(iter(loader))
    expected = pools.draw_many(ref.sample(8))
    assert [e["instance_id"] for e in first["extra_info"]] == expected

    # Many draws: arm frequencies match p (chi-square, 11 degrees of freedom, p = 0.001 -> 31.3).
    n = 6000
    arm_of_row, _ = dataset_rows(train_dataset)
    drawn = Counter(arm_of_row[i] for i in islice(_endless(sampler), n))
    chi2 = sum((drawn[a] - n * p[a]) ** 2 / (n * p[a]) for a in sampler.arms)
    assert chi2 < 31.3, (chi2, drawn, p)
    uniform = 1 / len(sampler.arms)
    chi2_uniform = sum((drawn[a] - n * uniform) ** 2 / (n * uniform) for a in sampler.arms)
    assert chi2_uniform > 300  # and they are not what a uniform sampler would draw


def _endless(sampler: SECSampler):
    while True:
        yield from sampler


def _grpo_batch(train_dataset: Any, rows: list[int], n: int, seed: int) -> tuple[DataProto, list[float]]:
    """A trained-batch as VERL builds it: n completions per prompt, rewards, GRPO advantages by VERL's
    own estimator, response masks of random lengths. Returns it with each completion's A_i."""
    gen = torch.Generator().manual_seed(seed)
    b, t = len(rows) * n, 12
    lengths = torch.randint(1, t + 1, (b,), generator=gen)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).float()                     # (B, T)
    levels = torch.tensor([0.0, 0.1, 1.0])
    scores = levels[torch.randint(0, 3, (b,), generator=gen)]                         # (B,)
    token_scores = torch.zeros(b, t)
    token_scores[torch.arange(b), lengths - 1] = scores                               # reward on the last token
    uid = np.array([f"p{i // n}" for i in range(b)], dtype=object)
    adv, _ = compute_grpo_outcome_advantage(token_scores, mask, uid)                  # (B, T)
    extra = np.array([train_dataset[r]["extra_info"] for r in rows for _ in range(n)], dtype=object)
    batch = DataProto.from_dict(
        tensors={"advantages": adv, "response_mask": mask, "token_level_scores": token_scores,
                 "token_level_rewards": token_scores, "responses": torch.zeros(b, t, dtype=torch.long)},
        non_tensors={"extra_info": extra, "uid": uid})
    a_i = [float(adv[i, 0]) for i in range(b)]  # GRPO: the same A_i on every token of completion i
    return batch, a_i


def test_update_from_shuffled_dataproto_equals_seccrm_curriculum(
        train_dataset: Any, sampler_config: Callable[..., Any]) -> None:
    sampler = _sampler(train_dataset, sampler_config)
    ref = SEC(sampler.arms, seed=derive_seed(sampler.seed, "curriculum"))
    rng = random.Random(0)
    for step in range(3):
        rows = rng.sample(range(len(train_dataset)), 6)
        batch, a_i = _grpo_batch(train_dataset, rows, n=4, seed=step)
        arms = [e["arm"] for e in batch.non_tensor_batch["extra_info"]]
        rewards = batch.batch["token_level_scores"].sum(-1).tolist()
        assert any(abs(a) > 0.1 for a in a_i)  # the batch teaches something
        perm = torch.randperm(len(batch), generator=torch.Generator().manual_seed(step))
        batch.reorder(perm)  # what VERL's sequence-length balancing does before the update
        assert [e["arm"] for e in batch.non_tensor_batch["extra_info"]] != arms or step > 0
        metrics = sampler.update(batch)
        ref.update(arms, a_i, rewards)
        for arm in sampler.arms:
            assert sampler.curriculum.q[arm] == pytest.approx(ref.q[arm], rel=1e-6, abs=1e-9), arm
            assert metrics[f"curriculum/q/{arm}"] == pytest.approx(ref.q[arm], rel=1e-6, abs=1e-9)
        for arm, value in ref.metrics().items():
            if arm.startswith("curriculum/reward/"):
                assert metrics[arm] == pytest.approx(value, rel=1e-6)
        assert sampler.update(batch) is metrics  # the same batch never updates twice
    assert sampler.curriculum.step == 3
    assert any(abs(v) > 1e-3 for v in sampler.curriculum.q.values())


def test_state_survives_checkpoint(train_dataset: Any, sampler_config: Callable[..., Any],
                                   tmp_path: Path) -> None:
    def fresh() -> tuple[SECSampler, StatefulDataLoader]:
        s = _sampler(train_dataset, sampler_config)
        return s, StatefulDataLoader(train_dataset, batch_size=8, sampler=s, num_workers=0,
                                     drop_last=True, collate_fn=collate_fn)

    def ids(batch: dict) -> list[str]:
        return [e["instance_id"] for e in batch["extra_info"]]

    sampler, loader = fresh()
    it = iter(loader)
    for step in range(2):
        batch = next(it)
        rows = [_row(train_dataset, x) for x in ids(batch)]
        trained, _ = _grpo_batch(train_dataset, rows, n=2, seed=10 + step)
        sampler.update(trained)
    torch.save(loader.state_dict(), tmp_path / "data.pt")  # what VERL writes into each checkpoint
    after = [ids(next(it)) for _ in range(3)]

    sampler2, loader2 = fresh()
    assert sampler2.curriculum.q != sampler.curriculum.q
    loader2.load_state_dict(torch.load(tmp_path / "data.pt", weights_only=False))
    resumed = [ids(b) for b in islice(loader2, 3)]
    assert resumed == after
    assert sampler2.curriculum.q == sampler.curriculum.q
    assert sampler2.curriculum.state_dict() == sampler.curriculum.state_dict()
    assert sampler2.pools.state_dict() == sampler.pools.state_dict()

    other = _sampler(train_dataset, sampler_config, "data.train_batch_size=10")  # 140-prompt epochs
    with pytest.raises(ValueError, match="same data and batch size"):
        other.load_state_dict(sampler.state_dict())


def _row(dataset: Any, instance_id: str) -> int:
    """The dataset position of an instance (rows are few: a scan is fine)."""
    return next(i for i in range(len(dataset)) if dataset[i]["extra_info"]["instance_id"] == instance_id)


def test_other_curricula_behind_the_same_sampler(train_dataset: Any, sampler_config: Callable[..., Any]) -> None:
    """Any curriculum of seccrm's registry runs in VERL; the difficulty schedules need the run's length."""
    with pytest.raises(ValueError, match="total_steps"):
        _sampler(train_dataset, sampler_config, "++data.sampler.curriculum=easy2hard")
    sampler = _sampler(train_dataset, sampler_config, "++data.sampler.curriculum=easy2hard",
                       "++data.sampler.total_steps=3")
    arm_of_row, _ = dataset_rows(train_dataset)
    levels = []
    for step in range(3):
        rows = [i for i in islice(iter(sampler), 8)]
        levels.append({arm_of_row[i].split("/")[1] for i in rows})
        batch, _ = _grpo_batch(train_dataset, rows, n=2, seed=20 + step)
        sampler.update(batch)
    assert levels == [{"easy"}, {"medium"}, {"hard"}]
    uniform = _sampler(train_dataset, sampler_config, "++data.sampler.curriculum=uniform")
    assert set(uniform.probs().values()) == {1 / 12}
