"""The fixed curricula the SEC authors compared with: random, easy-to-hard and hard-to-easy.

``Uniform`` draws every arm with the same probability for the whole run. The two difficulty
schedules split training into equal parts, one per difficulty level present among the arms (thirds
with the usual easy / medium / hard), and draw uniformly over the skills of the current level only.
They read where training is from :meth:`Curriculum.set_progress`, which the trainer calls before each
batch with the number of steps already done; before any call they sit in their first level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from seccrm.curriculum.base import ArmBatch, Curriculum
from seccrm.world.arms import DIFFICULTIES, parse_arm


class Uniform(Curriculum):
    """Every arm equally likely, always; learns nothing (its metrics still log r and reward)."""

    name: ClassVar[str] = "uniform"

    def probs(self) -> dict[str, float]:
        return {a: 1.0 / len(self.arms) for a in self.arms}

    def _learn(self, batch: Mapping[str, ArmBatch]) -> dict[str, float]:
        return {}


class DifficultySchedule(Curriculum):
    """A fixed order of difficulty levels over equal parts of training; skills uniform within one.

    Subclasses give ``order``: the difficulty levels from first to last.
    """

    order: ClassVar[tuple[str, ...]] = DIFFICULTIES

    def __init__(self, arms: Sequence[str], seed: int = 0) -> None:
        super().__init__(arms, seed=seed)
        present = {parse_arm(a)[1] for a in self.arms}
        # Levels no arm has are skipped, so a subset of arms still splits training evenly.
        self.stages: tuple[str, ...] = tuple(d for d in self.order if d in present)

    def stage(self) -> int:
        """Index into ``stages`` of the current level: ``floor(len(stages) * step / total)``."""
        step, total = self.progress
        if total is None:
            return 0
        return min(len(self.stages) - 1, len(self.stages) * step // total)

    def probs(self) -> dict[str, float]:
        level = self.stages[self.stage()]
        current = [a for a in self.arms if parse_arm(a)[1] == level]
        return {a: (1.0 / len(current) if a in current else 0.0) for a in self.arms}

    def _learn(self, batch: Mapping[str, ArmBatch]) -> dict[str, float]:
        return {"curriculum/stage": float(self.stage())}

    def _extra_state(self) -> dict[str, Any]:
        return {"stages": list(self.stages)}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        if list(state["stages"]) != list(self.stages):
            raise ValueError(f"state was saved with stages {state['stages']}, this schedule has {list(self.stages)}")


class EasyToHard(DifficultySchedule):
    """easy for the first third of training, then medium, then hard."""

    name: ClassVar[str] = "easy2hard"
    order: ClassVar[tuple[str, ...]] = ("easy", "medium", "hard")


class HardToEasy(DifficultySchedule):
    """hard for the first third of training, then medium, then easy."""

    name: ClassVar[str] = "hard2easy"
    order: ClassVar[tuple[str, ...]] = ("hard", "medium", "easy")
