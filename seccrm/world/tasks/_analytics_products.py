"""Per-product case questions: top_issue_identification and monthly_trend_analysis.

Both look at every case of one product in a window (the unassigned 'New' cases included: a case is
reported when it is created, whoever owns it). Distractors are cases of other products, preferably
those with a near-duplicate name ("Aurora Desk Lamp" / "Aurora Desk Lamp Pro"), and cases of the
same product just outside the window (for "the past N months", the current month's cases).
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from fractions import Fraction
from typing import Any, ClassVar

from seccrm.world.tasks._analytics_cases import CaseFact, load_cases, names
from seccrm.world.tasks._analytics_common import (
    FactIndex,
    PromptTooLong,
    Scope,
    add_months,
    distractors,
    fit_prompt,
    month_bounds,
    month_keys,
    order_rows,
    scope_rows,
    user_chars,
)
from seccrm.world.tasks.base import (
    MONTHS,
    NONE_ANSWER,
    NONE_DRAW_RATE,
    AnswerKind,
    Instance,
    Org,
    Task,
    Window,
    build_messages,
    past_window,
    register,
    render_table,
    sample_window,
    shuffled,
)

ROWS = {"easy": (3, 12), "medium": (10, 40), "hard": (18, 110)}
DISTRACTOR_RATIO = {"easy": 0.0, "medium": 0.5, "hard": 1.0}
PAD_DAYS = {"easy": 0, "medium": 45, "hard": 92}     # how far outside the window date near-misses lie


def product_index(org: Org) -> FactIndex:
    """Cases keyed by their product; the one filter option is the channel (Case.Origin)."""
    return org.cached(("index", "product"), lambda o: FactIndex(
        o.cached("cases", load_cases), date=lambda r: r.created, keys=lambda r: (r.product,),
        options=lambda r: (("origin", r.origin),) if r.origin else (), qualifies=lambda r: True))


def near_duplicates(org: Org, product: str) -> set[str]:
    """Products whose name extends, or is extended by, this product's name."""
    pn = names(org, "Product2")
    me = pn[product]
    return {p for p, n in pn.items() if p != product and (n.startswith(me) or me.startswith(n))}


def product_phrase(org: Org, product: str) -> str:
    return f"{names(org, 'Product2')[product]} (Product2Id {product})"


def top_of(counts: Counter[str] | dict[str, int]) -> tuple[list[str], int]:
    """(issues sharing the highest count, lead of the top count over the next one)."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if not ranked:
        return [], 0
    top = [k for k, n in ranked if n == ranked[0][1]]
    return top, ranked[0][1] - (ranked[1][1] if len(ranked) > 1 else 0)


def _rows(org: Org, task: str, difficulty: str, full: tuple[int, int]) -> tuple[int, int]:
    """A level's (min, max) in-scope cases under the org's rendering."""
    r = org.rendering
    return r.count(f"{task}.rows_min", difficulty, full[0]), r.count(f"{task}.rows_max", difficulty, full[1])


class _ProductTask(Task):
    """Shared prompt assembly: shown rows, distractor fitting, optional today's date."""

    def _messages(self, org: Org, difficulty: str, rng: random.Random, scope: Scope, n_extra: int,
                  render: Any, prefer: Any = None) -> tuple[list[dict[str, str]], int]:
        index = product_index(org)
        near = near_duplicates(org, scope.candidates[0])
        pool = distractors(rng, index, scope, n_extra, pad_days=PAD_DAYS[difficulty], prefer_keys=sorted(near),
                           prefer=prefer)
        ordered = order_rows(rng, scope.rows + pool, index.date, difficulty != "easy")
        in_scope = {id(x) for x in scope.rows}

        def messages(k: int) -> list[dict[str, str]]:
            keep = {id(x) for x in pool[:k]} | in_scope
            tables, q, fmt = render([x for x in ordered if id(x) in keep])
            return build_messages(q, tables, fmt, today=org.today if difficulty == "hard" else None,
                                  terse=org.rendering.terse)

        return fit_prompt(messages, len(pool), user_chars(org, difficulty), org.rendering.trim_only)


@register
class TopIssue(_ProductTask):
    name = "top_issue_identification"
    answer = AnswerKind("id", prefix="a03", allow_none=True)
    levels = {
        "easy": "One explicit month, one product with 3-12 cases sorted by date, no distractors, 5 "
                "listed issues, the top issue at least 2 cases ahead, or a tie at the top (None).",
        "medium": "A quarter or season, half the time one channel (Origin) too, 10-40 cases shuffled "
                  "with half as many distractors (other channels, other products, near-duplicate "
                  "names first; dates just outside), 6+ listed issues; a unique top issue, or None "
                  "(a tie, or no case in the window).",
        "hard": "The past N months/quarters before today, 18-110 cases and as many distractors (cases "
                "of other issues up to a quarter outside first), 8+ listed issues; near-ties kept; "
                "ties at the top and products with no case in the window give None.",
    }
    GAP: ClassVar[dict[str, int]] = {"easy": 2, "medium": 1, "hard": 0}
    # How many issues the Issue__c table lists at least (those of the shown cases, then others).
    N_ISSUES: ClassVar[dict[str, int]] = {"easy": 5, "medium": 6, "hard": 8}
    RULE = ("If the product has no case created in that period, or if two or more issues tie for the "
            "most cases, answer None.")

    def gold(self, org: Org, scope: Scope) -> dict[str, int]:
        """Cases per issue of the product in the window (and channel), by SQL."""
        params = [scope.window.start.isoformat(), scope.window.end.isoformat(), scope.candidates[0]]
        channel = ""
        if scope.option is not None:
            channel, params = ' AND c."Origin" = ?', [*params, scope.option[1]]
        rows = org.query(
            'SELECT c."IssueId__c", COUNT(*) FROM "Case" c JOIN "OrderItem" oi ON oi."Id" = c."OrderItemId__c" '
            f'WHERE c."CreatedDate" >= ? AND c."CreatedDate" < ? AND oi."Product2Id" = ?{channel} '
            'GROUP BY c."IssueId__c"', tuple(params))
        return {r[0]: r[1] for r in rows}

    def generate(self, org: Org, difficulty: str, rng: random.Random) -> Instance:
        index, (lo, hi) = product_index(org), _rows(org, "top_issue", difficulty, ROWS[difficulty])
        all_products = sorted(names(org, "Product2"))
        want_none = rng.random() < NONE_DRAW_RATE     # drawn once: ties are rare
        for attempt in range(120):
            w = sample_window(rng, org.today, difficulty)
            # Medium and hard questions may also name a channel: more distinct questions, fewer
            # cases per question (so ties, hence None answers, come up more often).
            option = (None if difficulty == "easy" or rng.random() < 0.5
                      else ("origin", rng.choice(sorted(o[1] for o in index.options_seen if o))))
            counts = index.counts(w, option)
            # None because the product has no case (its prompt shows only distractors: not at easy)
            absent = want_none and difficulty != "easy" and rng.random() < 0.3
            pick = [p for p in all_products if (counts.get(p, [0])[0] == 0 if absent
                                                else lo <= counts.get(p, [0])[0] <= hi)]
            if not pick:
                continue
            scope = Scope(w, option, [rng.choice(pick)])
            scope.rows = scope_rows(index, scope)
            top, gap = top_of(Counter(r.issue for r in scope.rows))
            if not self._accept(top, gap, difficulty, want_none, relaxed=attempt >= 80, rng=rng):
                continue
            issue_counts = self.gold(org, scope)
            if top_of(Counter(issue_counts)) != (top, gap):
                raise RuntimeError(f"{self.name}: SQL issue counts {issue_counts} differ from the cases shown")
            try:
                return self._instance(org, difficulty, rng, scope, issue_counts, top, absent)
            except PromptTooLong:
                continue
        raise RuntimeError(f"{self.name}: no {difficulty} instance in 120 attempts; the org is too small")

    def _accept(self, top: list[str], gap: int, difficulty: str, want_none: bool, relaxed: bool,
                rng: random.Random) -> bool:
        """A None (tie or no case) when ``want_none``. Otherwise easy/medium: a unique top issue
        ``GAP`` cases ahead; hard: a unique top, kept only half the time when more than 1 case ahead."""
        if want_none:
            return len(top) != 1 or relaxed
        if difficulty != "hard":
            return relaxed or (len(top) == 1 and gap >= self.GAP[difficulty])
        return len(top) == 1 and (gap <= 1 or rng.random() < 0.5)

    def _instance(self, org: Org, difficulty: str, rng: random.Random, scope: Scope,
                  issue_counts: dict[str, int], top: list[str], absent: bool) -> Instance:
        answer = top[0] if len(top) == 1 else NONE_ANSWER
        n_extra = round(DISTRACTOR_RATIO[difficulty] * len(scope.rows)) or (rng.randint(15, 40) if absent else 0)
        # Cases of the other issues just outside the window mislead a reader who ignores dates.
        # The issues listed, in a random order fixed for the instance (the order in which the prompt
        # first mentions them then says nothing about the answer); the padding issues are drawn
        # independently of that order.
        ids = sorted(names(org, "Issue__c"))
        order, padding = shuffled(rng, ids), shuffled(rng, ids)
        msgs, n_shown = self._messages(org, difficulty, rng, scope, n_extra,
                                       lambda shown: self.render(org, scope, shown, order, padding, org.rendering.count(
                                           "top_issue.issues", difficulty, self.N_ISSUES[difficulty])),
                                       prefer=(lambda r: r.issue != top[0]) if len(top) == 1 else None)
        meta = {**scope.window.as_meta(), "product_id": scope.candidates[0],
                "origin": None if scope.option is None else scope.option[1],
                "issue_counts": dict(sorted(issue_counts.items())), "top_issues": top, "min_or_max": "max",
                "none_reason": None if answer != NONE_ANSWER else ("no_cases" if not top else "tie"),
                "tie_break": "a tie at the top gives None", "n_scope_records": len(scope.rows),
                "n_distractors": n_shown, "issues_shown": len(self._listed(scope, msgs))}
        return Instance(self.name, difficulty, msgs, [answer], meta)

    @staticmethod
    def _listed(scope: Scope, msgs: list[dict[str, str]]) -> list[str]:
        block = msgs[-1]["content"].split("\n\n")
        table = next(b for b in block if b.startswith("Issue__c ("))
        return [line.split(" | ")[0] for line in table.split("\n")[2:]]

    def render(self, org: Org, scope: Scope, shown: list[CaseFact], order: list[str], padding: list[str],
               n_issues: int) -> tuple[list[str], str, str]:
        """The Issue__c table first (the issues of the shown cases, padded with the first others of
        ``padding`` to ``n_issues``, listed in ``order``), then the cases."""
        issues = names(org, "Issue__c")
        used = {r.issue for r in shown}
        listed = set(used) | set([i for i in padding if i not in used][:max(0, n_issues - len(used))])
        listed_order = [i for i in order if i in listed]
        channel = f" received through the {scope.option[1]} channel (Origin)" if scope.option else ""
        q = (f"Which issue was reported most often in the cases about product "
             f"{product_phrase(org, scope.candidates[0])}{channel} created {scope.window.phrase}? {self.RULE}")
        cols = ["Id", "Product2Id", "IssueId__c"] + (["Origin"] if channel else []) + ["CreatedDate"]
        rows = [(r.id, r.product, r.issue) + ((r.origin,) if channel else ()) + (r.created,) for r in shown]
        if org.rendering.terse:     # the case's Id is not needed to count
            cols, rows = cols[1:], [row[1:] for row in rows]
        tables = [render_table("Issue__c", ["Id", "Name"], [(i, issues[i]) for i in listed_order]),
                  render_table("Case (Product2Id = product of the case's order item)", cols, rows)]
        return tables, q, "the Issue Id (IssueId__c, 18 characters), or None."


# ----------------------------------------------------------------------------------------------
# monthly_trend_analysis
# ----------------------------------------------------------------------------------------------

def slack_units(counts: list[int], i: int) -> int:
    """(n - 1) x how far month ``i`` is above the "significantly more" threshold; >= 0: it qualifies.

    The threshold (base.DEFINITIONS): count >= 2 x the average of the other months and
    count >= that average + 5. Scaled by n - 1 so that the test is exact integer arithmetic and a
    month exactly at the threshold qualifies."""
    n1, rest = len(counts) - 1, sum(counts) - counts[i]
    return min(counts[i] * n1 - 2 * rest, counts[i] * n1 - rest - 5 * n1)


def slack(counts: list[int], i: int) -> Fraction:
    """How many cases month ``i`` is above the threshold (negative: below)."""
    return Fraction(slack_units(counts, i), len(counts) - 1)


def qualifying_months(months: list[str], counts: list[int]) -> list[str]:
    """The months (``YYYY-MM``) with significantly more cases than the other months of the period."""
    return [m for i, m in enumerate(months) if slack_units(counts, i) >= 0]


def trend_window(rng: random.Random, today: dt.date, difficulty: str) -> Window:
    """Easy: 2-6 explicit months starting up to 3 years back; medium: a quarter or season; hard: the
    past 4-12 months or 2-4 quarters. Periods never exceed 12 months, so a month name is unambiguous.

    Easy draws from every explicit period of the org's history: a product's spike month is rare (the
    small org of seed 11 had only 94 distinct easy spike questions with 3-5 months, a 3-case margin
    and 4-45 cases, against 212 answer slots in a pool of 250, and the builder filled the rest with
    None: 62% of the level), and each extra period length adds questions."""
    if difficulty == "easy":
        n = rng.randint(2, 6)
        start = add_months(dt.date(today.year, today.month, 1), -rng.randint(n, 36))
        end = add_months(start, n)
        last = add_months(start, n - 1)
        return Window(start, end, f"from {MONTHS[start.month - 1]} {start.year} to "
                                  f"{MONTHS[last.month - 1]} {last.year}")
    if difficulty == "medium":
        return sample_window(rng, today, "medium")
    if rng.random() < 0.5:
        return past_window(today, "quarters", rng.randint(2, 4))
    return past_window(today, "months", rng.randint(4, 12))


@register
class MonthlyTrend(_ProductTask):
    name = "monthly_trend_analysis"
    answer = AnswerKind("month", allow_none=True)
    levels = {
        "easy": "2-6 explicit months, one product's cases (4-60) sorted by date, no distractors; the "
                "spike month, or the flat period, is at least 2 cases clear of the threshold.",
        "medium": "A quarter or season, 8-70 cases shuffled, half as many distractors (other products, "
                  "dates just outside); at least 1 case clear of the threshold.",
        "hard": "The past 4-12 months or 2-4 quarters before today, 15-140 cases, as many distractors "
                "(the current month's cases included); months near the threshold are kept.",
    }
    ROWS: ClassVar[dict[str, tuple[int, int]]] = {"easy": (4, 60), "medium": (8, 70), "hard": (15, 140)}
    CLEAR: ClassVar[dict[str, int]] = {"easy": 2, "medium": 1, "hard": 0}

    def gold(self, org: Org, product: str, w: Window) -> list[int]:
        """Cases of the product per month of the window (zeros included), by SQL."""
        rows = org.query(
            'SELECT substr(c."CreatedDate", 1, 7), COUNT(*) FROM "Case" c '
            'JOIN "OrderItem" oi ON oi."Id" = c."OrderItemId__c" WHERE c."CreatedDate" >= ? '
            'AND c."CreatedDate" < ? AND oi."Product2Id" = ? GROUP BY 1',
            (w.start.isoformat(), w.end.isoformat(), product))
        per = dict((r[0], r[1]) for r in rows)
        return [per.get(m, 0) for m in month_keys(w)]

    def _fits(self, counts: list[int], want_none: bool | None, clear: int, rng: random.Random) -> bool:
        """Exactly one qualifying month (none when ``want_none``; either when it is None), every
        month at least ``clear`` cases away from the threshold; at hard, near misses are preferred."""
        n1 = len(counts) - 1
        units = [slack_units(counts, i) for i in range(len(counts))]
        hits = sum(u >= 0 for u in units)
        if hits > 1 or (want_none is not None and (hits == 0) != want_none):
            return False
        if clear:
            return all(u >= clear * n1 or u <= -clear * n1 for u in units)
        return min(abs(u) for u in units) < 3 * n1 or rng.random() < 0.5

    def generate(self, org: Org, difficulty: str, rng: random.Random) -> Instance:
        index, (lo, hi) = product_index(org), _rows(org, "monthly_trend", difficulty, self.ROWS[difficulty])
        want_none = rng.random() < NONE_DRAW_RATE      # drawn once, so the share holds
        for attempt in range(120):
            clear = self.CLEAR[difficulty] if attempt < 80 else 0
            w = trend_window(rng, org.today, difficulty)
            months = month_keys(w)
            per_month = [index.counts(Window(*month_bounds(m), ""), None) for m in months]
            shown = {p: [pm.get(p, [0])[0] for pm in per_month] for p in names(org, "Product2")}
            pick = sorted(p for p, c in shown.items() if lo <= sum(c) <= hi
                          and self._fits(c, want_none if attempt < 100 else None, clear, rng))
            if not pick:
                continue
            product = rng.choice(pick)
            counts = self.gold(org, product, w)
            if counts != shown[product]:
                raise RuntimeError(f"{self.name}: SQL month counts {counts} differ from the cases shown "
                                   f"{shown[product]} ({product}, {w.phrase})")
            try:
                return self._instance(org, difficulty, rng, Scope(w, None, [product]), counts)
            except PromptTooLong:
                continue
        raise RuntimeError(f"{self.name}: no {difficulty} instance in 120 attempts; the org is too small")

    def _instance(self, org: Org, difficulty: str, rng: random.Random, scope: Scope,
                  counts: list[int]) -> Instance:
        months = month_keys(scope.window)
        qualifying = qualifying_months(months, counts)
        answer = MONTHS[int(qualifying[0][5:]) - 1] if qualifying else NONE_ANSWER
        scope.rows = scope_rows(product_index(org), scope)
        n_extra = round(DISTRACTOR_RATIO[difficulty] * len(scope.rows))
        msgs, n_shown = self._messages(org, difficulty, rng, scope, n_extra,
                                       lambda shown: self.render(org, scope, shown, difficulty))
        meta = {**scope.window.as_meta(), "product_id": scope.candidates[0],
                "month_counts": dict(zip(months, counts, strict=True)), "qualifying_months": qualifying,
                "min_or_max": "max",
                "month_slack": {m: round(float(slack(counts, i)), 3) for i, m in enumerate(months)},
                "rule": "count >= 2 x mean(other months) and count >= mean(other months) + 5",
                "tie_break": "two or more qualifying months are never generated",
                "n_scope_records": len(scope.rows), "n_distractors": n_shown}
        return Instance(self.name, difficulty, msgs, [answer], meta)

    def render(self, org: Org, scope: Scope, shown: list[CaseFact], difficulty: str) -> tuple[list[str], str, str]:
        q = (f"Considering the cases about product {product_phrase(org, scope.candidates[0])} created "
             f"{scope.window.phrase}, is there a month in that period with significantly more cases "
             "than the other months of the period? If there is none, answer None.")
        if org.rendering.terse:     # the case's Id is not needed to count
            table = (render_table(f"Case (all about product {scope.candidates[0]})", ["CreatedDate"],
                                  [(r.created,) for r in shown]) if difficulty == "easy" else
                     render_table("Case (Product2Id = product of the case's order item)", ["Product2Id", "CreatedDate"],
                                  [(r.product, r.created) for r in shown]))
        elif difficulty == "easy":     # no distractors: every row is the product's
            table = render_table(f"Case (all about product {scope.candidates[0]})", ["Id", "CreatedDate"],
                                 [(r.id, r.created) for r in shown])
        else:
            table = render_table("Case (Product2Id = product of the case's order item)",
                                 ["Id", "Product2Id", "CreatedDate"], [(r.id, r.product, r.created) for r in shown])
        return [table], q, "the month name in English (e.g. March), or None."

