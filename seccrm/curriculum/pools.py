"""Per-arm pools of task instances, drawn without replacement and refilled when they run dry.

The curriculum picks an arm for each prompt slot; the pool of that arm then gives the instance.
Every instance of an arm is used once before any is used twice: the pool is a shuffled order and a
position in it, and when the position reaches the end the pool is reshuffled and starts again.
The orders, positions and the RNG are the whole state, so a resumed run draws the same instances.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from seccrm.curriculum.base import rng_state, set_rng_state


class ArmPools:
    """Instance ids per arm, drawn without replacement; a dry pool refills reshuffled.

    Args:
        instances_by_arm: arm -> the ids of its instances (each list non-empty).
        seed: seeds the pools' own ``random.Random`` (shared by all arms, in sorted-arm order).

    Attributes:
        refills: arm -> how many times its pool has been reshuffled after running dry.
    """

    def __init__(self, instances_by_arm: Mapping[str, Sequence[str]], seed: int = 0) -> None:
        if not instances_by_arm:
            raise ValueError("ArmPools needs at least one arm with instances")
        empty = sorted(a for a, ids in instances_by_arm.items() if len(ids) == 0)
        if empty:
            raise ValueError(f"arms with no instances: {', '.join(empty)}; leave them out of the curriculum")
        self.arms: tuple[str, ...] = tuple(sorted(instances_by_arm))
        # The canonical contents, sorted so that the caller's list order does not change the draws.
        self._ids: dict[str, list[str]] = {a: sorted(instances_by_arm[a]) for a in self.arms}
        self._rng = random.Random(int(seed))
        self._order: dict[str, list[str]] = {a: self._shuffled(a) for a in self.arms}
        self._pos: dict[str, int] = {a: 0 for a in self.arms}
        self.refills: dict[str, int] = {a: 0 for a in self.arms}

    def _shuffled(self, arm: str) -> list[str]:
        order = list(self._ids[arm])
        self._rng.shuffle(order)
        return order

    def remaining(self, arm: str) -> int:
        """How many instances of ``arm`` are left before its pool refills."""
        self._check(arm)
        return len(self._order[arm]) - self._pos[arm]

    def draw(self, arm: str) -> str:
        """The next instance id of ``arm``'s pool (reshuffling the pool first if it ran dry)."""
        self._check(arm)
        if self._pos[arm] == len(self._order[arm]):
            self._order[arm] = self._shuffled(arm)
            self._pos[arm] = 0
            self.refills[arm] += 1
        instance = self._order[arm][self._pos[arm]]
        self._pos[arm] += 1
        return instance

    def draw_many(self, arms: Sequence[str]) -> list[str]:
        """One instance per entry of ``arms`` (e.g. the output of ``curriculum.sample(k)``)."""
        return [self.draw(a) for a in arms]

    def _check(self, arm: str) -> None:
        if arm not in self._order:
            raise KeyError(f"no pool for arm {arm!r}; pools exist for: {', '.join(self.arms)}")

    def state_dict(self) -> dict[str, Any]:
        """Orders, positions, refill counts and RNG, as JSON-ready values."""
        return {
            "order": {a: list(self._order[a]) for a in self.arms},
            "pos": dict(self._pos),
            "refills": dict(self.refills),
            "rng": rng_state(self._rng),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; the pools must hold the same instances as when saved."""
        if sorted(state["order"]) != list(self.arms):
            raise ValueError(
                f"state has pools for arms {sorted(state['order'])}, these pools are for {list(self.arms)}"
            )
        for arm in self.arms:
            if sorted(state["order"][arm]) != self._ids[arm]:
                raise ValueError(
                    f"the saved pool of {arm!r} holds other instances than this one; "
                    "resume with the same dataset the run started with"
                )
            if not 0 <= int(state["pos"][arm]) <= len(self._ids[arm]):
                raise ValueError(f"saved position of {arm!r} is out of range")
        self._order = {a: [str(i) for i in state["order"][a]] for a in self.arms}
        self._pos = {a: int(state["pos"][a]) for a in self.arms}
        self.refills = {a: int(state["refills"][a]) for a in self.arms}
        set_rng_state(self._rng, state["rng"])
