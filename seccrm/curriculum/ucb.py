"""UCB on the mean absolute advantage over a sliding window, as DUMP does (Wang et al., 2025).

DUMP's insight is SEC's: the magnitude of the GRPO advantage measures how much an arm can still
teach. It differs in how it estimates and explores. Each arm's value is the mean |A| over the
completions of its last ``window`` updates (old evidence drops out instead of fading), and an
exploration bonus favours arms seen little, as in UCB1:

    score(a) = mean_window |A|(a) + c * sqrt(ln N / n_a)

with n_a the completions of arm a seen so far and N the sum over arms. Arms never played come
first: while any is left, they share all the probability. DUMP turns its scores into sampling
probabilities; here that is a softmax with ``temperature``, which tends to plain UCB1's argmax as the
temperature goes to 0 (``temperature=0`` means exactly the argmax, ties split evenly). Drawing from a
distribution, rather than taking the argmax for every slot, is what lets one batch of many prompts
cover more than one arm. ``c = sqrt(2)`` gives the textbook UCB1 bonus sqrt(2 ln N / n_a).

Departures: counts are in completions (each |A_i| is one observation); the default temperature is
SEC's tau (0.5) so that the two differ only in how they value arms, not in how greedy they are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from seccrm.curriculum.base import ArmBatch, Curriculum, softmax


class UCB(Curriculum):
    """Softmax over UCB1 scores of the windowed mean |advantage|; unplayed arms first.

    Args:
        arms: the arms, ``"SKILL/difficulty"``.
        window: how many of an arm's most recent updates its value averages over (>= 1).
        c: exploration constant (>= 0); 0 turns the bonus off.
        temperature: softmax temperature over scores (>= 0); 0 means argmax.
        seed: seeds the curriculum's sampling RNG.
    """

    name: ClassVar[str] = "ucb"

    def __init__(
        self,
        arms: Sequence[str],
        window: int = 20,
        c: float = 1.0,
        temperature: float = 0.5,
        seed: int = 0,
    ) -> None:
        super().__init__(arms, seed=seed)
        if window < 1:
            raise ValueError(f"window must be >= 1 update, got {window}")
        if c < 0:
            raise ValueError(f"c must be >= 0, got {c}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        self.window = int(window)
        self.c = float(c)
        self.temperature = float(temperature)
        # Per arm, its last `window` updates as [sum of |A|, completions], oldest first.
        self.history: dict[str, list[list[float]]] = {a: [] for a in self.arms}

    @property
    def q(self) -> dict[str, float]:
        """Windowed mean |advantage| of each arm (0 for an arm never played)."""
        out: dict[str, float] = {}
        for arm in self.arms:
            total = sum(n for _, n in self.history[arm])
            out[arm] = sum(s for s, _ in self.history[arm]) / total if total else 0.0
        return out

    def bonus(self) -> dict[str, float]:
        """``c * sqrt(ln N / n_a)``; infinite for arms never played."""
        total = sum(self.observations.values())
        return {
            a: (self.c * math.sqrt(math.log(total) / n) if n else math.inf)
            for a, n in self.observations.items()
        }

    def scores(self) -> dict[str, float]:
        """UCB score of each arm: windowed mean |A| plus the exploration bonus."""
        q, bonus = self.q, self.bonus()
        return {a: q[a] + bonus[a] for a in self.arms}

    def probs(self) -> dict[str, float]:
        scores = self.scores()
        unplayed = [a for a in self.arms if math.isinf(scores[a])]
        if unplayed:
            return {a: (1.0 / len(unplayed) if a in unplayed else 0.0) for a in self.arms}
        if self.temperature == 0.0:
            top = max(scores.values())
            best = [a for a in self.arms if scores[a] == top]
            return {a: (1.0 / len(best) if a in best else 0.0) for a in self.arms}
        p = softmax([scores[a] for a in self.arms], self.temperature)
        return dict(zip(self.arms, p, strict=True))

    def _learn(self, batch: Mapping[str, ArmBatch]) -> dict[str, float]:
        for arm, stats in batch.items():
            self.history[arm].append([stats.sum_abs_advantage, float(stats.completions)])
            del self.history[arm][: -self.window]  # keep the last `window` updates only
        q, bonus = self.q, self.bonus()
        extra = {f"curriculum/q/{a}": q[a] for a in self.arms}
        # An unplayed arm's bonus is infinite; JSON logs cannot hold that, so it is left out.
        extra.update({f"curriculum/bonus/{a}": b for a, b in bonus.items() if math.isfinite(b)})
        return extra

    def _extra_state(self) -> dict[str, Any]:
        return {"history": {a: [list(h) for h in self.history[a]] for a in self.arms}}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.history = {a: [[float(s), float(n)] for s, n in state["history"][a]] for a in self.arms}
