"""The curriculum as TRL's train sampler (see the package docstring for its exactness on resume)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from torch.utils.data import Sampler

from seccrm.curriculum import ArmPools, Curriculum
from seccrm.seeding import derive_seed
from seccrm.world.arms import ALL_ARMS


class CurriculumSampler(Sampler[int]):
    """Indices for TRL's generation batches, each prompt slot drawn by the curriculum.

    Mirrors TRL's ``RepeatSampler``: a chunk of ``batch_size`` prompts is drawn, then yielded
    ``repeat_count`` times, each index ``mini_repeat_count`` times in a row. Chunks are drawn lazily
    (when the loader asks), and those drawn but not yet used by the trainer are kept (``pending``)
    so that a checkpoint can hold them.

    Under several processes every process holds its own sampler and accelerate hands each one its
    slice of the same index stream; the streams agree because every process seeds its curriculum
    alike and updates it from the same gathered arms and advantages.
    """

    def __init__(self, dataset: Any, curriculum: Curriculum, pools: ArmPools, batch_size: int,
                 mini_repeat_count: int, repeat_count: int = 1):
        self.dataset, self.curriculum, self.pools = dataset, curriculum, pools
        self.batch_size, self.mini_repeat_count, self.repeat_count = batch_size, mini_repeat_count, repeat_count
        self.row_of = {rid: i for i, rid in enumerate(dataset["id"])}
        self.pending: deque[list[int]] = deque()     # drawn chunks the trainer has not consumed
        self.replay: deque[list[int]] = deque()      # restored pending chunks, yielded before new draws
        self.chunks_per_epoch = max(len(self.row_of) // batch_size, 1)

    def draw_chunk(self) -> list[int]:
        arms = self.curriculum.sample(self.batch_size)
        return [self.row_of[self.pools.draw(a)] for a in arms]

    def __iter__(self) -> Iterator[int]:
        for _ in range(self.chunks_per_epoch):
            chunk = self.replay.popleft() if self.replay else self.draw_chunk()
            self.pending.append(chunk)
            for _ in range(self.repeat_count):
                for index in chunk:
                    yield from [index] * self.mini_repeat_count

    def __len__(self) -> int:
        return self.chunks_per_epoch * self.batch_size * self.mini_repeat_count * self.repeat_count

    def consumed(self) -> list[int]:
        """The trainer used the oldest pending chunk; returns it."""
        return self.pending.popleft()

    def state_dict(self) -> dict[str, Any]:
        return {"curriculum": self.curriculum.state_dict(), "pools": self.pools.state_dict(),
                "pending": [list(c) for c in self.pending]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.curriculum.load_state_dict(state["curriculum"])
        self.pools.load_state_dict(state["pools"])
        self.pending.clear()
        self.replay = deque(list(c) for c in state.get("pending", []))


def arm_pools(dataset: Any, seed: int) -> tuple[ArmPools, tuple[str, ...]]:
    """The dataset's ids by arm, as seeded pools, and its arms in the project's order."""
    by_arm: dict[str, list[str]] = {}
    for rid, arm in zip(dataset["id"], dataset["arm"], strict=True):
        by_arm.setdefault(arm, []).append(rid)
    arms = tuple(a for a in ALL_ARMS if a in by_arm) + tuple(sorted(a for a in by_arm if a not in ALL_ARMS))
    return ArmPools(by_arm, seed=derive_seed(seed, "pools")), arms
