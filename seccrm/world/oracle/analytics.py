"""Scripted analysts of the eight ANALYTICS tasks (see seccrm.world.oracle).

Each one reads the question's candidates, filter and period, then lets one aggregate query do the
counting. What the levels change for them is what the question asks for: a month, a quarter or a
season, or a period relative to today that the analyst must first place; a filter by product, issue,
channel, lead source or industry; a tie rule.
"""

from __future__ import annotations

import re

from seccrm.world.oracle import OracleError, Question, Script, oracle
from seccrm.world.tasks.base import MONTHS

# A case's product is the product of its order item.
CASE_PRODUCT = 'JOIN OrderItem oi ON oi.Id = c.OrderItemId__c'
CASE_DAYS = "julianday(substr(c.ClosedDate, 1, 10)) - julianday(substr(c.CreatedDate, 1, 10))"


def _in(ids: list[str]) -> str:
    return ", ".join(f"'{i}'" for i in ids)


def _highest(q: Question, high: str, low: str) -> bool:
    """True when the question asks for the highest (``high`` word), False for the lowest."""
    text = q.question()
    if re.search(high, text):
        return True
    if re.search(low, text):
        return False
    raise OracleError(f"neither {high!r} nor {low!r} in the question")


def _case_filter(q: Question) -> tuple[str, str]:
    """(JOIN, WHERE) for the question's product or issue filter of cases."""
    issue, product = q.ids("a03"), q.ids("01t")
    if issue:
        return "", f"AND c.IssueId__c = '{issue[0]}'"
    if product:
        return CASE_PRODUCT, f"AND oi.Product2Id = '{product[0]}'"
    return "", ""


def _window_sql(q: Question, column: str) -> str:
    w = q.window()
    return f"{column} >= '{w.start}' AND {column} < '{w.end}'"


def _ranked(rows: list[dict[str, str | None]], key: str, value: str, highest: bool) -> str:
    """The key of the best row by ``value``, ties to the lowest key in ASCII order."""
    scored = [(float(r[value] or 0), r[key] or "") for r in rows]
    if not scored:
        raise OracleError("no row to rank")
    best = max(v for v, _ in scored) if highest else min(v for v, _ in scored)
    return min(k for v, k in scored if abs(v - best) < 1e-9)


@oracle("handle_time")
def handle_time(q: Question) -> Script:
    """Average handle time per listed agent over their closed, never-transferred cases in scope."""
    join, where = _case_filter(q)
    rows = yield from q.rows(f"""
        SELECT c.OwnerId AS agent, ROUND(AVG({CASE_DAYS}), 6) AS days FROM "Case" c {join}
        WHERE c.Status = 'Closed' AND c.ClosedDate IS NOT NULL AND {_window_sql(q, "c.CreatedDate")}
          AND c.OwnerId IN ({_in(q.ids("005"))}) {where}
          AND (SELECT COUNT(*) FROM CaseHistory__c h
               WHERE h.CaseId__c = c.Id AND h.Field__c = 'Owner Assignment') <= 1
        GROUP BY c.OwnerId""")
    return _ranked(rows, "agent", "days", _highest(q, r"\bhighest\b", r"\blowest\b"))


@oracle("transfer_count")
def transfer_count(q: Question) -> Script:
    """Owner Assignments with an OldValue__c, counted for the agent who passed the case on."""
    join, where = _case_filter(q)
    agents = q.ids("005")
    rows = yield from q.rows(f"""
        SELECT h.OldValue__c AS agent, COUNT(*) AS transfers FROM "Case" c {join}
        JOIN CaseHistory__c h ON h.CaseId__c = c.Id
        WHERE h.Field__c = 'Owner Assignment' AND h.OldValue__c IN ({_in(agents)})
          AND {_window_sql(q, "c.CreatedDate")} {where}
        GROUP BY h.OldValue__c""")
    counted = {r["agent"] for r in rows}
    rows += [{"agent": a, "transfers": "0"} for a in agents if a not in counted]
    return _ranked(rows, "agent", "transfers", _highest(q, r"\bmost\b", r"\bfewest\b"))


@oracle("best_region_identification")
def best_region_identification(q: Question) -> Script:
    """Average closure time of closed cases per account ShippingState among the listed states."""
    m = re.search(r"Consider the states ([A-Z, ]+?) \(", q.question())
    if not m:
        raise OracleError("no list of states")
    states = [s.strip() for s in m.group(1).split(",")]
    join, where = _case_filter(q)
    rows = yield from q.rows(f"""
        SELECT a.ShippingState AS state, ROUND(AVG({CASE_DAYS}), 6) AS days
        FROM "Case" c JOIN Account a ON a.Id = c.AccountId {join}
        WHERE c.Status = 'Closed' AND c.ClosedDate IS NOT NULL AND {_window_sql(q, "c.CreatedDate")}
          AND a.ShippingState IN ({_in(states)}) {where}
        GROUP BY a.ShippingState""")
    return _ranked(rows, "state", "days", _highest(q, r"\bslowest\b", r"\bfastest\b"))


@oracle("top_issue_identification")
def top_issue_identification(q: Question) -> Script:
    """Cases per issue of the product (and channel) in the period; None on a tie or no case."""
    channel = re.search(r"through the (\w+) channel", q.question())
    where = f"AND c.Origin = '{channel.group(1)}'" if channel else ""
    rows = yield from q.rows(f"""
        SELECT c.IssueId__c AS issue, COUNT(*) AS n FROM "Case" c {CASE_PRODUCT}
        WHERE oi.Product2Id = '{q.id("01t")}' AND {_window_sql(q, "c.CreatedDate")} {where}
        GROUP BY c.IssueId__c ORDER BY n DESC, issue LIMIT 2""")
    if not rows or (len(rows) == 2 and rows[0]["n"] == rows[1]["n"]):
        return "None"
    return rows[0]["issue"] or "None"


@oracle("monthly_trend_analysis")
def monthly_trend_analysis(q: Question) -> Script:
    """Cases of the product per month of the period (months without a case count 0), then the
    stated rule: at least twice the other months' mean and at least 5 above it."""
    w = q.window()
    rows = yield from q.rows(f"""
        SELECT substr(c.CreatedDate, 1, 7) AS month, COUNT(*) AS n FROM "Case" c {CASE_PRODUCT}
        WHERE oi.Product2Id = '{q.id("01t")}' AND {_window_sql(q, "c.CreatedDate")}
        GROUP BY 1""")
    per = {r["month"]: int(r["n"] or 0) for r in rows}
    months, y, m = [], w.start.year, w.start.month
    while (y, m) < (w.end.year, w.end.month):
        months.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    counts = [per.get(k, 0) for k in months]
    hits = []
    for i, n in enumerate(counts):
        others = counts[:i] + counts[i + 1:]
        mean = sum(others) / len(others)
        if n >= 2 * mean and n >= mean + 5:
            hits.append(months[i])
    if len(hits) != 1:
        return "None"
    return MONTHS[int(hits[0][5:]) - 1]


@oracle("sales_amount_understanding")
def sales_amount_understanding(q: Question) -> Script:
    """Sum of Quantity x UnitPrice over the product's lines of each listed rep's orders in the period."""
    product = q.ids("01t")
    where = f"AND oi.Product2Id = '{product[0]}'" if product else ""
    rows = yield from q.rows(f"""
        SELECT o.OwnerId AS rep, ROUND(SUM(oi.Quantity * oi.UnitPrice), 2) AS amount
        FROM "Order" o JOIN OrderItem oi ON oi.OrderId = o.Id
        WHERE {_window_sql(q, "o.EffectiveDate")} AND o.OwnerId IN ({_in(q.ids("005"))}) {where}
        GROUP BY o.OwnerId""")
    return _ranked(rows, "rep", "amount", _highest(q, r"\bhighest\b", r"\blowest\b"))


@oracle("sales_cycle_understanding")
def sales_cycle_understanding(q: Question) -> Script:
    """Days from each opportunity's creation to its contract's CompanySignedDate, averaged per rep."""
    industry = re.search(r"for accounts in the (.+?) industry", q.question())
    join = "JOIN Account a ON a.Id = o.AccountId" if industry else ""
    where = f"AND a.Industry = '{industry.group(1)}'" if industry else ""
    rows = yield from q.rows(f"""
        SELECT o.OwnerId AS rep, ROUND(AVG(julianday(substr(ct.CompanySignedDate, 1, 10))
                                         - julianday(substr(o.CreatedDate, 1, 10))), 6) AS days
        FROM Opportunity o JOIN Contract ct ON ct.Id = o.ContractID__c {join}
        WHERE {_window_sql(q, "ct.CompanySignedDate")} AND o.OwnerId IN ({_in(q.ids("005"))}) {where}
        GROUP BY o.OwnerId""")
    return _ranked(rows, "rep", "days", _highest(q, r"\blongest\b", r"\bshortest\b"))


@oracle("conversion_rate_comprehension")
def conversion_rate_comprehension(q: Question) -> Script:
    """Converted leads over leads owned, per listed rep, among the leads created in the period."""
    field = re.search(r"leads with (\w+) = (.+?) created", q.question())
    where = f"AND {field.group(1)} = '{field.group(2)}'" if field else ""
    rows = yield from q.rows(f"""
        SELECT OwnerId AS rep, COUNT(*) AS leads, SUM(COALESCE(IsConverted, 0)) AS converted FROM Lead
        WHERE {_window_sql(q, "CreatedDate")} AND OwnerId IN ({_in(q.ids("005"))}) {where}
        GROUP BY OwnerId""")
    for r in rows:
        r["rate"] = str(int(r["converted"] or 0) / int(r["leads"] or 1))
    return _ranked(rows, "rep", "rate", _highest(q, r"\bhighest\b", r"\blowest\b"))
