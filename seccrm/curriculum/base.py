"""The interface every curriculum shares, and the bookkeeping they have in common.

A curriculum chooses, batch after batch, which arm (a ``"SKILL/difficulty"`` pair) each prompt slot
is drawn from, and learns from what the batch taught. One training step talks to it three times:

    curriculum.set_progress(step, total_steps)    # only the schedules use it
    arms = curriculum.sample(k)                   # one arm per prompt slot
    ...                                           # rollouts, rewards, GRPO advantages
    curriculum.update(completion_arms, advantages, rewards)   # one entry per COMPLETION

Subclasses say how probabilities are formed (``probs``) and what an update teaches them
(``_learn``); the base class validates inputs, draws from its own seeded RNG, turns a batch into
per-arm statistics, keeps the counters and the metrics, and saves and restores all of it as plain
JSON so that a checkpoint can hold it.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, SupportsFloat

from seccrm.world.arms import parse_arm

# A reward at or above this counts as a success (the verifier's "correct" is exactly 1.0; the small
# slack only guards against a reward that went through float32 on its way here).
SUCCESS_REWARD = 1.0 - 1e-6


@dataclass(frozen=True)
class ArmBatch:
    """What one update saw of one arm: its completions' statistics."""

    completions: int                  # how many completions of this arm the batch held
    mean_abs_advantage: float         # r(a): mean over those completions of |A_i|
    sum_abs_advantage: float          # the same, summed (windows weight by completions)
    mean_reward: float | None         # None when the update came without rewards
    success_rate: float | None        # share of completions with reward == 1.0; None likewise


# ------------------------------------------------------------------------------------------------
# Small helpers shared by the curricula and the pools
# ------------------------------------------------------------------------------------------------


def softmax(values: Sequence[float], temperature: float) -> list[float]:
    """Boltzmann probabilities ``exp(v / T) / sum exp(v / T)``, computed stably.

    Shapes: ``values`` (K,) -> (K,). Subtracting the max keeps ``exp`` from overflowing when the
    values are large against the temperature; it does not change the result.
    """
    top = max(values)
    exps = [math.exp((v - top) / temperature) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def rng_state(rng: random.Random) -> list[Any]:
    """A ``random.Random``'s state as JSON-ready lists (``getstate`` returns nested tuples)."""
    version, internal, gauss_next = rng.getstate()
    return [version, list(internal), gauss_next]


def set_rng_state(rng: random.Random, state: Sequence[Any]) -> None:
    """Inverse of :func:`rng_state`."""
    version, internal, gauss_next = state
    rng.setstate((int(version), tuple(int(x) for x in internal), gauss_next))


def check_arms(arms: Iterable[str]) -> tuple[str, ...]:
    """Validate an arm list: non-empty, no duplicates, every name ``SKILL/difficulty``."""
    arms = tuple(arms)
    if not arms:
        raise ValueError("a curriculum needs at least one arm; got an empty arm list")
    for arm in arms:
        parse_arm(arm)  # raises ValueError naming the bad part
    duplicates = sorted({a for a in arms if arms.count(a) > 1})
    if duplicates:
        raise ValueError(f"duplicate arms: {', '.join(duplicates)}")
    return arms


def _floats(values: Iterable[SupportsFloat], what: str) -> list[float]:
    """One finite float per completion, from a list, a numpy array or a 1-D tensor."""
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be one number per completion (a flat sequence): {err}") from err
    bad = [i for i, v in enumerate(out) if not math.isfinite(v)]
    if bad:
        # A NaN here would poison the arm's estimate for the rest of the run: refuse it loudly.
        raise ValueError(f"{what} must be finite; positions {bad[:5]} are not")
    return out


# ------------------------------------------------------------------------------------------------
# The interface
# ------------------------------------------------------------------------------------------------


class Curriculum(ABC):
    """Chooses the arm of every prompt slot; learns from per-completion advantages (and rewards).

    Args:
        arms: the arms to choose from, named ``"SKILL/difficulty"`` (e.g. ``seccrm.world.arms.ALL_ARMS``).
        seed: seeds the curriculum's own ``random.Random``; nothing else touches it.

    Counters kept for every curriculum: ``counts`` (prompts drawn per arm by :meth:`sample`) and
    ``observations`` (completions per arm seen by :meth:`update`); ``step`` counts updates.
    """

    name: ClassVar[str] = "curriculum"
    needs_rewards: ClassVar[bool] = False

    def __init__(self, arms: Sequence[str], seed: int = 0) -> None:
        self.arms: tuple[str, ...] = check_arms(arms)
        self.seed = int(seed)
        self._rng = random.Random(self.seed)
        self.step = 0
        self.counts: dict[str, int] = {a: 0 for a in self.arms}
        self.observations: dict[str, int] = {a: 0 for a in self.arms}
        self.progress: tuple[int, int | None] = (0, None)  # (step, total_steps) from set_progress
        # Draws since the last update: what p looked like then, and how many prompts each arm got.
        self._drawn: dict[str, int] = {a: 0 for a in self.arms}
        self._drawn_probs: dict[str, float] | None = None
        self._last: dict[str, float] = {}

    # --- what subclasses define ---------------------------------------------------------------

    @abstractmethod
    def probs(self) -> dict[str, float]:
        """The probability of each arm for the next draw (sums to 1, in ``self.arms`` order)."""

    @abstractmethod
    def _learn(self, batch: Mapping[str, ArmBatch]) -> dict[str, float]:
        """Learn from one update's per-arm statistics (only arms present in the batch appear).

        Returns extra metrics (already namespaced, e.g. ``curriculum/q/<arm>``).
        """

    def _extra_state(self) -> dict[str, Any]:
        """Subclass state for :meth:`state_dict` (JSON-ready)."""
        return {}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`_extra_state`; the base class has no extra state to restore."""
        if state:
            raise ValueError(f"unexpected state for curriculum {self.name!r}: {sorted(state)}")

    # --- the shared interface ------------------------------------------------------------------

    def set_progress(self, step: int, total_steps: int) -> None:
        """Tell the curriculum how far training is: ``step`` updates done out of ``total_steps``.

        Only the difficulty schedules use it; for the others it is recorded and changes nothing.
        """
        if total_steps <= 0:
            raise ValueError(f"total_steps must be positive, got {total_steps}")
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        self.progress = (int(step), int(total_steps))

    def sample(self, k: int) -> list[str]:
        """Draw ``k`` arms, one per prompt slot, each independently from :meth:`probs`."""
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        p = self.probs()
        if self._drawn_probs is None:
            self._drawn_probs = dict(p)  # the distribution this batch was drawn from, for the log
        drawn = self._rng.choices(self.arms, weights=[p[a] for a in self.arms], k=k)
        for arm in drawn:
            self.counts[arm] += 1
            self._drawn[arm] += 1
        return drawn

    def update(
        self,
        arms: Sequence[str],
        advantages: Iterable[SupportsFloat],
        rewards: Iterable[SupportsFloat] | None = None,
    ) -> dict[str, float]:
        """Learn from one batch: ``arms[i]``, ``advantages[i]`` (and ``rewards[i]``) per completion.

        Shapes: all (prompts * n,), one entry per completion, in any order. Returns :meth:`metrics`.
        """
        batch = self._summarise(arms, advantages, rewards)
        for arm, stats in batch.items():
            self.observations[arm] += stats.completions
        drawn_p = self._drawn_probs if self._drawn_probs is not None else self.probs()
        extra = self._learn(batch)
        self.step += 1
        last: dict[str, float] = {}
        for arm in self.arms:
            last[f"curriculum/p/{arm}"] = drawn_p[arm]
            last[f"curriculum/n/{arm}"] = float(self._drawn[arm])
        for arm, stats in batch.items():
            last[f"curriculum/r/{arm}"] = stats.mean_abs_advantage
            if stats.mean_reward is not None:
                last[f"curriculum/reward/{arm}"] = stats.mean_reward
        last.update(extra)
        self._last = last
        self._drawn = {a: 0 for a in self.arms}
        self._drawn_probs = None
        return self.metrics()

    def metrics(self) -> dict[str, float]:
        """The last update's per-arm metrics under ``curriculum/...`` keys.

        ``p`` is the distribution the batch was drawn from (every arm), ``n`` the prompts each arm
        got, ``r`` the mean |advantage| and ``reward`` the mean reward of each arm present in the
        update, plus each curriculum's own estimate (``q`` for SEC and UCB, ...). Before the first
        update: the current ``p`` only.
        """
        if not self._last:
            return {f"curriculum/p/{a}": v for a, v in self.probs().items()}
        return dict(self._last)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: counters, RNG, progress, pending draws, metrics."""
        return {
            "name": self.name,
            "arms": list(self.arms),
            "step": self.step,
            "counts": dict(self.counts),
            "observations": dict(self.observations),
            "progress": [self.progress[0], self.progress[1]],
            "rng": rng_state(self._rng),
            "drawn": dict(self._drawn),
            "drawn_probs": None if self._drawn_probs is None else dict(self._drawn_probs),
            "last": dict(self._last),
            "extra": self._extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; refuses a state of another curriculum or arm set."""
        if state.get("name") != self.name:
            raise ValueError(f"state is of curriculum {state.get('name')!r}, this one is {self.name!r}")
        if list(state["arms"]) != list(self.arms):
            raise ValueError(
                f"state was saved with arms {list(state['arms'])}, this curriculum has {list(self.arms)}; "
                "build the curriculum with the same arms, in the same order, to resume"
            )
        self.step = int(state["step"])
        self.counts = {a: int(state["counts"][a]) for a in self.arms}
        self.observations = {a: int(state["observations"][a]) for a in self.arms}
        step, total = state["progress"]
        self.progress = (int(step), None if total is None else int(total))
        set_rng_state(self._rng, state["rng"])
        self._drawn = {a: int(state["drawn"][a]) for a in self.arms}
        drawn_probs = state["drawn_probs"]
        self._drawn_probs = None if drawn_probs is None else {a: float(drawn_probs[a]) for a in self.arms}
        self._last = {str(k): float(v) for k, v in state["last"].items()}
        self._load_extra_state(state["extra"])

    # --- internals -----------------------------------------------------------------------------

    def _summarise(
        self,
        arms: Sequence[str],
        advantages: Iterable[SupportsFloat],
        rewards: Iterable[SupportsFloat] | None,
    ) -> dict[str, ArmBatch]:
        """Validate one update's inputs and reduce them to per-arm statistics."""
        arms = list(arms)
        adv = _floats(advantages, "advantages")
        rew = None if rewards is None else _floats(rewards, "rewards")
        if len(adv) != len(arms):
            raise ValueError(f"got {len(arms)} arms but {len(adv)} advantages; give one of each per completion")
        if rew is not None and len(rew) != len(arms):
            raise ValueError(f"got {len(arms)} arms but {len(rew)} rewards; give one of each per completion")
        if rew is None and self.needs_rewards:
            raise ValueError(f"curriculum {self.name!r} learns from rewards: pass rewards= to update()")
        if not arms:
            raise ValueError("update() got no completions; call it once per batch, with the batch")
        unknown = sorted(set(arms) - set(self.arms))
        if unknown:
            raise ValueError(f"unknown arms in update: {', '.join(unknown)}; known: {', '.join(self.arms)}")
        batch: dict[str, ArmBatch] = {}
        for arm in self.arms:  # arms order, so metrics and learning never depend on batch order
            idx = [i for i, a in enumerate(arms) if a == arm]
            if not idx:
                continue
            abs_sum = sum(abs(adv[i]) for i in idx)
            batch[arm] = ArmBatch(
                completions=len(idx),
                mean_abs_advantage=abs_sum / len(idx),
                sum_abs_advantage=abs_sum,
                mean_reward=None if rew is None else sum(rew[i] for i in idx) / len(idx),
                success_rate=None if rew is None else sum(rew[i] >= SUCCESS_REWARD for i in idx) / len(idx),
            )
        return batch
