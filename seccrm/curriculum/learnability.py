"""Learnability p(1 - p), as LILO does (Foster & Foerster, 2025), at the level of arms.

An arm whose completions always succeed (p = 1) or always fail (p = 0) gives GRPO groups with
equal rewards and zero advantage; p(1 - p), the variance of a success, is largest at p = 1/2.
Each arm keeps an estimate p(a) of its success rate (share of completions with reward 1.0), moved
towards each batch's observed rate by an exponential moving average with step ``alpha`` and
starting at 1/2 (so every arm starts equally learnable and the first batch is uniform). Arms are
drawn in proportion to p(1 - p), mixed with the uniform distribution by ``epsilon`` so that no arm
starves: every arm keeps at least ``epsilon / K`` and its estimate can recover.

Departures: LILO scores single questions and filters them by rejection sampling; here the unit is
the arm (a skill at a difficulty), as for every curriculum in this package, and the estimate is an
EMA rather than the questions' last K attempts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from seccrm.curriculum.base import ArmBatch, Curriculum


class Learnability(Curriculum):
    """Draw arms in proportion to p(1 - p) of their success rate, with a uniform floor.

    Args:
        arms: the arms, ``"SKILL/difficulty"``.
        alpha: EMA step size of the success-rate estimate, in (0, 1].
        epsilon: share of probability spread uniformly, in [0, 1] (0: pure p(1-p); 1: uniform).
        prior: the success rate assumed before an arm is seen, in [0, 1].
        seed: seeds the curriculum's sampling RNG.

    ``update`` needs ``rewards`` (one per completion).
    """

    name: ClassVar[str] = "learnability"
    needs_rewards: ClassVar[bool] = True

    def __init__(
        self,
        arms: Sequence[str],
        alpha: float = 0.3,
        epsilon: float = 0.1,
        prior: float = 0.5,
        seed: int = 0,
    ) -> None:
        super().__init__(arms, seed=seed)
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must lie in (0, 1], got {alpha}")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
        if not 0.0 <= prior <= 1.0:
            raise ValueError(f"prior must lie in [0, 1], got {prior}")
        self.alpha = float(alpha)
        self.epsilon = float(epsilon)
        self.success: dict[str, float] = {a: float(prior) for a in self.arms}

    def learnability(self) -> dict[str, float]:
        """p(1 - p) of each arm's estimated success rate (at most 1/4)."""
        return {a: p * (1.0 - p) for a, p in self.success.items()}

    def probs(self) -> dict[str, float]:
        weights = self.learnability()
        total = sum(weights.values())
        k = len(self.arms)
        if total <= 0.0:
            # Every arm is all-solved or all-failed: nothing to prefer, so spread evenly.
            return {a: 1.0 / k for a in self.arms}
        return {a: (1.0 - self.epsilon) * weights[a] / total + self.epsilon / k for a in self.arms}

    def _learn(self, batch: Mapping[str, ArmBatch]) -> dict[str, float]:
        for arm, stats in batch.items():
            assert stats.success_rate is not None  # the base class refuses updates without rewards
            self.success[arm] = (1.0 - self.alpha) * self.success[arm] + self.alpha * stats.success_rate
        return {f"curriculum/success/{a}": p for a, p in self.success.items()}

    def _extra_state(self) -> dict[str, Any]:
        return {"success": dict(self.success)}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.success = {a: float(state["success"][a]) for a in self.arms}
