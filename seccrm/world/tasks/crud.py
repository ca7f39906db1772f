"""CRUD tasks: route a new case, route a new lead, correct an opportunity's stage.

The answer is one JSON write action, ``{"op": "update", "object": O, "id": I, "fields": {F: V}}``;
the reward applies it to a scratch copy of the org and compares the touched rows with the gold
action's. The rules come from the org's Policy articles: the prompt shows their text
(``FAQ_Answer__c``), while the gold answer is computed from their ``PolicyRule__c`` JSON, which the
model never sees.

Targets are the org's unassigned records and the opportunities whose StageName disagrees with their
completed activities. Unassigned cases have Status 'New' and no owner; unassigned leads have no owner
and are not converted (the org gives them Status 'Open - Not Contacted'). A lead is routed only when
every sales rep of its territory owns at least one lead: a rep with none has no conversion rate,
a case the policy does not cover. Metadata records the target, the rule and the facts behind the
decision (each candidate and its counts), so that any gold answer can be audited by hand.

The case routing window is the policy's "M complete months before the current month", fixed by the
org's today; closed and open counts per agent are read with one GROUP BY per org and cached.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from seccrm.world.tasks.base import (
    AnswerKind,
    Instance,
    Org,
    Task,
    Window,
    build_messages,
    past_window,
    register,
    render_table,
    shuffled,
)
from seccrm.world.tasks.knowledge import (
    STAGES,
    TASK_COLUMNS,
    char_budget,
    fill_distractors,
    opportunity_stages,
    opportunity_tasks,
    pick,
    policy_article,
    sample_others,
    split_list,
    stage_catalogue,
)

# Prompts stay under ~12,000 characters; a rendered Case row takes about ROW_CHARS.
PROMPT_LIMIT = {"easy": 4_000, "medium": 7_000, "hard": 10_000}
ROW_CHARS = 90


def action_json(obj: str, record_id: str, fields: dict[str, str]) -> str:
    """The canonical gold action string (sorted keys, so equal actions are equal strings)."""
    return json.dumps({"op": "update", "object": obj, "id": record_id, "fields": fields}, sort_keys=True)


def action_format(obj: str, field: str, what: str) -> str:
    return (f'one JSON object: {{"op": "update", "object": "{obj}", "id": "<{obj} Id>", '
            f'"fields": {{"{field}": "<{what}>"}}}}.')


# ----------------------------------------------------------------------------------------------
# Territories: who may receive a record from a given state
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Territories:
    rows: list[dict[str, str]]                 # Territory2 (Id, Name, Description), by Id
    of_state: dict[str, str]                   # state code -> Territory2 Id
    members: dict[tuple[str, str], list[str]]  # (Territory2 Id, UserRole) -> User Ids, sorted
    users: dict[str, dict[str, str]]           # User Id -> (Id, Name, UserRole)


def territories(org: Org) -> Territories:
    def build(o: Org) -> Territories:
        rows = [dict(r) for r in o.query("SELECT Id, Name, Description FROM Territory2 ORDER BY Id")]
        of_state = {s: r["Id"] for r in rows for s in split_list(r["Description"])}
        users = {r["Id"]: dict(r) for r in o.query('SELECT Id, Name, UserRole FROM "User" ORDER BY Id')}
        members: dict[tuple[str, str], list[str]] = {}
        for r in o.query("SELECT DISTINCT Territory2Id, UserId FROM UserTerritory2Association "
                         "ORDER BY Territory2Id, UserId"):
            role = users.get(r["UserId"], {}).get("UserRole", "")
            members.setdefault((r["Territory2Id"], role), []).append(r["UserId"])
        return Territories(rows, of_state, members, users)
    return org.cached("territories", build)


def territory_tables(t: Territories, territory: str, shown_users: list[str], all_territories: bool,
                     terse: bool = False) -> list[str]:
    """Territory2 rows (only the target's, or all) and one row per territory association of each
    shown user (a user may belong to two territories); ``terse``: without names."""
    terr = t.rows if all_territories else [r for r in t.rows if r["Id"] == territory]
    keep = {r["Id"] for r in terr}
    shown = set(shown_users)
    assoc = [{**t.users[u], "Territory2Id": tid} for (tid, _), us in sorted(t.members.items())
             for u in us if u in shown and tid in keep]
    assoc.sort(key=lambda r: (r["Id"], r["Territory2Id"]))
    return [render_table("Territory2", ["Id", "Description"] if terse else ["Id", "Name", "Description"], terr),
            render_table("User (one row per UserTerritory2Association)",
                         ["Id", "UserRole", "Territory2Id"] if terse else ["Id", "Name", "UserRole", "Territory2Id"],
                         assoc)]


def other_members(t: Territories, territory: str, role: str, rng: random.Random, k: int) -> list[str]:
    """Up to ``k`` users of the same role in other territories (distractors)."""
    pool = sorted(u for (tid, r), us in t.members.items() if r == role and tid != territory for u in us)
    return rng.sample(pool, min(k, len(pool)))


# ----------------------------------------------------------------------------------------------
# case_routing
# ----------------------------------------------------------------------------------------------

def routable_cases(org: Org) -> list[tuple[str, str, str, str]]:
    """(Case Id, AccountId, IssueId__c, Territory2 Id) of unassigned new cases whose account's state
    lies in a territory with at least one support agent."""
    def build(o: Org) -> list[tuple[str, str, str, str]]:
        t = territories(o)
        out = []
        for r in o.query('SELECT c.Id, c.AccountId, c.IssueId__c, a.ShippingState FROM "Case" c '
                         "JOIN Account a ON a.Id = c.AccountId WHERE c.Status = 'New' AND c.OwnerId IS NULL "
                         "ORDER BY c.Id"):
            tid = t.of_state.get(r["ShippingState"])
            if tid and t.members.get((tid, "Support Agent")):
                out.append((r["Id"], r["AccountId"], r["IssueId__c"], tid))
        return out
    return org.cached("routable_cases", build)


CASE_COLUMNS = ["Id", "OwnerId", "IssueId__c", "Status", "ClosedDate"]


@dataclass(frozen=True)
class CaseBook:
    """What case routing needs, read once per org: the policy's window is fixed by today's date.

    ``closed`` and ``open`` are SQL GROUP BY counts (the gold rests on them); the rest holds each
    agent's cases as compact rows (``CASE_COLUMNS``) for rendering: closed ones sorted by ClosedDate
    (with the dates alongside, for bisection), open ones by Id.
    """
    window: Window
    closed: dict[tuple[str, str], int]          # (OwnerId, IssueId__c) -> closed inside the window
    open: dict[str, int]                        # OwnerId -> cases not Closed
    closed_rows: dict[str, tuple[list[tuple[str, ...]], list[str]]]   # OwnerId -> (rows, ClosedDates)
    open_rows: dict[str, list[tuple[str, ...]]]

    def closed_between(self, owner: str, start: str, end: str) -> list[tuple[str, ...]]:
        """The owner's closed cases with start <= ClosedDate < end (ISO strings)."""
        rows, dates = self.closed_rows.get(owner, ([], []))
        return rows[bisect.bisect_left(dates, start):bisect.bisect_left(dates, end)]


def case_book(org: Org) -> CaseBook:
    def build(o: Org) -> CaseBook:
        _, _, rule = policy_article(o, "case_routing")
        w = past_window(o.today, "months", int(rule["lookback_months"]))
        closed = {(r[0], r[1]): r[2] for r in o.query(
            'SELECT OwnerId, IssueId__c, COUNT(*) FROM "Case" WHERE Status = \'Closed\' AND ClosedDate >= ? '
            "AND ClosedDate < ? GROUP BY OwnerId, IssueId__c", (w.start.isoformat(), w.end.isoformat()))}
        open_ = {r[0]: r[1] for r in o.query('SELECT OwnerId, COUNT(*) FROM "Case" WHERE Status != \'Closed\' '
                                             "AND OwnerId IS NOT NULL GROUP BY OwnerId")}
        closed_rows: dict[str, tuple[list[tuple[str, ...]], list[str]]] = {}
        open_rows: dict[str, list[tuple[str, ...]]] = {}
        for r in o.query('SELECT Id, OwnerId, IssueId__c, Status, ClosedDate FROM "Case" '
                         "WHERE OwnerId IS NOT NULL ORDER BY ClosedDate, Id"):
            if r[3] == "Closed":
                rows, dates = closed_rows.setdefault(r[1], ([], []))
                rows.append(tuple(r))
                dates.append(r[4])
            else:
                open_rows.setdefault(r[1], []).append(tuple(r))
        return CaseBook(w, closed, open_, closed_rows, open_rows)
    return org.cached("case_book", build)


@register
class CaseRouting(Task):
    name = "case_routing"
    answer = AnswerKind("action", action_object="Case", action_fields=("OwnerId",))
    levels = {
        "easy": "Only the case's territory and its agents, each with its count of closed cases of the "
                "issue inside the look-back window and of open cases.",
        "medium": "All territories and 2 agents of other territories; the candidates' closed cases of the "
                  "issue as rows, from 6 months before the window on, to be filtered and counted.",
        "hard": "5 agents of other territories and one mixed case table in random order (other issues, "
                "other agents, before the window, open cases as rows when they fit).",
    }

    def generate(self, org: Org, difficulty: str, rng: random.Random) -> Instance:
        case_id, account, issue, territory = pick(rng, routable_cases(org), "unassigned new case", org)
        art_id, text, rule = policy_article(org, "case_routing")
        book, t = case_book(org), territories(org)
        agents = t.members[(territory, "Support Agent")]
        facts: list[dict[str, Any]] = [{"Id": a, "closed": book.closed.get((a, issue), 0),
                                        "open": book.open.get(a, 0)} for a in agents]
        best = min(facts, key=lambda f: (-f["closed"], f["open"], f["Id"]))
        n_other = org.rendering.count("case_routing.other_agents", difficulty,
                                      {"easy": 0, "medium": 2, "hard": 5}[difficulty])
        shown = agents + ([] if difficulty == "easy" else other_members(t, territory, "Support Agent", rng, n_other))
        terse = org.rendering.terse     # compact: no names or subject, which the rule does not read
        tables = [render_table("Case (to route)", ["Id", "AccountId", "IssueId__c", "Status"] + ([] if terse else ["Subject"]),
                               org.query('SELECT * FROM "Case" WHERE Id = ?', (case_id,))),
                  render_table("Account", ["Id", "ShippingState"] if terse else ["Id", "Name", "ShippingState"],
                               org.query("SELECT * FROM Account WHERE Id = ?", (account,))),
                  *territory_tables(t, territory, shown, difficulty != "easy", terse)]
        if difficulty == "easy":
            tables.append(render_table(
                f"Cases per agent (closed with issue {issue} {book.window.phrase}; open now)",
                ["OwnerId", "ClosedWithIssue", "OpenCases"], [(f["Id"], f["closed"], f["open"]) for f in facts]))
        else:
            limit = org.rendering.count("crud.prompt_limit", difficulty, PROMPT_LIMIT[difficulty])
            budget = limit - len(text) - sum(map(len, tables)) - 600
            tables += self._case_tables(book, difficulty, rng, shown, agents, issue, facts, budget, terse)
        messages = build_messages(
            f"Route case {case_id} to the right support agent under the case routing policy.", tables,
            action_format("Case", "OwnerId", "User Id"), today=org.today,
            context=f"Case routing policy (knowledge article {art_id}):\n{text}", terse=org.rendering.terse)
        meta = {"target_id": case_id, "rule_article_id": art_id, "rule": rule, "issue_id": issue,
                "account_id": account, "territory_id": territory, **book.window.as_meta(),
                "candidates": facts, "chosen": best["Id"], "tie_break": "fewest open cases, then lowest Id",
                "shown_user_ids": sorted(set(shown))}
        return Instance(self.name, difficulty, messages,
                        [action_json("Case", case_id, {"OwnerId": best["Id"]})], meta)

    @staticmethod
    def _case_tables(book: CaseBook, difficulty: str, rng: random.Random, shown: list[str], agents: list[str],
                     issue: str, facts: list[dict[str, Any]], budget: int, terse: bool = False) -> list[str]:
        """Case rows the decision rests on, with the level's distractors, in about ``budget`` chars.

        Every candidate's closed case of the issue inside the window is shown. Open cases are given
        as counts per agent, except on hard, where they are rows when they fit.
        """
        start, end = book.window.start.isoformat(), book.window.end.isoformat()
        before = _months_back(book.window.start, 6).isoformat()
        closed = [r for u in (shown if difficulty == "hard" else agents) for r in book.closed_between(u, before, end)]
        needed = [r for r in closed if r[1] in agents and r[2] == issue and r[4] >= start]
        taken = {r[0] for r in needed}
        # Distractors: the issue's cases before the window; on hard also other issues and other agents.
        pool = [r for r in closed if r[0] not in taken and (difficulty == "hard" or r[2] == issue)]
        open_rows = [r for u in agents for r in book.open_rows.get(u, [])]
        if difficulty != "hard" or ROW_CHARS * (len(needed) + len(open_rows)) > budget:
            open_rows = []      # counts instead of rows
        room = budget - ROW_CHARS * (len(needed) + len(open_rows)) - (0 if open_rows else 40 * len(facts))
        extra = fill_distractors(shuffled(rng, pool), lambda r: ROW_CHARS, room, 10_000)
        cut = 1 if terse else 0     # compact: the case's Id plays no part in the count
        if difficulty == "hard":
            out = [render_table("Case", CASE_COLUMNS[cut:], [r[cut:] for r in shuffled(rng, needed + open_rows + extra)])]
        else:
            out = [render_table("Case (closed)", CASE_COLUMNS[cut:],
                                [r[cut:] for r in sorted(needed + extra, key=lambda r: r[4])])]

        if not open_rows:
            out.append(render_table("Open cases per agent", ["OwnerId", "OpenCases"],
                                    [(f["Id"], f["open"]) for f in facts]))
        return out


def _months_back(d: dt.date, n: int) -> dt.date:
    """The first day of the month ``n`` months before ``d``'s month."""
    m = d.year * 12 + d.month - 1 - n
    return dt.date(m // 12, m % 12 + 1, 1)


# ----------------------------------------------------------------------------------------------
# lead_routing
# ----------------------------------------------------------------------------------------------

def lead_book(org: Org) -> dict[str, list[tuple[str, int, int]]]:
    """OwnerId -> [(Status, IsConverted, number of leads)], one GROUP BY per org."""
    def build(o: Org) -> dict[str, list[tuple[str, int, int]]]:
        out: dict[str, list[tuple[str, int, int]]] = {}
        for r in o.query("SELECT OwnerId, Status, IsConverted, COUNT(*) FROM Lead WHERE OwnerId IS NOT NULL "
                         "GROUP BY OwnerId, Status, IsConverted ORDER BY OwnerId, Status, IsConverted"):
            out.setdefault(r[0], []).append((r[1], int(r[2]), r[3]))
        return out
    return org.cached("lead_book", build)


def lead_counts(org: Org, reps: list[str]) -> list[dict[str, Any]]:
    """Per sales rep: leads owned and leads converted."""
    book = lead_book(org)
    return [{"Id": r, "owned": sum(n for _, _, n in book.get(r, [])),
             "converted": sum(n for _, conv, n in book.get(r, []) if conv)} for r in reps]


def routable_leads(org: Org) -> list[tuple[str, str]]:
    """(Lead Id, Territory2 Id) of unassigned new leads whose state lies in a territory whose sales
    reps all own leads (a rep with none has no conversion rate, which the policy does not cover)."""
    def build(o: Org) -> list[tuple[str, str]]:
        t = territories(o)
        ok = {tid: bool(us) and all(c["owned"] > 0 for c in lead_counts(o, us))
              for (tid, role), us in t.members.items() if role == "Sales Rep"}
        out = []
        for r in o.query("SELECT Id, State FROM Lead WHERE OwnerId IS NULL AND IsConverted = 0 ORDER BY Id"):
            tid = t.of_state.get(r["State"])
            if tid and ok.get(tid):
                out.append((r["Id"], tid))
        return out
    return org.cached("routable_leads", build)


@register
class LeadRouting(Task):
    name = "lead_routing"
    answer = AnswerKind("action", action_object="Lead", action_fields=("OwnerId",))
    levels = {
        "easy": "Only the lead's territory and its reps, with leads owned and converted per rep.",
        "medium": "All territories and reps of other territories, with owned and converted counts.",
        "hard": "All territories, more reps of other territories, and lead counts broken down by "
                "Status and IsConverted, in random order, to be summed per rep.",
    }

    def generate(self, org: Org, difficulty: str, rng: random.Random) -> Instance:
        lead_id, territory = pick(rng, routable_leads(org), "unassigned new lead in a staffed territory", org)
        art_id, text, rule = policy_article(org, "lead_routing")
        t = territories(org)
        reps = t.members[(territory, "Sales Rep")]
        facts = lead_counts(org, reps)
        best = min(facts, key=lambda f: (-Fraction(f["converted"], f["owned"]), f["owned"] - f["converted"],
                                         f["Id"]))
        n_other = org.rendering.count("lead_routing.other_reps", difficulty,
                                      {"easy": 0, "medium": 2, "hard": 6}[difficulty])
        shown = reps + ([] if difficulty == "easy" else other_members(t, territory, "Sales Rep", rng, n_other))
        if difficulty == "hard":
            book = lead_book(org)
            counts = [(u, *c) for u in sorted(set(shown)) for c in book.get(u, [])]
            stats = render_table("Lead counts", ["OwnerId", "Status", "IsConverted", "Leads"], shuffled(rng, counts))
        else:
            stats = render_table("Leads per rep", ["OwnerId", "LeadsOwned", "LeadsConverted"],
                                 [(f["Id"], f["owned"], f["converted"]) for f in lead_counts(org, shown)])
        tables = [render_table("Lead (to route)", ["Id", "Company", "State", "Status", "LeadSource"],
                               org.query("SELECT * FROM Lead WHERE Id = ?", (lead_id,))),
                  *territory_tables(t, territory, shown, difficulty != "easy", org.rendering.terse), stats]
        messages = build_messages(
            f"Route lead {lead_id} to the right sales rep under the lead routing policy.", tables,
            action_format("Lead", "OwnerId", "User Id"),
            context=f"Lead routing policy (knowledge article {art_id}):\n{text}", terse=org.rendering.terse)
        meta = {"target_id": lead_id, "rule_article_id": art_id, "rule": rule, "territory_id": territory,
                "candidates": facts, "chosen": best["Id"],
                "tie_break": "fewest unconverted leads, then lowest Id", "shown_user_ids": sorted(set(shown))}
        return Instance(self.name, difficulty, messages,
                        [action_json("Lead", lead_id, {"OwnerId": best["Id"]})], meta)


# ----------------------------------------------------------------------------------------------
# wrong_stage_rectification
# ----------------------------------------------------------------------------------------------

def wrong_stage_opps(org: Org) -> list[str]:
    """Opportunities whose StageName differs from the stage their completed tasks show."""
    def build(o: Org) -> list[str]:
        cat, opps = stage_catalogue(o), opportunity_stages(o)
        out = []
        for opp, tasks in opportunity_tasks(o).items():
            derived = cat.derived_stage([t["Subject"] for t in tasks if t["Status"] == "Completed"])
            if derived is not None and opp in opps and opps[opp]["StageName"] != derived:
                out.append(opp)
        return sorted(out)
    return org.cached("wrong_stage_opps", build)


@register
class WrongStageRectification(Task):
    name = "wrong_stage_rectification"
    answer = AnswerKind("action", action_object="Opportunity", action_fields=("StageName",))
    levels = {
        "easy": "One opportunity and its own tasks (at most 8 when possible).",
        "medium": "Its tasks mixed with 2 other opportunities' tasks.",
        "hard": "Its tasks mixed with up to 8 other opportunities' tasks, in random order.",
    }
    _n_other = {"easy": 0, "medium": 2, "hard": 8}

    def generate(self, org: Org, difficulty: str, rng: random.Random) -> Instance:
        cat, tasks, opps = stage_catalogue(org), opportunity_tasks(org), opportunity_stages(org)
        pool = wrong_stage_opps(org)
        if difficulty == "easy":
            pool = [o for o in pool if len(tasks[o]) <= 8] or pool
        opp = pick(rng, pool, "opportunity with a wrong stage", org)
        n_other = org.rendering.count("wrong_stage.other_opps", difficulty, self._n_other[difficulty])
        others = fill_distractors(sample_others(rng, list(tasks), opp, 4 * n_other),
                                  lambda o: 70 * len(tasks[o]), char_budget(org, difficulty) - len(cat.text),
                                  n_other)
        shown = [opp, *others]
        rows = [t for o in shown for t in tasks[o]]
        rows = shuffled(rng, rows) if difficulty == "hard" else rows
        stage, completed = self.gold_stage(org, cat, opp)
        tables = [render_table("Opportunity", ["Id", "Name", "StageName"], [opps[o] for o in sorted(shown)]),
                  # compact: the task's Id and date play no part in the stage
                  render_table("Task", ["WhatId", "Subject", "Status"] if org.rendering.terse else TASK_COLUMNS, rows)]
        messages = build_messages(
            f"Opportunity {opp}'s StageName disagrees with its activities. Set it to the stage its "
            "activities show under the stage activity policy.", tables,
            action_format("Opportunity", "StageName", "stage"),
            context=f"Stage activity policy (knowledge article {cat.article_id}):\n{cat.text}",
            terse=org.rendering.terse)
        meta = {"target_id": opp, "rule_article_id": cat.article_id, "current_stage": opps[opp]["StageName"],
                "gold_stage": stage, "completed_subjects": completed,
                "rule": "latest stage in pipeline order among the Completed tasks' subjects",
                "stage_order": list(STAGES), "other_opportunity_ids": others, "n_tasks": len(rows)}
        return Instance(self.name, difficulty, messages,
                        [action_json("Opportunity", opp, {"StageName": stage})], meta)

    @staticmethod
    def gold_stage(org: Org, cat: Any, opportunity_id: str) -> tuple[str, list[str]]:
        """The stage the opportunity's Completed tasks show, and those tasks' subjects."""
        subjects = [r[0] for r in org.query("SELECT Subject FROM Task WHERE WhatId = ? AND Status = 'Completed' "
                                            "ORDER BY Id", (opportunity_id,))]
        stage = cat.derived_stage(subjects)
        if stage is None:
            raise AssertionError(f"opportunity {opportunity_id} has no completed catalogue task")
        return stage, subjects
