"""Case records for the ANALYTICS tasks: the per-org case cache and the three case ranking tasks
(handle_time, transfer_count, best_region_identification).

Handle and closure times are whole calendar days between the *dates* of CreatedDate and ClosedDate:
the prompt shows dates only (a 3B model cannot be asked to subtract timestamps to the second), and
the gold SQL uses ``julianday(substr(x, 1, 10))`` so that both agree exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from typing import Any, NamedTuple

from seccrm.world.tasks._analytics_common import (
    FactIndex,
    Option,
    RankingTask,
    Scope,
    days_between,
    listed,
    mean_by,
    month_keys,
)
from seccrm.world.tasks.base import AnswerKind, Org, register, render_table

CASE_DAYS = 'julianday(substr(c."ClosedDate", 1, 10)) - julianday(substr(c."CreatedDate", 1, 10))'
CLOSED = "c.\"Status\" = 'Closed' AND c.\"ClosedDate\" IS NOT NULL"


class CaseFact(NamedTuple):
    id: str
    owner: str | None         # None for the unassigned 'New' cases of the routing pool
    account: str
    created: str              # YYYY-MM-DD
    closed: str | None        # YYYY-MM-DD when the case is closed, else None
    product: str
    issue: str
    state: str
    origin: str | None        # the channel: Email, Phone, Web or Chat
    chain: tuple[tuple[str | None, str], ...]   # Owner Assignment (OldValue__c, NewValue__c), in order


def load_cases(org: Org) -> list[CaseFact]:
    """Every case (assigned or not) with its product, account state and owner-assignment chain (one pass)."""
    chains: dict[str, list[tuple[str | None, str]]] = {}
    for r in org.conn.execute(
            'SELECT "CaseId__c", "OldValue__c", "NewValue__c" FROM "CaseHistory__c" '
            "WHERE \"Field__c\" = 'Owner Assignment' ORDER BY \"CaseId__c\", \"CreatedDate\", \"Id\""):
        chains.setdefault(r[0], []).append((r[1], r[2]))
    out = []
    for r in org.conn.execute(
            'SELECT c."Id", c."OwnerId", c."AccountId", substr(c."CreatedDate", 1, 10), '
            f'CASE WHEN {CLOSED} THEN substr(c."ClosedDate", 1, 10) END, '
            'oi."Product2Id", c."IssueId__c", a."ShippingState", c."Origin" '
            'FROM "Case" c LEFT JOIN "OrderItem" oi ON oi."Id" = c."OrderItemId__c" '
            'LEFT JOIN "Account" a ON a."Id" = c."AccountId"'):
        case_id, owner, account, created, closed, product, issue, state, origin = r
        out.append(CaseFact(case_id, owner, account, created, closed, product, issue, state, origin,
                            tuple(chains.get(case_id, ()))))
    return out


def case_options(r: CaseFact) -> Iterable[Option]:
    return (("product", r.product), ("issue", r.issue))


def names(org: Org, table: str) -> dict[str, str]:
    """Id -> Name of a small table (Product2, Issue__c), cached per org."""
    return org.cached(("names", table), lambda o: dict(o.conn.execute(f'SELECT "Id", "Name" FROM "{table}"')))


def scope_sql(scope: Scope) -> tuple[str, str, list[Any]]:
    """(FROM clause, WHERE clause, params) selecting the cases of a scope's window and filter.

    The clauses also choose the index, since the org carries no planner statistics: a window of a
    month or two is read through the CreatedDate index, a longer one through the filter's index
    (a product's order items, then their cases; or the IssueId__c index). ``+x`` keeps SQLite
    off the index of x; CROSS JOIN fixes the join order. Measured on the full preset, this is
    2-10x faster than the default plans; the rows selected are the same either way.
    """
    short = len(month_keys(scope.window)) <= 2
    frm = '"Case" c'
    where = 'c."CreatedDate" >= ? AND c."CreatedDate" < ?'
    params: list[Any] = [scope.window.start.isoformat(), scope.window.end.isoformat()]
    if scope.option is not None:
        kind, value = scope.option
        if kind == "product":
            frm = ('"Case" c CROSS JOIN "OrderItem" oi ON oi."Id" = c."OrderItemId__c"' if short else
                   '"OrderItem" oi CROSS JOIN "Case" c ON c."OrderItemId__c" = oi."Id"')
            where += ' AND oi."Product2Id" = ?'
        elif kind == "issue":
            where += ' AND +c."IssueId__c" = ?' if len(month_keys(scope.window)) <= 6 else ' AND c."IssueId__c" = ?'
        else:
            raise ValueError(f"unknown case filter {kind!r}")
        params.append(value)
    return frm, where, params


def filter_phrase(org: Org, option: Option) -> str:
    if option is None:
        return ""
    kind, value = option
    if kind == "product":
        return f" about product {names(org, 'Product2')[value]} (Product2Id {value})"
    return f" with issue {names(org, 'Issue__c')[value]} (IssueId__c {value})"


def case_table(option: Option, rows: list[CaseFact], cols: tuple[str, ...], note: str = "") -> str:
    """The Case table with the columns asked for, plus the filter column when there is a filter.

    ``Product2Id`` is not a Case field: it is the product of the case's OrderItemId__c, shown
    directly to keep prompts short (the title says so). The compact rendering also joins in
    ``ShippingState`` (the account's) and ``OwnerAssignments`` (the case's 'Owner Assignment'
    history entries), said in ``note``, instead of showing the Account and CaseHistory__c tables."""
    fcol = {None: None, "product": "Product2Id", "issue": "IssueId__c"}[None if option is None else option[0]]
    columns = list(cols[:1]) + ([fcol] if fcol else []) + list(cols[1:])
    get = {"Id": lambda r: r.id, "OwnerId": lambda r: r.owner, "AccountId": lambda r: r.account,
           "CreatedDate": lambda r: r.created, "ClosedDate": lambda r: r.closed,
           "Product2Id": lambda r: r.product, "IssueId__c": lambda r: r.issue,
           "ShippingState": lambda r: r.state, "OwnerAssignments": lambda r: len(r.chain)}
    notes = ([note] if note else []) + (["Product2Id = product of the case's order item"]
                                        if fcol == "Product2Id" else [])
    title = "Case" + (f" ({'; '.join(notes)})" if notes else "")
    return render_table(title, columns, [[get[c](r) for c in columns] for r in rows])


def history_table(rows: list[CaseFact]) -> str:
    hist = [(r.id, old, new) for r in rows for old, new in r.chain]
    return render_table("CaseHistory__c where Field__c = 'Owner Assignment'",
                        ["CaseId__c", "OldValue__c", "NewValue__c"], hist)


def _assignment_table(option: Option, rows: list[CaseFact]) -> str:
    """Compact transfer_count: one row per Owner Assignment, with its case's CreatedDate and filter."""
    fcol = {None: None, "product": "Product2Id", "issue": "IssueId__c"}[None if option is None else option[0]]
    cols = ([fcol] if fcol else []) + ["CreatedDate", "OldValue__c", "NewValue__c"]
    out: list[tuple[str | None, ...]] = [
        ((r.product if fcol == "Product2Id" else r.issue,) if fcol else ()) + (r.created, old, new)
        for r in rows for old, new in r.chain]
    title = ("CaseHistory__c where Field__c = 'Owner Assignment' (CreatedDate"
             + (f" and {fcol}" if fcol else "") + " = its case's)")
    return render_table(title, cols, out)


class _CaseRanking(RankingTask):
    """Ranking tasks over cases; subclasses set the index's keys and qualifying rule."""

    def _index(self, org: Org, keys: Any, qualifies: Any) -> FactIndex:
        return org.cached(("index", self.name), lambda o: FactIndex(
            o.cached("cases", load_cases), date=lambda r: r.created, keys=keys,
            options=case_options, qualifies=qualifies))


@register
class HandleTime(_CaseRanking):
    name = "handle_time"
    answer = AnswerKind("id", prefix="005")
    value_key = "agent_avg_days"
    gaps = (1.0, 0.34)
    levels = {
        "easy": "One explicit month, 5-6 listed agents, 5-14 cases, cases sorted by date, no "
                "distractors, the winner at least 1 day ahead.",
        "medium": "A quarter or season, 5-7 agents, 10-30 cases shuffled, half as many distractors "
                  "(other agents, other products/issues, dates just outside), winner 1/3 day ahead.",
        "hard": "The past N months/quarters before today, 6-8 agents, 18-55 cases, as many "
                "distractors (up to a quarter outside; the top two's records first), near-ties kept, "
                "ties broken by the lowest Id.",
    }

    def index(self, org: Org) -> FactIndex:
        return self._index(org, keys=lambda r: (r.owner,) if r.owner else (),
                           qualifies=lambda r: r.closed is not None and len(r.chain) == 1)

    def gold(self, org: Org, scope: Scope) -> tuple[dict[str, Fraction], dict[str, Any]]:
        frm, where, params = scope_sql(scope)
        marks = ",".join("?" * len(scope.candidates))
        sql = (f'SELECT c."OwnerId", COUNT(*), SUM({CASE_DAYS}) '
               f'FROM {frm} WHERE {where} AND +c."OwnerId" IN ({marks}) AND {CLOSED} '
               'AND (SELECT COUNT(*) FROM "CaseHistory__c" h WHERE h."CaseId__c" = c."Id" '
               "AND h.\"Field__c\" = 'Owner Assignment') = 1 GROUP BY c.\"OwnerId\"")
        rows = org.query(sql, (*params, *scope.candidates))
        values = {r[0]: Fraction(round(r[2]), r[1]) for r in rows}
        return values, {"agent_case_counts": {r[0]: r[1] for r in sorted(rows, key=lambda r: r[0])}}

    def from_rows(self, scope: Scope) -> dict[str, Fraction]:
        return mean_by((r.owner, days_between(r.created, r.closed)) for r in scope.rows
                       if r.closed and len(r.chain) == 1 and r.owner in scope.candidates)

    def render(self, org: Org, scope: Scope, mode: str, shown: list[CaseFact],
               tie_rule: bool) -> tuple[list[str], str, str]:
        word = "lowest" if mode == "min" else "highest"
        q = (f"Consider the support agents {listed(org, scope.candidates)}. Among the closed cases"
             f"{filter_phrase(org, scope.option)} created {scope.window.phrase} and owned by one of them, "
             f"which agent has the {word} average handle time? Handle time is the number of days between "
             "the CreatedDate and ClosedDate shown; transferred cases (more than one Owner Assignment) "
             "do not count, and a case with no ClosedDate is still open.")
        if org.rendering.terse:     # one table: the history's entries counted per case
            q = (f"Consider the support agents listed above. Among the closed cases{filter_phrase(org, scope.option)} "
                 f"created {scope.window.phrase} and owned by one of them, which agent has the {word} average "
                 "handle time? Transferred cases (OwnerAssignments above 1) do not count; a case with no "
                 "ClosedDate is open.")
            tables = [case_table(scope.option, shown, ("OwnerId", "CreatedDate", "ClosedDate", "OwnerAssignments"),
                                 "OwnerAssignments = its 'Owner Assignment' history entries")]
        else:
            tables = [case_table(scope.option, shown, ("Id", "OwnerId", "CreatedDate", "ClosedDate")),
                      history_table(shown)]
        if tie_rule:
            q += " " + self.tie_rule
        return tables, q, "the agent's User Id (18 characters)."


@register
class TransferCount(_CaseRanking):
    name = "transfer_count"
    answer = AnswerKind("id", prefix="005")
    value_key = "agent_transfers"
    gaps = (1.0, 1.0)
    levels = {
        "easy": "One explicit month, 5-6 listed agents, 5-14 cases sorted by date, no distractors, "
                "a unique winner at least 1 transfer ahead.",
        "medium": "A quarter or season, 5-7 agents, 10-30 cases shuffled, half as many distractors, "
                  "a unique winner.",
        "hard": "The past N months/quarters before today, 6-8 agents, 18-55 cases, as many "
                "distractors (up to a quarter outside; the top two's records first); ties (often at "
                "zero) broken by the lowest Id.",
    }

    def index(self, org: Org) -> FactIndex:
        # A case belongs to every agent in its assignment chain (a candidate may only receive it).
        return self._index(org, keys=lambda r: tuple(sorted({x for pair in r.chain for x in pair if x})),
                           qualifies=lambda r: True)

    def gold(self, org: Org, scope: Scope) -> tuple[dict[str, Fraction], dict[str, Any]]:
        frm, where, params = scope_sql(scope)
        marks = ",".join("?" * len(scope.candidates))
        # CROSS JOIN keeps the cases as the outer loop; OldValue__c has no index.
        sql = (f'SELECT h."OldValue__c", COUNT(*) FROM {frm} CROSS JOIN "CaseHistory__c" h '
               f'ON h."CaseId__c" = c."Id" WHERE {where} AND h."Field__c" = \'Owner Assignment\' '
               f'AND h."OldValue__c" IN ({marks}) GROUP BY h."OldValue__c"')
        counts = dict.fromkeys(scope.candidates, 0)
        counts.update({r[0]: r[1] for r in org.query(sql, (*params, *scope.candidates))})
        return {k: Fraction(v) for k, v in counts.items()}, {}

    def from_rows(self, scope: Scope) -> dict[str, Fraction]:
        counts = dict.fromkeys(scope.candidates, 0)
        for r in scope.rows:
            for old, _ in r.chain:
                if old in counts:
                    counts[old] += 1
        return {k: Fraction(v) for k, v in counts.items()}

    def render(self, org: Org, scope: Scope, mode: str, shown: list[CaseFact],
               tie_rule: bool) -> tuple[list[str], str, str]:
        word = "fewest" if mode == "min" else "most"
        q = (f"Consider the support agents {listed(org, scope.candidates)}. Counting only cases"
             f"{filter_phrase(org, scope.option)} created {scope.window.phrase}, which of these agents "
             f"made the {word} transfers? A transfer is an Owner Assignment whose OldValue__c is set; it "
             "counts for the agent in OldValue__c, who passed the case on.")
        if tie_rule:
            q += " " + self.tie_rule
        if org.rendering.terse:     # one table: each Owner Assignment with its case's date (and filter)
            tables = [_assignment_table(scope.option, shown)]
        else:
            tables = [case_table(scope.option, shown, ("Id", "CreatedDate")), history_table(shown)]
        return tables, q, "the agent's User Id (18 characters)."


@register
class BestRegion(_CaseRanking):
    name = "best_region_identification"
    answer = AnswerKind("state")
    value_key = "state_avg_days"
    modes = ("min",)
    gaps = (1.0, 0.34)
    candidate_noun = "states"
    tie_rule = "If several states tie, answer the state code that comes first alphabetically."
    levels = {
        "easy": "One explicit month, 5-6 listed states, 5-14 cases sorted by date, no distractors, "
                "the fastest state at least 1 day ahead.",
        "medium": "A quarter or season, 5-7 states, 10-30 cases shuffled, half as many distractors "
                  "(other states, other products/issues, dates just outside), 1/3 day ahead.",
        "hard": "The past N months/quarters before today, 6-8 states, 18-55 cases, as many "
                "distractors (up to a quarter outside; the top two's records first), near-ties kept, "
                "ties broken alphabetically.",
    }

    def index(self, org: Org) -> FactIndex:
        return self._index(org, keys=lambda r: (r.state,), qualifies=lambda r: r.closed is not None)

    def gold(self, org: Org, scope: Scope) -> tuple[dict[str, Fraction], dict[str, Any]]:
        frm, where, params = scope_sql(scope)
        marks = ",".join("?" * len(scope.candidates))
        sql = (f'SELECT a."ShippingState", COUNT(*), '
               f'SUM({CASE_DAYS}) FROM {frm} CROSS JOIN '
               f'"Account" a ON a."Id" = c."AccountId" WHERE {where} AND {CLOSED} '
               f'AND a."ShippingState" IN ({marks}) GROUP BY a."ShippingState"')
        rows = org.query(sql, (*params, *scope.candidates))
        values = {r[0]: Fraction(round(r[2]), r[1]) for r in rows}
        return values, {"state_case_counts": {r[0]: r[1] for r in sorted(rows, key=lambda r: r[0])}}

    def from_rows(self, scope: Scope) -> dict[str, Fraction]:
        return mean_by((r.state, days_between(r.created, r.closed)) for r in scope.rows if r.closed)

    def render(self, org: Org, scope: Scope, mode: str, shown: list[CaseFact],
               tie_rule: bool) -> tuple[list[str], str, str]:
        q = (f"Consider the states {listed(org, scope.candidates)} (the account's ShippingState). Among the "
             f"closed cases{filter_phrase(org, scope.option)} created {scope.window.phrase} of accounts "
             "in these states, which state has the fastest average case closure time (days between "
             "the CreatedDate and ClosedDate shown; a case with no ClosedDate is still open)?")
        if tie_rule:
            q += " " + self.tie_rule
        accounts = sorted({(r.account, r.state) for r in shown})
        tables = ([case_table(scope.option, shown, ("ShippingState", "CreatedDate", "ClosedDate"),
                              "ShippingState = its account's")] if org.rendering.terse else
                  [case_table(scope.option, shown, ("Id", "AccountId", "CreatedDate", "ClosedDate")),
                   render_table("Account", ["Id", "ShippingState"], accounts)])
        return tables, q, "the 2-letter state code."
