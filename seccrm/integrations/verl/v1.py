"""The SEC curriculum inside VERL's v1 trainer (``trainer.use_v1=true``, VERL's default from 0.8).

What v1 offers a curriculum, read from VERL 0.9.1's source (``verl/trainer/ppo/v1/``):

- **Prompts** come from the trainer's ``StatefulDataLoader``, built in ``PPOTrainer._init_dataloader``
  with ``create_rl_sampler(config.data, dataset)`` from ``trainer_base``'s namespace. :func:`install`
  swaps that name for :func:`~seccrm.integrations.verl.sampler.create_sampler`, so that
  ``data.sampler.class_path`` builds the :class:`~seccrm.integrations.verl.sampler.SECSampler`, as
  on the legacy trainer. VERL's own ``trainer.v1.sampler.custom_sampler`` (a ``ReplayBuffer``
  subclass) cannot take this role: it chooses among groups already generated, after the prompts
  were drawn.
- **The batch** lives in TransferQueue, not in a ``DataProto``: each step, ``PPOTrainer.step``
  returns a ``KVBatchMeta`` (keys, tags) whose rows hold ``extra_info`` (copied from the dataset row
  by the agent loop), ``advantages``, ``response_mask`` and ``rm_scores`` (nested, one row per
  completion), until the fit loop clears them at the end of the step. The trainer class
  :func:`sec_trainer_class` builds overrides ``step``: after VERL's own step (advantages computed,
  actor updated) it reads those four fields for the step's keys, skips padding rows, and gives
  each completion's arm, advantage (masked mean over its response tokens, GRPO's A_i) and reward
  (sum of its token scores) to :meth:`SECSampler.update_from_stats`, then adds the curriculum
  metrics to the step's metrics. This happens before the fit loop writes the step's checkpoint,
  so the sampler state saved in ``data.pt`` includes the step's update.
- **Lag.** ``trainer_mode=sync``: the loader is fetched once per step (``prepare_step``), after the
  previous step's update, with ``dataloader_num_workers=0`` (the sampler requires it): every draw
  sees the latest Q, as in ``seccrm train``. ``colocate_async`` and ``separate_async`` prefill the
  replay buffer with ``num_warmup_batches`` batches (1 by default) and refill it while training, so a
  step trains on prompts drawn about that many updates earlier; ``separate_async`` also trains
  ``parameter_sync_step`` mini-batches per step and the bandit updates once per step, from all of them.

Every registered v1 trainer (``sync``, ``colocate_async``, ``separate_async`` and any a user
registered before :func:`install`) is replaced in VERL's registry by its SEC subclass.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from seccrm.integrations.verl.sampler import create_sampler

TQ_FIELDS = ("extra_info", "advantages", "response_mask", "rm_scores")
"""The TransferQueue fields the bandit reads for every completion of a step."""
_SECCRM_V1 = "_seccrm_v1_trainer"


def available() -> bool:
    """True where this VERL has the v1 trainer and its task runner (0.8+) and TransferQueue imports."""
    try:
        import transfer_queue  # noqa: F401
        from verl.trainer import main_ppo
        from verl.trainer.ppo.v1 import trainer_base  # noqa: F401
    except ImportError:
        return False
    return hasattr(main_ppo, "TaskRunnerV1")


def _rows(value: Any) -> list[Any]:
    """One 1-D tensor per completion from a nested (jagged) or padded 2-D tensor."""
    return list(value.unbind()) if getattr(value, "is_nested", False) else list(value)


def _values(value: Any) -> list[Any]:
    """A non-tensor column of a TensorDict (``NonTensorStack`` or list) as a Python list."""
    return value.tolist() if hasattr(value, "tolist") else list(value)


def _final_outputs(keys: Sequence[str]) -> list[bool]:
    """For keys ``{uid}_{session}_{index}``, True at the last output of each session.

    An agent loop may put several outputs per episode (one per turn); VERL computes the episode's
    GRPO advantage from its last output and copies it to the others, so the bandit counts each
    episode once, by its last output. Keys of any other form count as episodes of their own.
    """
    last: dict[str, tuple[int, int]] = {}
    for row, key in enumerate(keys):
        parts = str(key).rsplit("_", 2)
        if len(parts) == 3 and parts[2].isdigit():
            session, index = f"{parts[0]}_{parts[1]}", int(parts[2])
        else:
            session, index = f"row-{row}", 0
        if session not in last or last[session][0] < index:
            last[session] = (index, row)
    final = {row for _, row in last.values()}
    return [row in final for row in range(len(keys))]


def tq_completion_stats(data: Any, tags: Sequence[dict[str, Any]] | None = None,
                        keys: Sequence[str] | None = None) -> tuple[list[str], list[float], list[float]]:
    """Per-completion ``(arms, advantages, rewards)`` of a step's TransferQueue rows.

    ``data`` is what ``transfer_queue.kv_batch_get(..., select_fields=TQ_FIELDS)`` returns: nested
    ``advantages``, ``response_mask`` and ``rm_scores`` (one row per output, response tokens only)
    and the non-tensor ``extra_info``. Rows whose tag says ``is_padding`` (VERL pads a batch to a
    multiple of the data-parallel size) are left out, and with ``keys`` only the last output of each
    episode counts (:func:`_final_outputs`).
    """
    infos = _values(data["extra_info"])
    adv, mask, scores = (_rows(data[k]) for k in ("advantages", "response_mask", "rm_scores"))
    if not len(infos) == len(adv) == len(mask) == len(scores):
        raise ValueError(f"TransferQueue rows disagree: {len(infos)} extra_info, {len(adv)} advantages, "
                         f"{len(mask)} response masks, {len(scores)} scores")
    keep = _final_outputs(keys) if keys is not None else [True] * len(infos)
    if tags:
        keep = [k and not (tags[i] or {}).get("is_padding", False) for i, k in enumerate(keep)]
    arms, advantages, rewards = [], [], []
    for info, a, m, s, k in zip(infos, adv, mask, scores, keep, strict=True):
        if not k:
            continue
        m = m.float()
        arms.append(str(info["arm"]))
        advantages.append(float((a.float() * m).sum() / m.sum().clamp(min=1.0)))
        rewards.append(float(s.float().sum()))
    return arms, advantages, rewards


def update_from_transfer_queue(sampler: Any, batch: Any) -> dict[str, float]:
    """Read a step's rows (a ``KVBatchMeta``) from TransferQueue and update ``sampler``'s bandit."""
    import transfer_queue as tq

    data = tq.kv_batch_get(keys=list(batch.keys), partition_id=batch.partition_id, select_fields=list(TQ_FIELDS))
    metrics: dict[str, float] = sampler.update_from_stats(*tq_completion_stats(data, batch.tags, batch.keys))
    return metrics


def sec_trainer_class(base: type) -> type:
    """A subclass of a v1 ``PPOTrainer`` whose ``step`` ends with the curriculum's update."""
    if getattr(base, _SECCRM_V1, False):
        return base

    class SECTrainer(base):  # type: ignore[misc, valid-type]
        """VERL's v1 trainer; each step's completions then update the curriculum sampler."""

        def step(self, metrics: dict, timing_raw: dict) -> Any:
            batch = super().step(metrics, timing_raw)
            sampler = getattr(getattr(self, "train_dataloader", None), "sampler", None)
            if callable(getattr(sampler, "update_from_stats", None)):  # VERL's own samplers have none
                metrics.update(update_from_transfer_queue(sampler, batch))
            return batch

    SECTrainer.__name__ = SECTrainer.__qualname__ = f"SEC{base.__name__}"
    setattr(SECTrainer, _SECCRM_V1, True)
    return SECTrainer


def install() -> None:
    """Swap ``create_rl_sampler`` in v1's ``trainer_base`` and wrap every registered v1 trainer (idempotent)."""
    from verl.trainer.ppo.v1 import trainer_base

    current = trainer_base.create_rl_sampler
    if not isinstance(current, functools.partial):
        trainer_base.create_rl_sampler = functools.partial(create_sampler, fallback=current)
    registry = trainer_base.TRAINER_REGISTRY
    for name, cls in list(registry.items()):
        registry[name] = sec_trainer_class(cls)
