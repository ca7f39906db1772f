"""Helpers shared by the KNOWLEDGE tasks and by the CRUD tasks that read the same records.

Prompt budgets (``CHAR_BUDGET``) and candidate counts, reproducible picking and distractor filling
(:func:`pick`, :func:`sample_others`, :func:`fill_distractors`), and the per-org lookups built once
per connection and cached with ``Org.cached``: the one Policy article of a rule type
(:func:`policy_article`), the stage catalogue (:class:`StageCatalogue`, shared with the CRUD task
wrong_stage_rectification), and each opportunity's stage and tasks.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from seccrm.world.org.schema import STAGES
from seccrm.world.tasks.base import Org

T = TypeVar("T")

# Hard prompts stay under ~12,000 characters: distractors are added until this budget is spent.
CHAR_BUDGET = {"easy": 2_500, "medium": 6_000, "hard": 10_000}
# The fewest answer candidates (articles, products) an id question shows: with fewer, "answer the
# k-th one shown" would be a good guess.
MIN_CANDIDATES = 5


def char_budget(org: Org, difficulty: str) -> int:
    """The level's character budget (``CHAR_BUDGET``) under the org's rendering."""
    return org.rendering.count("knowledge.char_budget", difficulty, CHAR_BUDGET[difficulty])


def pick(rng: random.Random, items: list[T], what: str, org: Org) -> T:
    """``rng.choice`` that says which org lacks what, instead of an IndexError."""
    if not items:
        raise ValueError(f"org (seed {org.meta.get('seed')}, size {org.meta.get('size')}) has no {what}")
    return rng.choice(items)


def split_list(text: str | None) -> list[str]:
    """'a, b,,c ' -> ['a', 'b', 'c'] (the org's comma-separated fields)."""
    return [p.strip() for p in (text or "").split(",") if p.strip()]


# ----------------------------------------------------------------------------------------------
# The stage catalogue (shared with the CRUD task wrong_stage_rectification)
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StageCatalogue:
    article_id: str
    text: str                        # FAQ_Answer__c: what the model reads
    stage_of: dict[str, int]         # Task subject -> index into STAGES

    def fits(self, subject: str, stage: str) -> bool:
        """A 'Not Started' task fits an opportunity at ``stage`` when its subject belongs to that
        stage or the next one (subjects outside the catalogue fit nowhere)."""
        s = self.stage_of.get(subject)
        return s is not None and s in (STAGES.index(stage), STAGES.index(stage) + 1)

    def derived_stage(self, completed_subjects: list[str]) -> str | None:
        """The latest stage (pipeline order) among completed subjects, None when none is known."""
        idx = [self.stage_of[s] for s in completed_subjects if s in self.stage_of]
        return STAGES[max(idx)] if idx else None


def _load_policy(org: Org, rule_type: str) -> tuple[str, str, dict[str, Any]]:
    """(Id, FAQ_Answer__c, rule JSON) of the one Policy article of ``rule_type``."""
    rows = org.query(
        "SELECT Id, FAQ_Answer__c, PolicyRule__c FROM Knowledge__kav "
        "WHERE ArticleType__c = 'Policy' AND PolicyRule__c LIKE ? ORDER BY Id", (f'%"{rule_type}"%',))
    for r in rows:
        rule = json.loads(r["PolicyRule__c"])
        if rule.get("type") == rule_type:
            return r["Id"], r["FAQ_Answer__c"], rule
    raise ValueError(f"org has no Policy article of type {rule_type!r} (see docs/org-contract.md)")


def policy_article(org: Org, rule_type: str) -> tuple[str, str, dict[str, Any]]:
    """Cached ``_load_policy``: the routing and stage articles are read by every CRUD instance."""
    return org.cached(f"policy:{rule_type}", lambda o: _load_policy(o, rule_type))


def stage_catalogue(org: Org) -> StageCatalogue:
    def build(o: Org) -> StageCatalogue:
        art_id, text, rule = policy_article(o, "stage_activities")
        stage_of = {subj: STAGES.index(stage) for stage, subjects in rule["stages"].items()
                    for subj in subjects}
        return StageCatalogue(art_id, text, stage_of)
    return org.cached("stage_catalogue", build)


def opportunity_tasks(org: Org) -> dict[str, list[sqlite3.Row]]:
    """Opportunity Id -> its Tasks (Id, WhatId, Subject, Status, ActivityDate), ordered by Id."""
    def build(o: Org) -> dict[str, list[sqlite3.Row]]:
        out: dict[str, list[sqlite3.Row]] = defaultdict(list)
        for r in o.query("SELECT Id, WhatId, Subject, Status, Priority, ActivityDate FROM Task "
                         "WHERE WhatId LIKE '006%' ORDER BY Id"):
            out[r["WhatId"]].append(r)
        return dict(out)
    return org.cached("opportunity_tasks", build)


def opportunity_stages(org: Org) -> dict[str, sqlite3.Row]:
    """Opportunity Id -> (Id, Name, StageName, AccountId)."""
    return org.cached("opportunity_stages", lambda o: {
        r["Id"]: r for r in o.query("SELECT Id, Name, StageName, AccountId FROM Opportunity ORDER BY Id")})


TASK_COLUMNS = ["Id", "WhatId", "Subject", "Status", "ActivityDate"]


def sample_others(rng: random.Random, keys: list[T], exclude: T, k: int) -> list[T]:
    """Up to ``k`` random keys other than ``exclude``, without shuffling the whole (large) list."""
    picked = rng.sample(keys, min(k + 1, len(keys)))
    return [x for x in picked if x != exclude][:k]


def fill_distractors(pool: list[T], size: Callable[[T], int], budget: int, limit: int) -> list[T]:
    """Distractors taken from ``pool`` in its order (shuffle or rank it first) while they fit.

    ``size(item)`` is the item's rendered size in characters; at most ``limit`` items are taken
    and their sizes sum to at most ``budget``.
    """
    out: list[T] = []
    for item in pool:
        if len(out) >= limit:
            break
        n = size(item)
        if n <= budget:
            out.append(item)
            budget -= n
    return out

