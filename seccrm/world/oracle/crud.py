"""Scripted analysts of the three CRUD tasks (see seccrm.world.oracle).

Each one reads the policy the question quotes (the look-back window, the ranking and its ties, the
stage catalogue), gathers the facts the policy ranks with one or two queries, and writes the one
update the policy calls for. The levels only change which records a single-turn prompt shows; the
question-only episode is the same at every level, so the analyst's queries are too.
"""

from __future__ import annotations

import json
import re

from seccrm.world.oracle import OracleError, Question, Script, oracle
from seccrm.world.tasks.base import past_window


def _action(obj: str, record_id: str, field: str, value: str) -> str:
    return json.dumps({"op": "update", "object": obj, "id": record_id, "fields": {field: value}})


def _territory_members(state: str | None, role: str) -> str:
    """SQL for the distinct Ids of the users of ``role`` associated with the territory of ``state``
    (a territory's states are its comma-separated Description)."""
    if not state:
        raise OracleError("the record has no state to route by")
    return (f'SELECT DISTINCT u.Id FROM "User" u JOIN UserTerritory2Association ut ON ut.UserId = u.Id '
            f"JOIN Territory2 t ON t.Id = ut.Territory2Id WHERE u.UserRole = '{role}' "
            f"AND ',' || replace(t.Description, ' ', '') || ',' LIKE '%,{state},%'")


def _best(rows: list[dict[str, str | None]], who: str) -> str:
    if not rows or not rows[0]["Id"]:
        raise OracleError(f"no {who} in the territory")
    return rows[0]["Id"] or ""


@oracle("case_routing")
def case_routing(q: Question) -> Script:
    """Finds the case's issue and its account's shipping state, then ranks the support agents of that
    state's territory: most cases of the issue closed in the policy's complete months before this
    month, then fewest open cases, then lowest User Id."""
    case = q.id("500")
    m = re.search(r"in the (\d+) complete months? before the current month", q.text)
    today = q.today()
    if m is None or today is None:
        raise OracleError("the policy states no look-back window or the question no date")
    w = past_window(today, "months", int(m.group(1)))
    target = yield from q.rows(f'SELECT c.IssueId__c, a.ShippingState FROM "Case" c '
                               f"JOIN Account a ON a.Id = c.AccountId WHERE c.Id = '{case}'")
    if len(target) != 1:
        raise OracleError(f"case {case} or its account not found")
    issue, state = target[0]["IssueId__c"], target[0]["ShippingState"]
    rows = yield from q.rows(f"""
        SELECT g.Id,
          (SELECT COUNT(*) FROM "Case" c WHERE c.OwnerId = g.Id AND c.Status = 'Closed'
             AND c.IssueId__c = '{issue}' AND c.ClosedDate >= '{w.start}' AND c.ClosedDate < '{w.end}') AS closed,
          (SELECT COUNT(*) FROM "Case" c WHERE c.OwnerId = g.Id AND c.Status != 'Closed') AS open
        FROM ({_territory_members(state, 'Support Agent')}) g
        ORDER BY closed DESC, open, g.Id""")
    return _action("Case", case, "OwnerId", _best(rows, "support agent"))


@oracle("lead_routing")
def lead_routing(q: Question) -> Script:
    """Finds the lead's state, then ranks the sales reps of that state's territory by conversion rate
    (converted over owned leads), then fewest unconverted leads, then lowest User Id."""
    lead = q.id("00Q")
    state = yield from q.value(f"SELECT State FROM Lead WHERE Id = '{lead}'")
    # Equal rates are equal fractions, whose quotients are the same correctly rounded double.
    rows = yield from q.rows(f"""
        SELECT g.Id, COUNT(l.Id) AS owned, COALESCE(SUM(l.IsConverted), 0) AS converted
        FROM ({_territory_members(state, 'Sales Rep')}) g LEFT JOIN Lead l ON l.OwnerId = g.Id
        GROUP BY g.Id
        ORDER BY 1.0 * converted / owned DESC, owned - converted, g.Id""")
    if any(r["owned"] == "0" for r in rows):
        raise OracleError("a rep of the territory owns no lead: the policy gives no rate")
    return _action("Lead", lead, "OwnerId", _best(rows, "sales rep"))


@oracle("wrong_stage_rectification")
def wrong_stage_rectification(q: Question) -> Script:
    """Reads the stage catalogue from the policy (stages in pipeline order, each with its activity
    subjects), lists the subjects of the opportunity's completed tasks, and sets the latest stage
    any of them belongs to."""
    opp = q.id("006")
    policy = q.paragraph("Stage activity policy")
    catalogue = re.findall(r"([A-Z][\w ]*?): ([^:]+?)\.(?= |$)", policy.split("\n", 1)[-1])
    if not catalogue:
        raise OracleError("no stage catalogue in the policy")
    stage_of = {s.strip(): i for i, (_, subjects) in enumerate(catalogue) for s in subjects.split(",")}
    done = yield from q.column(f"SELECT DISTINCT Subject FROM Task WHERE WhatId = '{opp}' AND Status = 'Completed'")
    known = [stage_of[s] for s in done if s in stage_of]
    if not known:
        raise OracleError(f"opportunity {opp} has no completed catalogue activity")
    return _action("Opportunity", opp, "StageName", catalogue[max(known)][0])
