"""The SEC curriculum as VERL's training sampler.

VERL's trainer pulls prompt indices from a ``torch`` sampler; this one draws them the way
``seccrm train`` does: every prompt slot draws its own arm from the curriculum (SEC's Boltzmann
distribution over Q), then an instance from that arm's pool without replacement
(:class:`seccrm.curriculum.ArmPools`). After each step, :meth:`SECSampler.update` reads the batch
VERL trained on and updates the curriculum with the same per-completion inputs ``seccrm train``
gives it: the arm of each completion (``extra_info["arm"]``), its advantage (the masked token mean of
``advantages`` over ``response_mask``, i.e. GRPO's A_i) and its reward (the sum of
``token_level_scores``). Rows are matched by their own ``extra_info``, never by position, because
VERL reorders the batch (sequence-length balancing) before it trains on it.

Config (``data.sampler.*``; use ``++`` so the keys are added on releases whose config lacks them)::

    ++data.sampler.class_path=pkg://seccrm.integrations.verl.sampler
    ++data.sampler.class_name=SECSampler
    data.dataloader_num_workers=0          # required: workers would prefetch batches drawn from a stale Q
    ++data.sampler.curriculum=sec          # any name of seccrm.curriculum.build_curriculum
    ++data.sampler.alpha=0.3 ++data.sampler.tau=0.5 ++data.sampler.unsampled=hold
    ++data.sampler.seed=0                  # default: data.seed, else 0
    ++data.sampler.total_steps=N           # only the difficulty schedules (easy2hard, ...) need it
    ++data.sampler.metrics_path=FILE       # optional: one JSON line of curriculum metrics per update

Seeding follows ``seccrm train`` (pools and curriculum seeds derived from the one seed), so for the
same seed and the same training rows the two trainers draw the same arms and instances.

State: :meth:`state_dict` holds the curriculum, the pools and the position in the epoch. VERL saves
``train_dataloader.state_dict()`` in every checkpoint (``data.pt``); torchdata's stateful loader
includes the sampler's ``state_dict()`` there and calls ``load_state_dict`` on resume.

Versions: VERL 0.5 to 0.7.x define ``AbstractCurriculumSampler`` and call ``update(batch)`` at the end
of each step (after that step's checkpoint). VERL 0.8+ dropped both; there this class derives from
``torch.utils.data.Sampler`` and :mod:`seccrm.integrations.verl.main` builds and updates it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sized
from typing import Any

from seccrm.curriculum import ArmPools, Curriculum, DifficultySchedule, build_curriculum
from seccrm.seeding import derive_seed
from seccrm.world.arms import ALL_ARMS

try:  # VERL 0.5 to 0.7.x: the interface VERL's trainer recognises and calls update() on
    from verl.experimental.dataset.sampler import AbstractCurriculumSampler as _SamplerBase
except ImportError:  # VERL 0.8+ (or no VERL): a plain torch sampler; seccrm's entry point updates it
    from torch.utils.data import Sampler as _SamplerBase

STATE_FORMAT = 1
UPDATED_FLAG = "seccrm_sampler_updated"
"""Set in ``batch.meta_info`` by :meth:`SECSampler.update`, so that a batch updates the bandit once
even when both seccrm's hook and VERL's own (0.7) see it."""


def dataset_rows(dataset: Sized) -> tuple[list[str], list[str]]:
    """``(arm, instance_id)`` of every row of a VERL dataset, read from each row's ``extra_info``.

    VERL's ``RLHFDataset`` keeps a Hugging Face dataset in ``.dataframe`` (possibly filtered, i.e.
    with an index mapping); only its ``extra_info`` column is read, through Arrow. Any other sized
    dataset is read row by row. Rows without ``instance_id`` are named by their position.
    """
    frame = getattr(dataset, "dataframe", None)
    if frame is not None and hasattr(frame, "select_columns"):
        table = frame.select_columns(["extra_info"]).with_format("arrow")[:]  # respects the index mapping
        extra = table.column("extra_info").combine_chunks()
        arms = [str(a) for a in extra.field("arm").to_pylist()]
        names = {f.name for f in extra.type}
        raw: list[Any] = extra.field("instance_id").to_pylist() if "instance_id" in names else [None] * len(arms)
    else:
        infos = [dataset[i]["extra_info"] for i in range(len(dataset))]  # type: ignore[index]
        arms = [str(e["arm"]) for e in infos]
        raw = [e.get("instance_id") for e in infos]
    ids = [str(i) if i is not None else f"row-{n}" for n, i in enumerate(raw)]
    if len(set(ids)) != len(ids):
        dup = sorted(i for i, k in Counter(ids).items() if k > 1)[:3]
        raise ValueError(f"the training data holds instance ids more than once ({', '.join(dup)}, ...); "
                         "list each exported train.parquet once in data.train_files")
    return arms, ids


def _instances_by_arm(dataset: Sized) -> tuple[dict[str, list[str]], dict[str, int]]:
    """``arm -> instance ids`` and ``instance id -> row`` of a dataset; unknown arms raise."""
    arms, ids = dataset_rows(dataset)
    by_arm: dict[str, list[str]] = {}
    for arm, iid in zip(arms, ids, strict=True):
        by_arm.setdefault(arm, []).append(iid)
    unknown = sorted(set(by_arm) - set(ALL_ARMS))
    if unknown:
        raise ValueError(f"rows with unknown arms {unknown}; known: {', '.join(ALL_ARMS)}")
    return by_arm, {iid: n for n, iid in enumerate(ids)}


def completion_stats(batch: Any) -> tuple[list[str], list[float], list[float] | None]:
    """Per-completion ``(arms, advantages, rewards)`` of a VERL ``DataProto`` batch, row by row.

    Shapes: ``advantages``, ``response_mask``, ``token_level_scores``: (B, T) -> three lists of B.
    The advantage of a completion is the masked token mean of its advantages (GRPO puts the same
    A_i on every response token, so this is A_i); its reward is the sum of its token-level scores
    (the verifier's reward sits on the last response token). Rewards are None when the batch has no
    ``token_level_scores``.
    """
    extra = batch.non_tensor_batch["extra_info"]
    arms = [str(e["arm"]) for e in extra]
    tensors = batch.batch
    adv = tensors["advantages"].float()                                    # (B, T)
    if "response_mask" in tensors.keys():
        mask = tensors["response_mask"].float()                            # (B, T)
    else:  # older batches: the response part of the attention mask
        mask = tensors["attention_mask"][:, -adv.shape[1]:].float()
    per_row = (adv * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)           # (B,)
    rewards = None
    if "token_level_scores" in tensors.keys():
        rewards = tensors["token_level_scores"].float().sum(-1).tolist()   # (B,)
    if len(arms) != len(per_row):
        raise ValueError(f"batch has {len(arms)} extra_info rows but {len(per_row)} advantage rows")
    return arms, per_row.tolist(), rewards


def create_sampler(data_config: Any, dataset: Any, fallback: Any) -> Any:
    """``data.sampler.class_path`` / ``class_name`` built with VERL's loader, or ``fallback(...)``.

    The stand-in for VERL's ``create_rl_sampler`` that :mod:`.main` installs in VERL's trainers.
    """
    opts = data_config.get("sampler") if hasattr(data_config, "get") else None
    if not opts or not opts.get("class_path"):
        return fallback(data_config, dataset)
    from verl.utils.import_utils import load_extern_object

    cls = load_extern_object(opts.get("class_path"), opts.get("class_name") or "SECSampler")
    return cls(data_source=dataset, data_config=data_config)


def _option(config: Any, key: str, default: Any = None) -> Any:
    """``config.get(key)`` for a DictConfig, a dict or None."""
    if config is None:
        return default
    value = config.get(key, default) if hasattr(config, "get") else getattr(config, key, default)
    return default if value is None else value


class SECSampler(_SamplerBase):  # type: ignore[misc, valid-type]
    """A curriculum sampler for VERL: one arm per prompt slot, one instance per arm draw.

    Args:
        data_source: VERL's training dataset (rows exported by ``seccrm export verl``).
        data_config: VERL's ``data`` config; options under ``data.sampler`` (module docstring).
    """

    def __init__(self, data_source: Sized, data_config: Any) -> None:
        if _option(data_config, "dataloader_num_workers", 8) != 0:
            raise ValueError("the SEC sampler needs data.dataloader_num_workers=0: loader workers would "
                             "draw batches before the bandit has learned from the previous step")
        opts = _option(data_config, "sampler", {})
        self.data_source = data_source
        by_arm, self._row_of = _instances_by_arm(data_source)
        self.arms = tuple(a for a in ALL_ARMS if a in by_arm)
        self.seed = int(_option(opts, "seed", _option(data_config, "seed", 0)))
        self.curriculum_name = str(_option(opts, "curriculum", "sec"))
        self.curriculum: Curriculum = build_curriculum(
            self.curriculum_name, self.arms, derive_seed(self.seed, "curriculum"),
            {"alpha": float(_option(opts, "alpha", 0.3)), "tau": float(_option(opts, "tau", 0.5)),
             "unsampled": str(_option(opts, "unsampled", "hold"))})
        self.pools = ArmPools(by_arm, seed=derive_seed(self.seed, "pools"))
        self.total_steps = _option(opts, "total_steps")
        if isinstance(self.curriculum, DifficultySchedule):
            if not self.total_steps:  # without it a schedule would stay on its first level for ever
                raise ValueError(f"curriculum {self.curriculum_name!r} follows training progress: "
                                 "set ++data.sampler.total_steps=<the run's total steps>")
            self.curriculum.set_progress(0, int(self.total_steps))
        self.metrics_path = _option(opts, "metrics_path")
        # An epoch is a whole number of batches, so that no draw is thrown away with a last partial batch.
        batch = max(int(_option(data_config, "gen_batch_size", _option(data_config, "train_batch_size", 1))), 1)
        n = len(self._row_of)
        self.epoch_length = (n // batch) * batch if n >= batch else n
        self.epoch_yielded = 0
        self.last_metrics: dict[str, float] = {}

    # --- torch Sampler ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.epoch_length

    def __iter__(self) -> Iterator[int]:
        """Row indices, one per prompt slot, drawn lazily: VERL's loader (with no workers) asks for a
        batch only after the previous step's ``update``, so every batch sees the latest Q."""
        while self.epoch_yielded < self.epoch_length:
            arm = self.curriculum.sample(1)[0]
            instance = self.pools.draw(arm)
            self.epoch_yielded += 1
            yield self._row_of[instance]
        self.epoch_yielded = 0

    # --- curriculum --------------------------------------------------------------------------------

    def update(self, batch: Any) -> dict[str, float]:
        """Learn from one trained batch (a ``DataProto`` with advantages); returns curriculum metrics."""
        if batch.meta_info.get(UPDATED_FLAG):
            return self.last_metrics
        metrics = self.update_from_stats(*completion_stats(batch))
        batch.meta_info[UPDATED_FLAG] = True
        return metrics

    def update_from_stats(self, arms: list[str], advantages: list[float],
                          rewards: list[float] | None = None) -> dict[str, float]:
        """Learn from one step's completions: the arm, advantage and reward of each (any order).

        :meth:`update` reads them from a legacy ``DataProto`` batch; VERL's v1 trainer keeps its batch in
        TransferQueue, and :mod:`seccrm.integrations.verl.v1` reads them from there.
        """
        self.last_metrics = self.curriculum.update(arms, advantages, rewards)
        if self.total_steps:  # the schedules draw the next batch at this progress
            self.curriculum.set_progress(self.curriculum.step, int(self.total_steps))
        if self.metrics_path:
            with open(self.metrics_path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"update": self.curriculum.step, **self.last_metrics}, sort_keys=True) + "\n")
        return self.last_metrics

    def probs(self) -> dict[str, float]:
        """The curriculum's current distribution over arms."""
        return self.curriculum.probs()

    def state_dict(self) -> dict[str, Any]:
        """Curriculum, pools and position in the epoch (plain Python values)."""
        return {"format": STATE_FORMAT, "curriculum": self.curriculum.state_dict(),
                "pools": self.pools.state_dict(), "epoch_yielded": self.epoch_yielded,
                "epoch_length": self.epoch_length, "last_metrics": dict(self.last_metrics)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; the training rows must be those of the saved run."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown SEC sampler state format {state.get('format')!r}")
        if int(state["epoch_length"]) != self.epoch_length:
            raise ValueError(f"the saved run's epoch had {state['epoch_length']} prompts, this one has "
                             f"{self.epoch_length}: resume with the same data and batch size")
        self.curriculum.load_state_dict(state["curriculum"])
        self.pools.load_state_dict(state["pools"])
        self.epoch_yielded = int(state["epoch_yielded"])
        self.last_metrics = {str(k): float(v) for k, v in state["last_metrics"].items()}
