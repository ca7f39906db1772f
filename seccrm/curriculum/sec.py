"""SEC: the Self-Evolving Curriculum bandit (``../shared/specs/sec-grpo.md``, "The curriculum bandit").

Selection is Boltzmann over the arms' values, ``p(a) = softmax(Q(a) / tau)``, with Q starting at 0
so that the first batch is uniform. The learning signal of arm a in a batch is
``r(a) = mean over a's completions of |A_i|``: groups whose rewards are all equal have A = 0 and
teach nothing, so an arm that is all-solved or all-failed sees its value fall. The update is TD(0),
``Q(a) <- (1 - alpha) Q(a) + alpha r(a)``, for every arm drawn in the batch. Arms not drawn are
either held (``unsampled="hold"``, the formula as written) or decayed as if r = 0
(``unsampled="decay"``, what the SEC authors' code does).

Departures from the paper: none in the rule. Drawing one arm per prompt slot (rather than one arm
per batch) is the spec's choice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from seccrm.curriculum.base import ArmBatch, Curriculum, softmax

UNSAMPLED_MODES: tuple[str, ...] = ("hold", "decay")


class SEC(Curriculum):
    """Boltzmann bandit on Q, learned by TD(0) from the mean absolute advantage of each arm.

    Args:
        arms: the arms, ``"SKILL/difficulty"``.
        alpha: TD step size, in (0, 1].
        tau: Boltzmann temperature, > 0 (smaller is greedier).
        unsampled: ``"hold"`` keeps the Q of arms absent from a batch; ``"decay"`` applies r = 0 to them.
        seed: seeds the curriculum's sampling RNG.
    """

    name: ClassVar[str] = "sec"

    def __init__(
        self,
        arms: Sequence[str],
        alpha: float = 0.3,
        tau: float = 0.5,
        unsampled: str = "hold",
        seed: int = 0,
    ) -> None:
        super().__init__(arms, seed=seed)
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must lie in (0, 1], got {alpha}")
        if not tau > 0.0:
            raise ValueError(f"tau must be > 0, got {tau}")
        if unsampled not in UNSAMPLED_MODES:
            raise ValueError(f"unsampled must be one of {', '.join(UNSAMPLED_MODES)}; got {unsampled!r}")
        self.alpha = float(alpha)
        self.tau = float(tau)
        self.unsampled = unsampled
        self.q: dict[str, float] = {a: 0.0 for a in self.arms}

    def probs(self) -> dict[str, float]:
        """``softmax(Q / tau)`` over the arms."""
        p = softmax([self.q[a] for a in self.arms], self.tau)
        return dict(zip(self.arms, p, strict=True))

    def _learn(self, batch: Mapping[str, ArmBatch]) -> dict[str, float]:
        extra: dict[str, float] = {}
        for arm in self.arms:
            if arm in batch:
                r = batch[arm].mean_abs_advantage
            elif self.unsampled == "decay":
                r = 0.0
                extra[f"curriculum/r/{arm}"] = 0.0  # the signal the update used, logged as such
            else:
                continue  # hold: an arm nobody drew keeps its value
            self.q[arm] = (1.0 - self.alpha) * self.q[arm] + self.alpha * r
        extra.update({f"curriculum/q/{a}": self.q[a] for a in self.arms})
        return extra

    def _extra_state(self) -> dict[str, Any]:
        return {"q": dict(self.q), "alpha": self.alpha, "tau": self.tau, "unsampled": self.unsampled}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        if state["unsampled"] != self.unsampled:
            raise ValueError(
                f"state was saved with unsampled={state['unsampled']!r}, this SEC has {self.unsampled!r}"
            )
        self.q = {a: float(state["q"][a]) for a in self.arms}
