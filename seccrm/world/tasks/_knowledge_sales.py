"""The two KNOWLEDGE tasks about opportunities: ``sales_insight_mining`` (the competitors or
subtopics raised in an opportunity's calls) and ``activity_priority`` (the opportunity's 'Not
Started' tasks that fit neither its stage nor the next, by the stage catalogue article).

The calls and tasks of other opportunities are the distractors, from hard on those of the same
account first for the calls. Golds come from SQL over the org: the calls' ``Competitors__c`` /
``Topics__c`` fields in first-mention order, and the catalogue's ``PolicyRule__c`` JSON.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from seccrm.world.org.schema import STAGES
from seccrm.world.tasks._knowledge_common import (
    MIN_CANDIDATES,
    TASK_COLUMNS,
    StageCatalogue,
    char_budget,
    fill_distractors,
    opportunity_stages,
    opportunity_tasks,
    pick,
    sample_others,
    split_list,
    stage_catalogue,
)
from seccrm.world.tasks.base import (
    NONE_ANSWER,
    NONE_DRAW_RATE,
    AnswerKind,
    Instance,
    Org,
    Task,
    build_messages,
    register,
    render_table,
    shuffled,
)

# ----------------------------------------------------------------------------------------------
# sales_insight_mining
# ----------------------------------------------------------------------------------------------

INSIGHT_FIELDS = {"Competitors__c": "competitors", "Topics__c": "subtopics"}


@dataclass(frozen=True)
class CallIndex:
    by_opp: dict[str, list[tuple[str, int]]]     # Opportunity Id -> [(transcript Id, body length)]
    candidates: dict[str, list[str]]             # field -> opportunities whose calls name some
    opps: list[str]                              # opportunities with calls, sorted
    opp_account: dict[str, str]
    by_account: dict[str, list[str]]             # AccountId -> its opportunities with calls


def call_index(org: Org) -> CallIndex:
    def build(o: Org) -> CallIndex:
        by_opp: dict[str, list[tuple[str, int]]] = defaultdict(list)
        named: dict[str, set[str]] = {f: set() for f in INSIGHT_FIELDS}
        for r in o.query("SELECT Id, OpportunityId__c, length(TranscriptBody__c), Competitors__c, Topics__c "
                         "FROM VoiceCallTranscript__c WHERE OpportunityId__c IS NOT NULL ORDER BY Id"):
            by_opp[r[1]].append((r[0], r[2] or 0))
            for f in INSIGHT_FIELDS:
                if split_list(r[f]):
                    named[f].add(r[1])
        accounts = {k: v["AccountId"] for k, v in opportunity_stages(o).items() if k in by_opp}
        by_account: dict[str, list[str]] = defaultdict(list)
        for opp in sorted(by_opp):
            by_account[accounts.get(opp, "")].append(opp)
        return CallIndex(dict(by_opp), {f: sorted(s) for f, s in named.items()}, sorted(by_opp), accounts,
                         dict(by_account))
    return org.cached("call_index", build)


@register
class SalesInsightMining(Task):
    name = "sales_insight_mining"
    answer = AnswerKind("text_list")
    levels = {
        "easy": "Only the opportunity's own calls (at most 2) are shown.",
        "medium": "The opportunity's calls are shown with up to 3 calls of other opportunities.",
        "hard": "The opportunity's calls are mixed with up to 10 other calls, those of the same account "
                "first, in random order.",
    }
    _n_distractors = {"easy": 0, "medium": 3, "hard": 10}

    def generate(self, org: Org, difficulty: str, rng: random.Random) -> Instance:
        idx = call_index(org)
        field = rng.choice(sorted(INSIGHT_FIELDS))
        cands = idx.candidates[field]
        if difficulty == "easy":
            cands = [c for c in cands if len(idx.by_opp[c]) <= 2] or cands
        opp = pick(rng, cands, f"opportunity calls naming {INSIGHT_FIELDS[field]}", org)
        own = idx.by_opp[opp]
        acc = idx.opp_account.get(opp, "")
        near = [o for o in idx.by_account.get(acc, []) if o != opp] if difficulty == "hard" else []
        n_extra = org.rendering.count("sales_insight.distractors", difficulty, self._n_distractors[difficulty])
        far = sample_others(rng, idx.opps, opp, 4 * n_extra)
        # calls of the same account's other deals read most alike, so they come first when hard
        pool = [(o, c) for o in shuffled(rng, near) + [o for o in far if o not in near] for c in idx.by_opp[o]]
        budget = char_budget(org, difficulty) - sum(n for _, n in own)
        extra = fill_distractors(pool, lambda oc: oc[1][1] + 60, budget, n_extra)
        ids = [t for t, _ in own] + [c[0] for _, c in extra]
        rows = org.query("SELECT Id, OpportunityId__c, CreatedDate, TranscriptBody__c FROM VoiceCallTranscript__c "
                         f"WHERE Id IN ({','.join('?' * len(ids))})", tuple(ids))
        rows = shuffled(rng, rows) if difficulty == "hard" else sorted(rows, key=lambda r: r["CreatedDate"])
        table = render_table("VoiceCallTranscript__c", ["Id", "OpportunityId__c", "CreatedDate",
                                                        "TranscriptBody__c"], rows)
        opp_name = opportunity_stages(org)[opp]["Name"]
        what = INSIGHT_FIELDS[field]
        items = self.gold(org, opp, field)
        question = (f"Which {what} were raised in the voice calls about opportunity {opp_name} ({opp})? "
                    f"List every one named in those calls, as written there.")
        messages = build_messages(question, [table], f"the {what}, comma-separated.", terse=org.rendering.terse)
        meta = {"opportunity_id": opp, "field": field, "asks_for": what, "items": items,
                "transcript_ids": [t for t, _ in own], "distractor_ids": [c[0] for _, c in extra],
                "n_calls": len(rows)}
        return Instance(self.name, difficulty, messages, items, meta)

    @staticmethod
    def gold(org: Org, opportunity_id: str, field: str) -> list[str]:
        """Distinct names in ``field`` over the opportunity's calls, in order of first mention."""
        out: list[str] = []
        for r in org.query(f"SELECT {field} FROM VoiceCallTranscript__c WHERE OpportunityId__c = ? "
                           "ORDER BY CreatedDate, Id", (opportunity_id,)):
            out.extend(x for x in split_list(r[0]) if x not in out)
        return out


# ----------------------------------------------------------------------------------------------
# activity_priority
# ----------------------------------------------------------------------------------------------

def stage_consistent_opps(org: Org) -> tuple[list[str], list[str]]:
    """Opportunities with 'Not Started' tasks whose StageName agrees with their completed tasks (or
    that have none), split into (some task does not fit, all fit). Opportunities whose StageName is
    wrong belong to wrong_stage_rectification, and would make 'its stage' ambiguous here."""
    def build(o: Org) -> tuple[list[str], list[str]]:
        cat, opps = stage_catalogue(o), opportunity_stages(o)
        misfit: list[str] = []
        fit: list[str] = []
        for opp, tasks in opportunity_tasks(o).items():
            stage = opps[opp]["StageName"] if opp in opps else None
            pending = [t for t in tasks if t["Status"] == "Not Started"]
            derived = cat.derived_stage([t["Subject"] for t in tasks if t["Status"] == "Completed"])
            if stage not in STAGES or not pending or derived not in (None, stage):
                continue
            (misfit if any(not cat.fits(t["Subject"], stage) for t in pending) else fit).append(opp)
        return misfit, fit
    return org.cached("activity_priority", build)


@register
class ActivityPriority(Task):
    name = "activity_priority"
    answer = AnswerKind("id_list", prefix="00T", allow_none=True)
    levels = {
        "easy": "One opportunity with 5-8 tasks, in random order.",
        "medium": "The opportunity's tasks mixed with 2 other opportunities' tasks, in random order.",
        "hard": "Tasks of up to 8 other opportunities in random order.",
    }
    _n_other = {"easy": 0, "medium": 2, "hard": 8}

    def generate(self, org: Org, difficulty: str, rng: random.Random) -> Instance:
        cat, tasks, opps = stage_catalogue(org), opportunity_tasks(org), opportunity_stages(org)
        misfit, fit = stage_consistent_opps(org)
        pool = fit if (rng.random() < NONE_DRAW_RATE and fit) else misfit      # fit: every task fits (None)
        if difficulty == "easy":     # a short task list, but enough tasks to choose among
            pool = ([o for o in pool if MIN_CANDIDATES <= len(tasks[o]) <= 8]
                    or [o for o in pool if len(tasks[o]) <= 8] or pool)
        opp = pick(rng, pool, "opportunity with 'Not Started' tasks", org)
        n_other = org.rendering.count("activity_priority.other_opps", difficulty, self._n_other[difficulty])
        others = fill_distractors(sample_others(rng, list(tasks), opp, 4 * n_other),
                                  lambda o: 70 * len(tasks[o]), char_budget(org, difficulty) - len(cat.text),
                                  n_other)
        shown = [opp, *others]
        task_rows = [t for o in shown for t in tasks[o]]
        task_rows = shuffled(rng, task_rows)    # in Id order the pending (misfit) tasks would come last
        tables = [render_table("Opportunity", ["Id", "Name", "StageName"], [opps[o] for o in sorted(shown)]),
                  render_table("Task", [c for c in TASK_COLUMNS if c != "ActivityDate" or not org.rendering.terse],
                               task_rows)]
        stage = opps[opp]["StageName"]
        gold = self.gold(org, cat, opp)
        question = (f"Which 'Not Started' tasks of opportunity {opp} do not fit its current stage "
                    f"({stage}) under the stage activity policy?")
        messages = build_messages(question, tables, "the Task Ids, comma-separated, or None if every "
                                  "'Not Started' task fits.",
                                  context=f"Stage activity policy (knowledge article {cat.article_id}):\n{cat.text}",
                                  terse=org.rendering.terse)
        meta = {"opportunity_id": opp, "stage": stage, "rule_article_id": cat.article_id,
                "rule": "fits when the subject belongs to the stage or the next one",
                "pending_task_ids": [t["Id"] for t in tasks[opp] if t["Status"] == "Not Started"],
                "other_opportunity_ids": others, "n_tasks": len(task_rows)}
        return Instance(self.name, difficulty, messages, gold, meta)

    @staticmethod
    def gold(org: Org, cat: StageCatalogue, opportunity_id: str) -> list[str]:
        stage = org.scalar("SELECT StageName FROM Opportunity WHERE Id = ?", (opportunity_id,))
        rows = org.query("SELECT Id, Subject FROM Task WHERE WhatId = ? AND Status = 'Not Started' ORDER BY Id",
                         (opportunity_id,))
        bad = [r["Id"] for r in rows if not cat.fits(r["Subject"], stage)]
        return bad or [NONE_ANSWER]
