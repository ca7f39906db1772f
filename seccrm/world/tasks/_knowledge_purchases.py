"""``named_entity_disambiguation``: which product a customer means by a loose name and a date.

"The <words> I bought <when>" -> the Product2 Id of the product the account bought that day whose
name begins with the customer's words; None when nothing bought that day matches. Draws whose
answer would be ambiguous are rejected, so the gold is unique. :class:`Purchases` (cached per org)
holds every account's purchases by date.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from dataclasses import dataclass

from seccrm.world.tasks._knowledge_common import MIN_CANDIDATES, pick
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


def name_matches(name: str, mention: str) -> bool:
    """The customer's words are the first words of the product's name (case-insensitive)."""
    n, m = name.lower(), mention.lower()
    return n == m or n.startswith(m + " ")


@dataclass(frozen=True)
class Purchases:
    products: dict[str, str]                                 # Product2 Id -> Name
    by_account: dict[str, dict[str, list[tuple[str, str]]]]  # account -> date -> [(order, product)]
    contacts: dict[str, list[tuple[str, str]]]               # account -> [(Contact Id, full name)]
    accounts: list[str]                                      # accounts with >= 2 purchase dates
    account_names: dict[str, str]

    def mention(self, product_id: str, loose: bool) -> str:
        """How a customer names the product: its full name, or (``loose``) the longest shorter
        word-prefix of it that other products' names also start with ("Aurora Desk Lamp" for
        "Aurora Desk Lamp Pro"); the full name when no such prefix exists."""
        name = self.products[product_id]
        if loose:
            words = name.split()
            for k in range(len(words) - 1, 1, -1):
                prefix = " ".join(words[:k])
                if any(name_matches(n, prefix) for pid, n in self.products.items() if pid != product_id):
                    return prefix
        return name

    def matches_on(self, account: str, date: str, mention: str) -> list[str]:
        return sorted({p for _, p in self.by_account[account].get(date, [])
                       if name_matches(self.products[p], mention)})


def purchases(org: Org) -> Purchases:
    def build(o: Org) -> Purchases:
        products = {r["Id"]: r["Name"] for r in o.query("SELECT Id, Name FROM Product2 ORDER BY Id")}
        by_account: dict[str, dict[str, list[tuple[str, str]]]] = defaultdict(lambda: defaultdict(list))
        for r in o.query('SELECT o.AccountId, o.EffectiveDate, o.Id, oi.Product2Id FROM "Order" o '
                         'JOIN OrderItem oi ON oi.OrderId = o.Id ORDER BY o.AccountId, o.EffectiveDate, oi.Id'):
            by_account[r[0]][r[1][:10]].append((r[2], r[3]))
        contacts: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for r in o.query("SELECT Id, FirstName, LastName, AccountId FROM Contact ORDER BY Id"):
            contacts[r["AccountId"]].append((r["Id"], f"{r['FirstName']} {r['LastName']}"))
        names = {r[0]: r[1] for r in o.query("SELECT Id, Name FROM Account")}
        frozen = {a: dict(d) for a, d in by_account.items()}
        accounts = sorted(a for a, d in frozen.items() if len(d) >= 2)
        return Purchases(products, frozen, dict(contacts), accounts, names)
    return org.cached("purchases", build)


@register
class NamedEntityDisambiguation(Task):
    name = "named_entity_disambiguation"
    answer = AnswerKind("id", prefix="01t", allow_none=True)
    levels = {
        "easy": "The full product name and an explicit purchase date; 2 purchase dates with names shown, "
                "a product list of 5+.",
        "medium": "A loose name that several products start with and an explicit date; up to 6 purchase "
                  "dates, those with look-alike products first, listed by Product2 Id only, the names in "
                  "a product list of 6+.",
        "hard": "A loose name and 'N days ago'; up to 15 purchase dates listed by Product2 Id only, the "
                "names in the product list (look-alikes included, 8+).",
    }
    _n_dates = {"easy": 2, "medium": 6, "hard": 15}
    # The product list (Product2: Id, Name) comes first, in random order: the bought products and
    # the mention's look-alikes, padded with other products to at least this many.
    _n_products = {"easy": MIN_CANDIDATES, "medium": 6, "hard": 8}

    def _target(self, p: Purchases, difficulty: str, rng: random.Random,
                org: Org) -> tuple[str, str, str, str | None]:
        """(account, date asked about, mention, product the mention came from or None)."""
        want_none = rng.random() < NONE_DRAW_RATE   # None: the product was bought another day
        for _ in range(200):
            acc = pick(rng, p.accounts, "account with orders on two dates", org)
            dates = sorted(p.by_account[acc])
            date = rng.choice(dates)
            if want_none:   # a product the account bought on another day, asked about this day
                other = rng.choice([d for d in dates if d != date])
                source = rng.choice(p.by_account[acc][other])[1]
            else:
                source = rng.choice(p.by_account[acc][date])[1]
            mention = p.mention(source, loose=difficulty != "easy")
            n = len(p.matches_on(acc, date, mention))
            if n == (0 if want_none else 1):
                return acc, date, mention, source
        raise ValueError("no account gives an unambiguous product mention; is the org too small?")

    def generate(self, org: Org, difficulty: str, rng: random.Random) -> Instance:
        p = purchases(org)
        acc, date, mention, source = self._target(p, difficulty, rng, org)
        history = p.by_account[acc]
        # Dates shown: the asked date, then dates holding look-alikes of the mention, then any.
        rest = shuffled(rng, [d for d in history if d != date])
        rest.sort(key=lambda d: not any(name_matches(p.products[x], mention) for _, x in history[d]))
        n_dates = org.rendering.count("named_entity.dates", difficulty, self._n_dates[difficulty])
        shown = sorted([date, *rest[: n_dates - 1]])
        lines = [(d, o, x) for d in shown for o, x in history[d]]
        # The product list: bought products and look-alikes, padded with others drawn independently
        # of the listing order, which is random (so the gold's position in it says nothing).
        listed = {x for _, _, x in lines} | {pid for pid, n in p.products.items()
                                            if name_matches(n, mention.split()[0])}
        padding = [x for x in shuffled(rng, sorted(p.products)) if x not in listed]
        n_products = org.rendering.count("named_entity.products", difficulty, self._n_products[difficulty])
        listed |= set(padding[:max(0, n_products - len(listed))])
        catalogue = render_table("Product2", ["Id", "Name"], [(x, p.products[x]) for x in shuffled(rng, sorted(listed))])
        if difficulty != "easy":     # names only in the product list: the model joins on Product2Id
            tables = [catalogue, render_table("Purchases", ["EffectiveDate", "OrderId", "Product2Id"], lines)]
        else:
            tables = [catalogue, render_table("Purchases", ["EffectiveDate", "OrderId", "Product2Id", "Product"],
                                              [(d, o, x, p.products[x]) for d, o, x in lines])]
        when = f"{(org.today - dt.date.fromisoformat(date)).days} days ago" if difficulty == "hard" else f"on {date}"
        contact = rng.choice(p.contacts.get(acc) or [("", "A customer")])
        gold = self.gold(org, sorted({o for o, _ in history[date]}), mention)
        question = (f'{contact[1]} of account {p.account_names.get(acc, acc)} ({acc}) writes: "I need help '
                    f'with the {mention} I bought {when}." Which product does the customer mean? It is '
                    f"the product bought by the account that day whose name begins with the customer's words.")
        messages = build_messages(question, tables, "the Product2 Id, or None if no product bought "
                                  "that day matches.", today=org.today if difficulty == "hard" else None,
                                  terse=org.rendering.terse)
        meta = {"account_id": acc, "contact_id": contact[0], "purchase_date": date, "mention": mention,
                "date_phrase": when, "source_product_id": source, "n_purchase_dates": len(shown),
                "n_products_listed": len(listed),
                "order_ids": sorted({o for o, _ in history[date]}), "n_lines": len(lines), "match_rule": "name == mention or name starts with mention + ' '"}
        return Instance(self.name, difficulty, messages, [gold], meta)

    @staticmethod
    def gold(org: Org, order_ids: list[str], mention: str) -> str:
        """The one product in the orders (the account's orders of the asked day) whose name begins
        with the mention; None when there is none."""
        rows = org.query(
            "SELECT DISTINCT p.Id FROM OrderItem oi JOIN Product2 p ON p.Id = oi.Product2Id "
            f"WHERE oi.OrderId IN ({','.join('?' * len(order_ids))}) AND (lower(p.Name) = lower(?) "
            "OR substr(lower(p.Name), 1, length(?) + 1) = lower(?) || ' ')", (*order_ids, mention, mention, mention))
        if len(rows) > 1:
            raise AssertionError(f"ambiguous mention {mention!r}: {[r[0] for r in rows]}")
        return rows[0][0] if rows else NONE_ANSWER
