"""How an agentic episode is paid: the verifier's answer score, made to pay for querying.

The report's reward is per answer: 1.0 correct, 0.1 well formatted but wrong, 0.0 otherwise. In an
episode that teaches a small model to stop: when most groups are all wrong, the 0.1 for a well-formed
answer is the only difference between episodes, and the cheapest way to it is one turn with a
constant-shaped answer and no query. Departures from the report, each a field of `EpisodeReward`:

- ``form_needs_query`` (on by default): the 0.1 for form is earned by a well-formed *episode*, at least
  one query that ran and then a well-formed answer, not by an answer alone. A correct answer is worth
  1.0 however it was reached (a confidentiality refusal needs no query).
- ``per_query`` / ``max_query_bonus`` (off by default): a small bonus per query that ran, capped, as
  SQLEnv pays per executed query.
- ``repeat_penalty`` (off by default): subtracted per query that repeats an earlier one of the episode
  (RAGEN's "echo trap": multi-turn RL collapsing into repeated actions).
- ``turn_penalty`` (off by default): subtracted per model turn, for a preference for short episodes.

With the defaults the reward keeps the report's three levels (1.0 / 0.1 / 0.0); each component is
returned under its own name so the trainer can log it (``reward/answer``, ``reward/form``, ...).

>>> pay_episode(correct=False, formatted=True, queries=[], queries_ok=[], turns=1)["reward"]
0.0
>>> pay_episode(correct=False, formatted=True, queries=["SELECT 1"], queries_ok=[True], turns=2)["reward"]
0.1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seccrm.world.rewards import REWARD_CORRECT, REWARD_FORMAT, REWARD_WRONG


@dataclass(frozen=True)
class EpisodeReward:
    """The terms an episode's reward is made of (module docstring). Defaults: the report's levels, the
    form bonus earned by a well-formed episode only."""

    form_needs_query: bool = True
    """The 0.1 for a well-formed wrong answer needs at least one query that ran before it."""
    per_query: float = 0.0
    """Added per query that ran (0 = off)."""
    max_query_bonus: float = 0.0
    """Cap of the per-query bonus over an episode (0 = no bonus at all)."""
    repeat_penalty: float = 0.0
    """Subtracted per query that repeats an earlier one of the episode (whitespace and case ignored)."""
    turn_penalty: float = 0.0
    """Subtracted per model turn."""

    def __post_init__(self) -> None:
        for name in ("per_query", "max_query_bonus", "repeat_penalty", "turn_penalty"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")

    @property
    def shaped(self) -> bool:
        """True when any term beyond the report's levels is on (rewards then leave {0, 0.1, 1})."""
        return bool(self.per_query and self.max_query_bonus) or bool(self.repeat_penalty or self.turn_penalty)


def _normalise_query(sql: str) -> str:
    return " ".join(sql.lower().split()).rstrip(";")


def pay_episode(correct: bool, formatted: bool, queries: list[str], queries_ok: list[bool], turns: int,
                rules: EpisodeReward | None = None) -> dict[str, Any]:
    """The episode's reward and its components.

    ``queries`` are the episode's queries in order and ``queries_ok`` whether each ran; ``turns`` counts
    the model's turns. Returns ``{reward, answer, form, query_bonus, repeats, turn_cost, queries_ran}``
    with ``reward`` the sum of the named terms (``repeats`` and ``turn_cost`` are <= 0).
    """
    rules = rules or EpisodeReward()
    ran = sum(1 for ok in queries_ok if ok)
    seen: set[str] = set()
    repeated = 0
    for q in queries:
        key = _normalise_query(q)
        repeated += key in seen
        seen.add(key)
    answer = REWARD_CORRECT if correct else REWARD_WRONG
    earns_form = formatted and not correct and (ran >= 1 or not rules.form_needs_query)
    form = REWARD_FORMAT if earns_form else 0.0
    bonus = min(rules.per_query * ran, rules.max_query_bonus)
    repeats = -rules.repeat_penalty * repeated
    turn_cost = -rules.turn_penalty * turns
    return {"reward": answer + form + bonus + repeats + turn_cost, "answer": answer, "form": form,
            "query_bonus": bonus, "repeats": repeats, "turn_cost": turn_cost, "queries_ran": ran}
