"""Sales-rep ranking tasks: sales_amount_understanding, sales_cycle_understanding and
conversion_rate_comprehension.

- Sales amount: sum of OrderItem Quantity x UnitPrice over the rep's orders (Order.OwnerId) whose
  EffectiveDate lies in the window; with a product filter only that product's lines count, while
  the orders' other lines stay in the prompt.
- Sales cycle: days from the opportunity's CreatedDate to its contract's CompanySignedDate, for the
  opportunities whose contract was signed in the window (whole days between the dates, as for cases).
- Conversion rate: converted leads / leads, over the rep's leads created in the window.
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
)
from seccrm.world.tasks.base import AnswerKind, Org, register, render_table

REP_FORMAT = "the sales rep's User Id (18 characters)."


def _in(scope: Scope) -> str:
    return ",".join("?" * len(scope.candidates))


def _window(scope: Scope) -> list[str]:
    return [scope.window.start.isoformat(), scope.window.end.isoformat()]


# ----------------------------------------------------------------------------------------------
# sales_amount_understanding
# ----------------------------------------------------------------------------------------------

class OrderFact(NamedTuple):
    id: str
    owner: str | None
    date: str                                      # EffectiveDate
    items: tuple[tuple[str, float, float], ...]    # (Product2Id, Quantity, UnitPrice)


def load_orders(org: Org) -> list[OrderFact]:
    items: dict[str, list[tuple[str, float, float]]] = {}
    for r in org.conn.execute('SELECT "OrderId", "Product2Id", "Quantity", "UnitPrice" FROM "OrderItem" '
                              'ORDER BY "OrderId", "Id"'):
        items.setdefault(r[0], []).append((r[1], r[2], r[3]))
    return [OrderFact(r[0], r[1], r[2][:10], tuple(items.get(r[0], ())))
            for r in org.conn.execute('SELECT "Id", "OwnerId", "EffectiveDate" FROM "Order"')]


@register
class SalesAmount(RankingTask):
    name = "sales_amount_understanding"
    answer = AnswerKind("id", prefix="005")
    value_key = "rep_sales_amount"
    gaps = (0.10, 0.03)
    relative_gap = True
    row_ranges = ((5, 10), (6, 16), (9, 26))       # orders; each shows 1-4 order lines
    candidate_noun = "sales reps"
    levels = {
        "easy": "One explicit month, 5-6 listed reps, 5-10 orders sorted by date, no distractors, the "
                "winner at least 10% ahead.",
        "medium": "A quarter or season, 5-7 reps, 6-16 orders shuffled (a product filter leaves "
                  "other lines in), half as many distractor orders, winner 3% ahead.",
        "hard": "The past N months/quarters before today, 6-8 reps, 9-26 orders, as many distractors "
                "(up to a quarter outside; the top two's orders first), near-ties kept, ties broken "
                "by the lowest Id.",
    }

    def index(self, org: Org) -> FactIndex:
        def options(r: OrderFact) -> Iterable[Option]:
            return tuple(sorted({("product", p) for p, _, _ in r.items}))
        return org.cached(("index", self.name), lambda o: FactIndex(
            o.cached("orders", load_orders), date=lambda r: r.date,
            keys=lambda r: (r.owner,) if r.owner else (), options=options, qualifies=lambda r: True))

    def gold(self, org: Org, scope: Scope) -> tuple[dict[str, Fraction], dict[str, Any]]:
        extra, params = "", [*_window(scope), *scope.candidates]
        if scope.option is not None:
            extra, params = ' AND oi."Product2Id" = ?', [*params, scope.option[1]]
        rows = org.query(
            'SELECT o."OwnerId", SUM(oi."Quantity" * oi."UnitPrice"), COUNT(DISTINCT o."Id") FROM "Order" o '
            'JOIN "OrderItem" oi ON oi."OrderId" = o."Id" WHERE o."EffectiveDate" >= ? AND o."EffectiveDate" < ? '
            f'AND o."OwnerId" IN ({_in(scope)}){extra} GROUP BY o."OwnerId"', tuple(params))
        # Amounts are in cents: round away the float sum's noise, then rank exactly.
        values = {r[0]: Fraction(round(r[1] * 100), 100) for r in rows}
        return values, {"rep_order_counts": {r[0]: r[2] for r in sorted(rows, key=lambda r: r[0])}}

    def from_rows(self, scope: Scope) -> dict[str, Fraction]:
        sums: dict[str, float] = {}
        for r in scope.rows:
            for p, qty, price in r.items:
                if scope.option is None or p == scope.option[1]:
                    sums[r.owner] = sums.get(r.owner, 0.0) + qty * price
        return {k: Fraction(round(v * 100), 100) for k, v in sums.items()}

    def render(self, org: Org, scope: Scope, mode: str, shown: list[OrderFact],
               tie_rule: bool) -> tuple[list[str], str, str]:
        word = "highest" if mode == "max" else "lowest"
        what = ""
        if scope.option is not None:
            pname = org.cached(("names", "Product2"), lambda o: dict(o.conn.execute(
                'SELECT "Id", "Name" FROM "Product2"')))[scope.option[1]]
            what = f" of product {pname} (Product2Id {scope.option[1]})"
        q = (f"Consider the sales reps {listed(org, scope.candidates)}. Which of them has the {word} sales "
             f"amount{what} in the orders they own (Order.OwnerId) with an EffectiveDate {scope.window.phrase}? "
             "The sales amount is the sum of Quantity x UnitPrice over the order lines"
             f"{' of that product' if what else ''}.")
        if tie_rule:
            q += " " + self.tie_rule
        if org.rendering.terse:     # one table: each order line with its order's owner and date
            cols = ["OwnerId", "EffectiveDate"] + (["Product2Id"] if what else []) + ["Quantity", "UnitPrice"]
            rows = [(r.owner, r.date) + ((p,) if what else ()) + (qty, price) for r in shown for p, qty, price in r.items]
            return ([render_table("OrderItem (OwnerId and EffectiveDate = its order's)", cols, rows)], q,
                    REP_FORMAT)
        cols = ["OrderId", "Product2Id", "Quantity", "UnitPrice"] if what else ["OrderId", "Quantity", "UnitPrice"]
        lines = [(r.id, p, qty, price) if what else (r.id, qty, price) for r in shown for p, qty, price in r.items]
        tables = [render_table("Order", ["Id", "OwnerId", "EffectiveDate"], [(r.id, r.owner, r.date) for r in shown]),
                  render_table("OrderItem", cols, lines)]
        return tables, q, REP_FORMAT


# ----------------------------------------------------------------------------------------------
# sales_cycle_understanding
# ----------------------------------------------------------------------------------------------

class OppFact(NamedTuple):
    id: str
    owner: str | None
    account: str
    created: str                  # YYYY-MM-DD
    contract: str | None
    signed: str | None            # the contract's CompanySignedDate (YYYY-MM-DD) or None
    industry: str | None

    @property
    def date(self) -> str:
        """Signed opportunities are placed at their signature, the others at their creation."""
        return self.signed or self.created


def load_opps(org: Org) -> list[OppFact]:
    return [OppFact(*r) for r in org.conn.execute(
        'SELECT o."Id", o."OwnerId", o."AccountId", substr(o."CreatedDate", 1, 10), o."ContractID__c", '
        'substr(ct."CompanySignedDate", 1, 10), a."Industry" FROM "Opportunity" o '
        'LEFT JOIN "Contract" ct ON ct."Id" = o."ContractID__c" LEFT JOIN "Account" a ON a."Id" = o."AccountId"')]


@register
class SalesCycle(RankingTask):
    name = "sales_cycle_understanding"
    answer = AnswerKind("id", prefix="005")
    value_key = "rep_avg_cycle_days"
    gaps = (5.0, 2.0)
    row_ranges = ((5, 12), (8, 26), (14, 45))
    candidate_noun = "sales reps"
    levels = {
        "easy": "One explicit month, 5-6 listed reps, 5-12 opportunities sorted by date, no "
                "distractors, the winner at least 5 days ahead.",
        "medium": "A quarter or season, 5-7 reps, 8-26 opportunities shuffled (unsigned ones among "
                  "them), half as many distractors (signed just outside the window, other reps or "
                  "industries), winner 2 days ahead.",
        "hard": "The past N months/quarters before today, 6-8 reps, 14-45 opportunities, as many "
                "distractors (up to a quarter outside; the top two's records first), near-ties kept, "
                "ties broken by the lowest Id.",
    }

    def index(self, org: Org) -> FactIndex:
        return org.cached(("index", self.name), lambda o: FactIndex(
            o.cached("opps", load_opps), date=lambda r: r.date, keys=lambda r: (r.owner,) if r.owner else (),
            options=lambda r: (("industry", r.industry),) if r.industry else (),
            qualifies=lambda r: r.signed is not None))

    def gold(self, org: Org, scope: Scope) -> tuple[dict[str, Fraction], dict[str, Any]]:
        join, extra, params = "", "", [*_window(scope), *scope.candidates]
        if scope.option is not None:
            join = 'JOIN "Account" a ON a."Id" = o."AccountId"'
            extra, params = ' AND a."Industry" = ?', [*params, scope.option[1]]
        rows = org.query(
            'SELECT o."OwnerId", COUNT(*), SUM(julianday(substr(ct."CompanySignedDate", 1, 10)) - '
            'julianday(substr(o."CreatedDate", 1, 10))) FROM "Opportunity" o '
            f'JOIN "Contract" ct ON ct."Id" = o."ContractID__c" {join} WHERE ct."CompanySignedDate" >= ? '
            f'AND ct."CompanySignedDate" < ? AND o."OwnerId" IN ({_in(scope)}){extra} GROUP BY o."OwnerId"',
            tuple(params))
        values = {r[0]: Fraction(round(r[2]), r[1]) for r in rows}
        return values, {"rep_signed_counts": {r[0]: r[1] for r in sorted(rows, key=lambda r: r[0])}}

    def from_rows(self, scope: Scope) -> dict[str, Fraction]:
        return mean_by((r.owner, days_between(r.created, r.signed)) for r in scope.rows if r.signed)

    def render(self, org: Org, scope: Scope, mode: str, shown: list[OppFact],
               tie_rule: bool) -> tuple[list[str], str, str]:
        word = "shortest (fastest)" if mode == "min" else "longest (slowest)"
        where = f", for accounts in the {scope.option[1]} industry," if scope.option else ""
        q = (f"Consider the sales reps {listed(org, scope.candidates)}. Among the opportunities owned by one of "
             f"them{where} whose contract the company signed (Contract.CompanySignedDate) {scope.window.phrase}, which rep "
             f"has the {word} average sales cycle? The sales cycle is the number of days from the "
             "opportunity's CreatedDate to its contract's CompanySignedDate.")
        if tie_rule:
            q += " " + self.tie_rule
        if org.rendering.terse:     # one table: the contract's signature date and the account's industry joined in
            cols = ["OwnerId"] + (["Industry"] if where else []) + ["CreatedDate", "CompanySignedDate"]
            rows = [(r.owner,) + ((r.industry,) if where else ()) + (r.created, r.signed) for r in shown]
            note = "CompanySignedDate = its contract's, empty when none" + ("; Industry = its account's" if where else "")
            return [render_table(f"Opportunity ({note})", cols, rows)], q, REP_FORMAT
        cols = ["Id", "OwnerId"] + (["AccountId"] if where else []) + ["CreatedDate", "ContractID__c"]
        opps = [(r.id, r.owner) + ((r.account,) if where else ()) + (r.created, r.contract) for r in shown]
        contracts = sorted({(r.contract, r.signed) for r in shown if r.contract})
        tables = [render_table("Opportunity", cols, opps),
                  render_table("Contract", ["Id", "CompanySignedDate"], contracts)]
        if where:
            tables.append(render_table("Account", ["Id", "Industry"], sorted({(r.account, r.industry) for r in shown})))
        return tables, q, REP_FORMAT


# ----------------------------------------------------------------------------------------------
# conversion_rate_comprehension
# ----------------------------------------------------------------------------------------------

LEAD_FILTERS = ("State", "LeadSource", "Industry")


class LeadFact(NamedTuple):
    id: str
    owner: str | None
    created: str
    converted: int
    State: str | None
    LeadSource: str | None
    Industry: str | None


def load_leads(org: Org) -> list[LeadFact]:
    return [LeadFact(*r) for r in org.conn.execute(
        'SELECT "Id", "OwnerId", substr("CreatedDate", 1, 10), COALESCE("IsConverted", 0), "State", '
        '"LeadSource", "Industry" FROM "Lead"')]


def _by_owner(rows: list[LeadFact]) -> dict[str, list[int]]:
    """owner -> the IsConverted flags of their leads."""
    out: dict[str, list[int]] = {}
    for r in rows:
        if r.owner is not None:
            out.setdefault(r.owner, []).append(r.converted)
    return out


@register
class ConversionRate(RankingTask):
    name = "conversion_rate_comprehension"
    answer = AnswerKind("id", prefix="005")
    value_key = "rep_conversion_rate"
    gaps = (0.15, 0.05)
    min_qual = 2
    row_ranges = ((10, 18), (12, 34), (18, 60))
    candidate_noun = "sales reps"
    levels = {
        "easy": "One explicit month, 5-6 listed reps with 2+ leads each, 10-18 leads sorted by date, "
                "no distractors, the winner at least 15 points ahead.",
        "medium": "A quarter or season, 5-7 reps, 12-34 leads shuffled, an optional State, LeadSource "
                  "or Industry filter, half as many distractors, winner 5 points ahead.",
        "hard": "The past N months/quarters before today, 6-8 reps, 18-60 leads, as many distractors "
                "(up to a quarter outside; the top two's leads first), near-ties kept, ties broken "
                "by the lowest Id.",
    }

    def index(self, org: Org) -> FactIndex:
        def options(r: LeadFact) -> Iterable[Option]:
            return tuple((f, getattr(r, f)) for f in LEAD_FILTERS if getattr(r, f))
        return org.cached(("index", self.name), lambda o: FactIndex(
            o.cached("leads", load_leads), date=lambda r: r.created,
            keys=lambda r: (r.owner,) if r.owner else (), options=options, qualifies=lambda r: True))

    def gold(self, org: Org, scope: Scope) -> tuple[dict[str, Fraction], dict[str, Any]]:
        extra, params = "", [*_window(scope), *scope.candidates]
        if scope.option is not None:
            if scope.option[0] not in LEAD_FILTERS:
                raise ValueError(f"unknown lead filter {scope.option[0]!r}")
            extra, params = f' AND "{scope.option[0]}" = ?', [*params, scope.option[1]]
        rows = org.query(
            'SELECT "OwnerId", COUNT(*), SUM(COALESCE("IsConverted", 0)) FROM "Lead" WHERE "CreatedDate" >= ? '
            f'AND "CreatedDate" < ? AND "OwnerId" IN ({_in(scope)}){extra} GROUP BY "OwnerId"', tuple(params))
        values = {r[0]: Fraction(r[2], r[1]) for r in rows}
        return values, {"rep_lead_counts": {r[0]: r[1] for r in sorted(rows, key=lambda r: r[0])},
                        "rep_converted_counts": {r[0]: r[2] for r in sorted(rows, key=lambda r: r[0])}}

    def from_rows(self, scope: Scope) -> dict[str, Fraction]:
        return {k: Fraction(sum(c), len(c)) for k, c in _by_owner(scope.rows).items()}

    def render(self, org: Org, scope: Scope, mode: str, shown: list[LeadFact],
               tie_rule: bool) -> tuple[list[str], str, str]:
        word = "highest" if mode == "max" else "lowest"
        field = scope.option[0] if scope.option else None
        where = f" with {field} = {scope.option[1]}" if scope.option else ""
        q = (f"Consider the sales reps {listed(org, scope.candidates)}. Among the leads{where} created "
             f"{scope.window.phrase} and owned by one of them, which rep has the {word} lead conversion rate "
             "(converted leads / leads owned; IsConverted = 1 means converted)?")
        if tie_rule:
            q += " " + self.tie_rule
        cols = ["Id", "OwnerId"] + ([field] if field else []) + ["CreatedDate", "IsConverted"]
        rows = [(r.id, r.owner) + ((getattr(r, field),) if field else ()) + (r.created, r.converted)
                for r in shown]
        if org.rendering.terse:     # the lead's Id is not needed to count
            cols, rows = cols[1:], [row[1:] for row in rows]
        return [render_table("Lead", cols, rows)], q, REP_FORMAT
