"""Build an org: a deterministic SQLite database of Salesforce-like records with latent structure.

``build_org(path, seed, size)`` runs the sections below in a fixed order, each with its own RNG
derived from (seed, section name) by SHA-256, so that changing one section never shifts the random
stream of another. Rows are collected in memory and written in one transaction with
``executemany`` into a temporary file next to the target, then VACUUMed and moved into place with
``os.replace``: same seed, byte-identical file; a crash never leaves a half-written org behind.

The latent structure the tasks rely on is documented in ``docs/org-contract.md``; every number that
shapes it (agent speeds, transfer and breach propensities, rep volumes, cycle lengths, conversion
rates, issue propensities, seasonal spikes, state closure factors) is drawn here.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import json
import math
import os
import random
import re
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seccrm.org import text as T
from seccrm.org.ids import make_id
from seccrm.org.schema import ID_PREFIXES, META_TABLE, TABLES, create_indexes, create_schema, qi

GENERATOR_VERSION = "1"
TODAY = dt.date(2025, 6, 30)          # the org's "now"
DATA_START = dt.date(2023, 1, 1)      # first case, lead and opportunity (30 months before TODAY)
ORDERS_START = dt.date(2022, 7, 1)    # orders start earlier so that every case has a prior purchase
SUPPORT, SALES = "Support Agent", "Sales Rep"


@dataclass(frozen=True)
class OrgSize:
    """How many records of each kind a preset holds."""

    name: str
    support_agents: int
    sales_reps: int
    products: int
    territories: int            # the first n of text.TERRITORIES
    accounts: int
    contacts_per_account: tuple[int, int]
    orders: int
    cases: int                  # assigned cases (open and closed), spikes included
    new_cases: int              # the routing pool: Status 'New', OwnerId NULL
    opportunities: int
    leads: int                  # assigned leads
    new_leads: int              # the routing pool: 'Open - Not Contacted', OwnerId NULL


SIZES: dict[str, OrgSize] = {
    "tiny": OrgSize("tiny", 8, 6, 12, 4, 60, (2, 3), 300, 600, 30, 150, 150, 30),
    "small": OrgSize("small", 16, 10, 24, 5, 250, (2, 4), 1500, 3000, 60, 500, 700, 60),
    "full": OrgSize("full", 40, 24, 60, 6, 1200, (2, 5), 9000, 24000, 200, 3000, 5000, 200),
}


def _stable_seed(*parts: object) -> int:
    """A 64-bit seed from its parts (SHA-256; Python's ``hash()`` is salted per process)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _ts(x: dt.datetime) -> str:
    return x.isoformat(timespec="seconds")


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def _at(rng: random.Random, day: dt.date) -> dt.datetime:
    """A business-hours moment on ``day``."""
    return dt.datetime(day.year, day.month, day.day, rng.randint(8, 17), rng.randint(0, 59), rng.randint(0, 59))


def _day_between(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    """A day in [start, end)."""
    return start + dt.timedelta(days=rng.randrange(max(1, (end - start).days)))


def _spread(rng: random.Random, lo: float, hi: float, n: int) -> list[float]:
    """n values evenly spaced over [lo, hi], shuffled: a guaranteed spread across people."""
    vals = [lo + (hi - lo) * i / max(1, n - 1) for i in range(n)]
    rng.shuffle(vals)
    return vals


@dataclass
class _Person:
    id: str
    first: str
    role: str
    email: str
    territories: list[int] = field(default_factory=list)
    traits: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rules:
    """The configuration and discount rules quotes are checked against (mirrors the Policy articles)."""

    tiers: dict[str, list[tuple[int, int]]]      # Family -> [(min_qty, max_discount_pct)], ascending
    qty_limit: dict[str, int]                    # Product2 Id -> max quantity per line
    bundles: list[tuple[str, str]]               # (product, required product)
    exclusions: list[tuple[str, str]]            # products that cannot share a quote
    family: dict[str, str]                       # Product2 Id -> Family

    def max_discount(self, product_id: str, quantity: float) -> int:
        best = 0
        for min_qty, pct in self.tiers[self.family[product_id]]:
            if min_qty <= quantity:
                best = pct
        return best

    def broken(self, lines: list[tuple[str, float, float]]) -> list[tuple[str, Any]]:
        """The rules that lines of (product, quantity, discount) break, as (rule type, key) pairs:
        ('discount_tiers', family), ('quantity_limit', product), ('bundle', (p, r)), ('exclusion', (p, q))."""
        present = {p for p, _, _ in lines}
        fams = sorted({self.family[p] for p, q, d in lines if d > self.max_discount(p, q)})
        return ([("discount_tiers", f) for f in fams]
                + [("quantity_limit", p) for p, q, _ in lines if q > self.qty_limit.get(p, math.inf)]
                + [("bundle", b) for b in self.bundles if b[0] in present and b[1] not in present]
                + [("exclusion", e) for e in self.exclusions if e[0] in present and e[1] in present])

    def breaks(self, lines: list[tuple[str, float, float]]) -> tuple[bool, bool]:
        """(breaks a discount tier, breaks a configuration rule)."""
        kinds = [k for k, _ in self.broken(lines)]
        return "discount_tiers" in kinds, any(k != "discount_tiers" for k in kinds)


class _Generator:
    """Collects the rows of every table; one method per section, run in a fixed order."""

    def __init__(self, seed: int, size: OrgSize):
        self.seed, self.size = seed, size
        self.rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in TABLES}
        self._cols = {t: [f for f, _ in fs] for t, fs in TABLES.items()}
        self._colset = {t: set(c) for t, c in self._cols.items()}
        self._count = {t: 0 for t in TABLES}

    def rng(self, section: str) -> random.Random:
        return random.Random(_stable_seed(self.seed, section))

    def add(self, table: str, **fields: Any) -> str:
        """Append one row (fields by name; the rest NULL) and return its new Id."""
        unknown = fields.keys() - self._colset[table]
        if unknown:
            raise KeyError(f"{table} has no field(s) {sorted(unknown)}")
        self._count[table] += 1
        fields["Id"] = rid = make_id(ID_PREFIXES[table], self._count[table])
        self.rows[table].append(tuple(fields.get(c) for c in self._cols[table]))
        return rid

    def run(self) -> None:
        self.people()
        self.catalog()
        self.accounts()
        self.orders()
        self.knowledge()
        self.cases()
        self.leads()
        self.opportunities()

    # ------------------------------------------------------------------------------------------
    # Users and territories
    # ------------------------------------------------------------------------------------------
    def _names(self, rng: random.Random, n: int) -> list[tuple[str, str]]:
        pairs = [(f, ln) for f in T.FIRST_NAMES for ln in T.LAST_NAMES]
        return rng.sample(pairs, n)

    def people(self) -> None:
        rng, s = self.rng("people"), self.size
        terrs = T.TERRITORIES[: s.territories]
        self.terr_ids = [self.add("Territory2", Name=name, DeveloperName=name + "_Territory",
                                  Description=",".join(states)) for name, states in terrs]
        self.state_terr = {st: i for i, (_, states) in enumerate(terrs) for st in states}
        self.states = [st for _, states in terrs for st in states]
        names = self._names(rng, s.support_agents + s.sales_reps)
        n_issues = len(T.ISSUES)
        speed = _spread(rng, 1.0, 2.8, s.support_agents)           # mean handle days: ~3x spread
        transfer = _spread(rng, 0.02, 0.30, s.support_agents)
        breachers = set(rng.sample(range(s.support_agents), math.ceil(0.3 * s.support_agents)))
        volume = _spread(rng, 0.5, 2.0, s.sales_reps)
        cycle = _spread(rng, 25.0, 110.0, s.sales_reps)             # mean days to contract signature
        conversion = _spread(rng, 0.12, 0.60, s.sales_reps)
        self.agents: list[_Person] = []
        self.reps: list[_Person] = []
        for i, (first, last) in enumerate(names):
            role = SUPPORT if i < s.support_agents else SALES
            uid = self.add("User", FirstName=first, LastName=last, Name=f"{first} {last}",
                           Email=f"{first}.{last}@seccrm-demo.com".lower(), Alias=(first[0] + last[:4]).lower(),
                           UserRole=role, IsActive=1, CreatedDate=_ts(_at(rng, _day_between(
                               rng, dt.date(2021, 1, 1), dt.date(2022, 6, 1)))))
            p = _Person(uid, first, role, f"{first}.{last}@seccrm-demo.com".lower())
            if role == SUPPORT:
                j = len(self.agents)
                p.traits = {"speed": speed[j], "transfer": transfer[j],
                            "breach": 0.6 if j in breachers else 0.12,
                            "expertise": set(rng.sample(range(n_issues), 3))}
                self.agents.append(p)
            else:
                j = len(self.reps)
                p.traits = {"volume": volume[j], "cycle": cycle[j], "conversion": conversion[j]}
                self.reps.append(p)
        self._associate(rng)

    def _associate(self, rng: random.Random) -> None:
        """Round-robin primary territories, then extra memberships until each territory has 2 of each role."""
        n = len(self.terr_ids)
        for group in (self.agents, self.reps):
            for i, p in enumerate(group):
                p.territories.append(i % n)
            for t in range(n):
                members = [p for p in group if t in p.territories]
                spare = [p for p in group if t not in p.territories and len(p.territories) == 1]
                rng.shuffle(spare)
                while len(members) < 2 and spare:
                    p = spare.pop()
                    p.territories.append(t)
                    members.append(p)
        for p in self.agents + self.reps:
            for k, t in enumerate(p.territories):
                self.add("UserTerritory2Association", UserId=p.id, Territory2Id=self.terr_ids[t],
                         RoleInTerritory2="Owner" if k == 0 else "Member")
        self.terr_agents = [[a for a in self.agents if t in a.territories] for t in range(n)]
        self.terr_reps = [[r for r in self.reps if t in r.territories] for t in range(n)]

    def _pick_rep(self, rng: random.Random, state: str) -> _Person:
        reps = self.terr_reps[self.state_terr[state]]
        return rng.choices(reps, weights=[r.traits["volume"] for r in reps])[0]

    # ------------------------------------------------------------------------------------------
    # Products, price books, issues
    # ------------------------------------------------------------------------------------------
    def catalog(self) -> None:
        rng, n = self.rng("catalog"), self.size.products
        cat_ids = {c: self.add("ProductCategory", Name=c) for c in T.CATEGORIES}
        n_base = min(len(T.BASE_PRODUCTS), n - n // 3)
        bases = list(T.BASE_PRODUCTS[:n_base])                  # ordered so every Family appears
        specs = [(name, fam, cat, price) for name, fam, cat, price in bases]
        pairs = [(b, v) for b in range(n_base) for v in range(len(T.VARIANTS))]
        for b, v in rng.sample(pairs, n - n_base):
            name, fam, cat, price = bases[b]
            suffix, mult = T.VARIANTS[v]
            specs.append((f"{name} {suffix}", fam, cat, round(price * mult, 0) - 0.01))
        rng.shuffle(specs)
        std = self.add("Pricebook2", Name="Standard Price Book", IsActive=1, IsStandard=1)
        partner = self.add("Pricebook2", Name="Partner Price Book", IsActive=1, IsStandard=0)
        self.std_pricebook = std
        self.issue_ids = [self.add("Issue__c", Name=name, Description__c=desc)
                          for name, _, desc, _, _ in T.ISSUES]
        spiky = set(rng.sample(range(n), max(2, round(0.25 * n))))
        self.products: list[dict[str, Any]] = []
        for i, (name, fam, cat, price) in enumerate(specs):
            pid = self.add("Product2", Name=name, ProductCode=f"{fam[:3].upper()}-{1000 + 7 * i}",
                           Description=f"{name}: {fam.lower()} product in the {cat} line.", Family=fam,
                           ProductCategoryId__c=cat_ids[cat], IsActive=1)
            pbe = self.add("PricebookEntry", Pricebook2Id=std, Product2Id=pid, UnitPrice=price, IsActive=1)
            self.add("PricebookEntry", Pricebook2Id=partner, Product2Id=pid,
                     UnitPrice=round(price * 0.9, 2), IsActive=1)
            self.products.append({"id": pid, "name": name, "family": fam, "price": price, "pbe": pbe,
                                  "issues": self._issue_propensity(rng, fam),
                                  "spike": rng.randint(1, 12) if i in spiky else None,
                                  "popularity": rng.uniform(0.5, 2.0)})

    def _issue_propensity(self, rng: random.Random, family: str) -> tuple[list[int], list[float]]:
        """(issue indexes, weights): the top issue is clear for ~75% of products, nearly tied otherwise."""
        relevant = [i for i, iss in enumerate(T.ISSUES) if family in iss[1]]
        k = min(len(relevant), rng.randint(3, 5))
        chosen = rng.sample(relevant, k)
        if rng.random() < 0.75:
            top = [rng.uniform(0.45, 0.6)]
        else:
            a = rng.uniform(0.3, 0.36)
            top = [a, a * rng.uniform(0.9, 1.0)]
        rest = [rng.uniform(0.5, 1.0) for _ in range(k - len(top))]
        scale = (1 - sum(top)) / sum(rest) if rest else 0.0
        return chosen, top + [r * scale for r in rest]

    # ------------------------------------------------------------------------------------------
    # Accounts and contacts
    # ------------------------------------------------------------------------------------------
    def accounts(self) -> None:
        rng, s = self.rng("accounts"), self.size
        # Account state -> closure time factor. Each territory gets one factor from each band (fast to
        # slow), so that territories, and hence their agents, are alike on average: agent speed and
        # state speed stay separate signals.
        terr_states = [states for _, states in T.TERRITORIES[: len(self.terr_ids)]]
        per = min(len(st) for st in terr_states)
        factors = sorted(_spread(rng, 0.6, 1.7, len(self.states)))
        self.state_factor: dict[str, float] = {}
        for band in range(per):
            chunk = factors[band * len(terr_states):(band + 1) * len(terr_states)]
            rng.shuffle(chunk)
            for states, f in zip(terr_states, chunk, strict=True):
                self.state_factor[states[band]] = f
        rest = [st for st in self.states if st not in self.state_factor]   # territories of unequal size
        self.state_factor.update(zip(rest, factors[len(self.state_factor):], strict=True))
        used: set[str] = set()
        self.account_list: list[dict[str, Any]] = []
        for _ in range(s.accounts):
            name = f"{rng.choice(T.COMPANY_WORDS)} {rng.choice(T.COMPANY_SUFFIXES)}"
            while name in used:
                name = f"{name} {rng.choice(('Inc', 'LLC', 'Co', 'Holdings', 'International'))}"
            used.add(name)
            state = rng.choice(self.states)
            owner = self._pick_rep(rng, state)
            aid = self.add("Account", Name=name, Industry=rng.choice(T.INDUSTRIES), ShippingState=state,
                           ShippingCity=rng.choice(T.CITIES[state]),
                           NumberOfEmployees=rng.choice((25, 50, 120, 300, 800, 2500, 10000)),
                           AnnualRevenue=float(rng.randrange(2, 900) * 500_000), OwnerId=owner.id,
                           CreatedDate=_ts(_at(rng, _day_between(rng, dt.date(2020, 1, 1), ORDERS_START))))
            self.account_list.append({"id": aid, "name": name, "state": state, "domain": _slug(name) + ".com",
                                      "contacts": []})
        for acc in self.account_list:
            for _ in range(rng.randint(*s.contacts_per_account)):
                first, last = rng.choice(T.FIRST_NAMES), rng.choice(T.LAST_NAMES)
                email = f"{first}.{last}@{acc['domain']}".lower()
                cid = self.add("Contact", FirstName=first, LastName=last, Email=email,
                               Title=rng.choice(T.AUTHORITY_TITLES + T.OTHER_TITLES), AccountId=acc["id"],
                               CreatedDate=_ts(_at(rng, _day_between(rng, dt.date(2020, 6, 1), ORDERS_START))))
                acc["contacts"].append((cid, first, email))

    # ------------------------------------------------------------------------------------------
    # Orders: every product is bought early on, so every case has a purchase before it
    # ------------------------------------------------------------------------------------------
    def orders(self) -> None:
        rng, s = self.rng("orders"), self.size
        early_end = ORDERS_START + dt.timedelta(days=90)
        specs: list[tuple[dt.date, list[int]]] = [
            (_day_between(rng, ORDERS_START, early_end), [i]) for i in range(len(self.products))]
        pop = [p["popularity"] for p in self.products]
        for _ in range(max(0, s.orders - len(specs))):
            k = rng.choice((1, 1, 2, 2, 3, 4))
            items = list(dict.fromkeys(rng.choices(range(len(self.products)), weights=pop, k=k)))
            specs.append((_day_between(rng, ORDERS_START, TODAY), items))
        specs.sort(key=lambda x: x[0])                       # ids increase with the order date
        self.purchases: list[list[tuple[str, str, int]]] = [[] for _ in self.products]
        for day, items in specs:
            a = rng.randrange(len(self.account_list))
            acc = self.account_list[a]
            owner = self._pick_rep(rng, acc["state"])
            oid = self.add("Order", AccountId=acc["id"], OwnerId=owner.id, Pricebook2Id=self.std_pricebook,
                           Status="Activated", EffectiveDate=day.isoformat())
            for i in items:
                p = self.products[i]
                qty = float(rng.choice((1, 1, 2, 3, 5, 10, 20)) * (2 if owner.traits["volume"] > 1.5 else 1))
                oi = self.add("OrderItem", OrderId=oid, Product2Id=p["id"], PricebookEntryId=p["pbe"],
                              Quantity=qty, UnitPrice=p["price"])
                self.purchases[i].append((day.isoformat(), oi, a))

    def _purchase_before(self, rng: random.Random, product: int, when: dt.datetime) -> tuple[str, str, int]:
        """A purchase (date, OrderItem Id, account index) of ``product`` at least a day before ``when``,
        preferably within the year before it."""
        items = self.purchases[product]
        latest = (when.date() - dt.timedelta(days=1)).isoformat()
        hi = bisect.bisect_right(items, (latest, "\uffff"))
        lo = bisect.bisect_left(items, ((when.date() - dt.timedelta(days=365)).isoformat(),))
        if hi == 0:
            raise RuntimeError("no purchase before the case; ORDERS_START must precede DATA_START")
        return items[rng.randrange(lo, hi)] if lo < hi else items[rng.randrange(hi)]

    # ------------------------------------------------------------------------------------------
    # Knowledge articles: FAQ facts, then one Policy article per rule (fixed order, see the contract)
    # ------------------------------------------------------------------------------------------
    def _article(self, title: str, summary: str, body: str, kind: str, rule: dict[str, Any]) -> str:
        url = _slug(title)
        while url in self._urls:
            url += "-2"
        self._urls.add(url)
        return self.add("Knowledge__kav", Title=title, Summary=summary, FAQ_Answer__c=body, UrlName=url,
                        ArticleType__c=kind, PolicyRule__c=json.dumps(rule))

    def knowledge(self) -> None:
        rng = self.rng("knowledge")
        self._urls: set[str] = set()
        for title, _, facts in T.GENERAL_FAQS:
            self._faq(rng, title, f"Answers to common questions about {title.lower()}.", facts, {})
        for p in self.products:
            self._faq(rng, f"{p['name']}: frequently asked questions",
                      f"Specifications and warranty of the {p['name']}.", T.PRODUCT_FACTS[p["family"]],
                      {"p": p["name"]})
        self.rules = self._make_rules(rng)
        self._policy_articles(rng)

    def _faq(self, rng: random.Random, title: str, summary: str,
             facts: tuple[tuple[str, tuple[str, ...], str], ...], names: dict[str, str]) -> None:
        """One FAQ article; each fact's answer appears verbatim in the body."""
        out, sentences = [], []
        for question, choices, sentence in facts:
            answer = rng.choice(choices)
            out.append({"question": question.format(**names), "answer": answer})
            sentences.append(sentence.format(a=answer, **names))
        self._article(title, summary, " ".join(sentences), "FAQ", {"type": "faq", "facts": out})

    def _make_rules(self, rng: random.Random) -> Rules:
        ids = [p["id"] for p in self.products]
        family = {p["id"]: p["family"] for p in self.products}
        name = {p["id"]: p["name"] for p in self.products}
        tiers: dict[str, list[tuple[int, int]]] = {}
        for fam in T.FAMILIES:
            if fam not in family.values():
                continue
            pct, tiers[fam] = rng.choice((0, 2, 5)), []
            for min_qty in rng.choice(((1, 10, 50, 100), (1, 5, 20), (1, 20, 100), (1, 10, 25, 50))):
                tiers[fam].append((min_qty, pct))
                pct += rng.choice((3, 5, 5, 10))
        limits = {pid: rng.choice((5, 10, 20, 25, 50)) for pid in rng.sample(ids, max(3, len(ids) // 5))}
        # Bundles: services need a hardware or networking product; P-set and R-set are disjoint so
        # that a requirement never requires something itself.
        pairs = [(p, r) for p in ids for r in ids if p != r]
        rng.shuffle(pairs)
        pairs.sort(key=lambda x: -(family[x[0]] == "Services") - (family[x[1]] in ("Hardware", "Networking")))
        bundles: list[tuple[str, str]] = []
        for p, r in pairs:
            if len(bundles) < max(2, len(ids) // 8) and p not in {b for a in bundles for b in a} \
                    and r not in {a for a, _ in bundles}:
                bundles.append((p, r))
        # Exclusions: near-duplicates first ("X" and "X Pro" never share a quote).
        near = [(a, b) for a in ids for b in ids if a < b and (name[b].startswith(name[a] + " ")
                                                             or name[a].startswith(name[b] + " "))]
        others = [(a, b) for a in ids for b in ids if a < b]
        rng.shuffle(near)
        rng.shuffle(others)
        taken = {frozenset(b) for b in bundles}
        exclusions: list[tuple[str, str]] = []
        for pair in near + others:
            if len(exclusions) < max(2, len(ids) // 8) and frozenset(pair) not in taken:
                exclusions.append(pair)
                taken.add(frozenset(pair))
        return Rules(tiers, limits, bundles, exclusions, family)

    def _policy_articles(self, rng: random.Random) -> None:
        R = self.rules
        name = {p["id"]: p["name"] for p in self.products}
        for fam, tiers in R.tiers.items():
            parts = []
            for k, (lo, pct) in enumerate(tiers):
                span = f"{lo} to {tiers[k + 1][0] - 1} units" if k + 1 < len(tiers) else f"{lo} units or more"
                parts.append(f"{span}: at most {pct}% discount")
            body = (f"The discount on a quote line for a {fam} product may not exceed the maximum for the "
                    f"line's quantity: {'; '.join(parts)}. A line above its maximum breaks this policy.")
            self._article(f"Discount policy: {fam} products", f"Volume discount tiers for {fam} products.",
                          body, "Policy", {"type": "discount_tiers", "family": fam,
                                           "tiers": [list(t) for t in tiers]})
        for pid, n in R.qty_limit.items():
            self._article(f"Quantity limit: {name[pid]}", f"Maximum quantity of {name[pid]} per quote line.",
                          f"A quote line may include at most {n} units of {name[pid]} (product {pid}). "
                          f"A line with more than {n} units breaks this policy.", "Policy",
                          {"type": "quantity_limit", "product_id": pid, "max_quantity": n})
        for p, r in R.bundles:
            self._article(f"Bundle requirement: {name[p]}", f"{name[p]} must be quoted with {name[r]}.",
                          f"{name[p]} (product {p}) must be quoted together with {name[r]} (product {r}). "
                          f"A quote that includes {name[p]} but not {name[r]} breaks this policy.", "Policy",
                          {"type": "bundle", "product_id": p, "requires_product_id": r})
        for a, b in R.exclusions:
            self._article(f"Product exclusion: {name[a]} and {name[b]}",
                          f"{name[a]} and {name[b]} cannot share a quote.",
                          f"{name[a]} (product {a}) and {name[b]} (product {b}) cannot be sold on the same "
                          f"quote. A quote that includes both breaks this policy.", "Policy",
                          {"type": "exclusion", "product_ids": [a, b]})
        self._solution_articles()
        self._sales_policies(rng)

    def _solution_articles(self) -> None:
        self.allowed: list[tuple[str, ...]] = []
        for iid, (iname, _, _, allowed, _) in zip(self.issue_ids, T.ISSUES, strict=True):
            self.allowed.append(allowed)
            self._article(f"Resolution policy: {iname}", f"Solutions agents may offer for {iname.lower()}.",
                          f"For cases about {iname.lower()} (issue {iid}), agents may offer only these "
                          f"solutions: {'; '.join(allowed)}. Offering any other solution violates this policy.",
                          "Policy", {"type": "allowed_solutions", "issue_id": iid, "solutions": list(allowed)})
        every = [s for _, _, _, allowed, _ in T.ISSUES for s in allowed] + list(T.TEMPTING_SOLUTIONS)
        self.all_solutions = list(dict.fromkeys(every))

    def _sales_policies(self, rng: random.Random) -> None:
        titles = [t for t in T.AUTHORITY_TITLES if t in set(rng.sample(T.AUTHORITY_TITLES, 5))]
        needs = [f for f in T.FAMILIES if f in set(rng.sample(T.FAMILIES, 3))]
        budget_min, timeline_max = rng.choice((40000, 50000, 75000)), rng.choice((60, 90, 120))
        self.bant = {"type": "bant", "budget_min": budget_min, "authority_titles": titles,
                     "need_families": needs, "timeline_max_days": timeline_max}
        self._article("Lead qualification (BANT)", "The four criteria a qualified lead meets.",
                      f"A lead is qualified when it meets all four BANT criteria. Budget: at least "
                      f"{T.money(budget_min)}. Authority: the contact's title is one of "
                      f"{', '.join(titles)}. Need: the need is for {', '.join(needs)} products. Timeline: "
                      f"the purchase happens within {timeline_max} days. A lead that misses a "
                      f"criterion fails that factor.", "Policy", self.bant)
        months = rng.choice((3, 6))
        self._article("Case routing policy", "How new cases are assigned to support agents.",
                      f"A new case goes to a support agent associated with the territory whose states include "
                      f"the shipping state of the case's account. Among them, choose the agent who closed the "
                      f"most cases with the same issue in the {months} complete months before the current "
                      f"month. Ties go to the agent with the fewest open cases, then to the lowest User Id.",
                      "Policy", {"type": "case_routing", "lookback_months": months})
        self._article("Lead routing policy", "How new leads are assigned to sales reps.",
                      "A new lead goes to a sales rep associated with the territory whose states include the "
                      "lead's state. Among them, choose the rep with the highest conversion rate (converted "
                      "leads divided by leads owned). Ties go to the rep with the fewest unconverted leads, "
                      "then to the lowest User Id.", "Policy", {"type": "lead_routing"})
        stages = {s: list(T.STAGE_ACTIVITIES[s]) for s in T.STAGES}
        listing = " ".join(f"{s}: {', '.join(subj)}." for s, subj in stages.items())
        self._article("Sales stage activities", "Which activities belong to each opportunity stage.",
                      "Each opportunity stage has its own activities. " + listing + " An opportunity is in "
                      "the latest stage for which it has a completed activity. A task that has not started "
                      "should belong to the opportunity's stage or the next one.", "Policy",
                      {"type": "stage_activities", "stages": stages})

    # ------------------------------------------------------------------------------------------
    # Cases, their history, emails and chats
    # ------------------------------------------------------------------------------------------
    def _case_times(self, rng: random.Random) -> list[tuple[dt.datetime, int, bool]]:
        """(created, product index, is in the new unassigned pool), sorted by creation time.

        Spiky products get extra cases in their spike month of every complete year-month in range,
        at least 8 and about 3x their usual monthly count, so the month stands out."""
        s, n_months = self.size, 30
        pop = [p["popularity"] for p in self.products]
        out: list[tuple[dt.datetime, int, bool]] = []
        for i, p in enumerate(self.products):
            if p["spike"] is None:
                continue
            extra = max(8, round(3 * s.cases * pop[i] / sum(pop) / n_months))
            for year in range(DATA_START.year, TODAY.year + 1):
                start = dt.date(year, p["spike"], 1)
                end = dt.date(year + start.month // 12, start.month % 12 + 1, 1)
                if start >= DATA_START and end <= TODAY:
                    out += [(_at(rng, _day_between(rng, start, end)), i, False) for _ in range(extra)]
        n_base = max(s.cases // 2, s.cases - len(out))
        for i in rng.choices(range(len(pop)), weights=pop, k=n_base):
            out.append((_at(rng, _day_between(rng, DATA_START, TODAY)), i, False))
        for i in rng.choices(range(len(pop)), weights=pop, k=s.new_cases):
            out.append((_at(rng, TODAY - dt.timedelta(days=rng.randint(1, 3))), i, True))
        out.sort()
        return out

    def cases(self) -> None:
        rng = self.rng("cases")
        for created, product, new in self._case_times(rng):
            self._case(rng, created, product, new)

    def _pick_agent(self, rng: random.Random, agents: list[_Person], issue: int) -> _Person:
        """Agents get more cases of the issues they know (routing by expertise)."""
        return rng.choices(agents, weights=[6.0 if issue in a.traits["expertise"] else 1.0 for a in agents])[0]

    def _case(self, rng: random.Random, created: dt.datetime, pi: int, new: bool) -> None:
        p = self.products[pi]
        bought, item, a = self._purchase_before(rng, pi, created)
        acc = self.account_list[a]
        contact, cfirst, cemail = rng.choice(acc["contacts"])
        issues, weights = p["issues"]
        ii = rng.choices(issues, weights=weights)[0]
        iname, symptoms = T.ISSUES[ii][0], T.ISSUES[ii][4]
        symptom = rng.choice(symptoms)
        origin = rng.choices(("Email", "Phone", "Web", "Chat"), weights=(4, 2, 2, 2))[0]
        common = dict(AccountId=acc["id"], ContactId=contact, IssueId__c=self.issue_ids[ii], OrderItemId__c=item,
                      Priority=rng.choices(("Low", "Medium", "High"), weights=(3, 5, 2))[0], Origin=origin,
                      Subject=T.case_subject(rng, p["name"], iname),
                      Description=T.case_description(rng, p["name"], symptom, bought), CreatedDate=_ts(created))
        if new:   # the routing pool: nobody owns it yet, so no assignment history
            cid = self.add("Case", OwnerId=None, Status="New", **common)
            self.add("CaseHistory__c", CaseId__c=cid, Field__c="Case Creation", NewValue__c="New",
                     CreatedDate=_ts(created))
            self.add("EmailMessage", ParentId=cid, Subject=common["Subject"], FromAddress=cemail,
                     ToAddress="support@seccrm-demo.com", MessageDate=_ts(created),
                     TextBody=T.customer_email(rng, cfirst, p["name"], symptom))
            return
        agents = self.terr_agents[self.state_terr[acc["state"]]]
        owners = [self._pick_agent(rng, agents, ii)]
        days = owners[0].traits["speed"] * self.state_factor[acc["state"]] * rng.lognormvariate(0, 0.45)
        while len(owners) < 3 and rng.random() < owners[-1].traits["transfer"]:
            others = [x for x in agents if x is not owners[-1]] or [x for x in self.agents if x is not owners[-1]]
            owners.append(self._pick_agent(rng, others, ii))
            days *= 1.5                                    # a hand-over costs time
        closed = (created + dt.timedelta(days=max(days, 0.1))).replace(microsecond=0)
        now = dt.datetime(TODAY.year, TODAY.month, TODAY.day)
        # A backlog: a quarter of the last 45 days' cases are still being worked on.
        stalled = (now - created).days < 45 and rng.random() < 0.25
        is_closed = closed < now and not stalled
        solution = None
        if is_closed:
            allowed = self.allowed[ii]
            breach = rng.random() < owners[-1].traits["breach"]
            solution = rng.choice([x for x in self.all_solutions if x not in allowed] if breach else allowed)
        status = "Closed" if is_closed else ("Escalated" if len(owners) > 1 or rng.random() < 0.2 else "Working")
        cid = self.add("Case", OwnerId=owners[-1].id, Status=status, ClosedDate=_ts(closed) if is_closed else None,
                       OfferedSolution__c=solution, **common)
        self._case_history(rng, cid, created, min(closed, now), owners, is_closed)
        agent = owners[-1]
        if origin == "Chat":
            self.add("LiveChatTranscript", CaseId=cid, AccountId=acc["id"], ContactId=contact, OwnerId=agent.id,
                     Body=T.chat_body(rng, cfirst, agent.first, p["name"], symptom, solution),
                     EndTime=_ts(created + dt.timedelta(minutes=rng.randint(8, 40))))
            return
        self.add("EmailMessage", ParentId=cid, Subject=common["Subject"], FromAddress=cemail,
                 ToAddress="support@seccrm-demo.com", MessageDate=_ts(created),
                 TextBody=T.customer_email(rng, cfirst, p["name"], symptom))
        if solution is not None:
            self.add("EmailMessage", ParentId=cid, Subject="RE: " + common["Subject"], FromAddress=agent.email,
                     ToAddress=cemail, MessageDate=_ts(created + (closed - created) * 0.8),
                     TextBody=T.agent_email(rng, cfirst, agent.first, iname, solution))

    def _case_history(self, rng: random.Random, cid: str, created: dt.datetime, end: dt.datetime,
                      owners: list[_Person], is_closed: bool) -> None:
        """Creation, the first assignment a few minutes later, transfers spread over the case's life
        (before ``end``, never in the future), then the closing row at ClosedDate."""
        rows: list[tuple[str, str | None, str, dt.datetime]] = [
                ("Case Creation", None, "New", created),
                ("Owner Assignment", None, owners[0].id, created + dt.timedelta(seconds=rng.randint(60, 900)))]
        for k in range(1, len(owners)):
            rows.append(("Owner Assignment", owners[k - 1].id, owners[k].id,
                         (created + (end - created) * (k / len(owners))).replace(microsecond=0)))
        if is_closed:
            rows.append(("Case Closed", "Working", "Closed", end))
        for field_, old, new, when in rows:
            self.add("CaseHistory__c", CaseId__c=cid, Field__c=field_, OldValue__c=old, NewValue__c=new,
                     CreatedDate=_ts(when))

    # ------------------------------------------------------------------------------------------
    # Leads and their discovery calls
    # ------------------------------------------------------------------------------------------
    def leads(self) -> None:
        rng, s = self.rng("leads"), self.size
        days = [(_day_between(rng, DATA_START, TODAY), False) for _ in range(s.leads)]
        days += [(TODAY - dt.timedelta(days=rng.randint(1, 3)), True) for _ in range(s.new_leads)]
        days.sort()
        for day, new in days:
            self._lead(rng, day, new)

    def _lead(self, rng: random.Random, day: dt.date, new: bool) -> None:
        first, last = rng.choice(T.FIRST_NAMES), rng.choice(T.LAST_NAMES)
        company = f"{rng.choice(T.COMPANY_WORDS)} {rng.choice(T.COMPANY_SUFFIXES)}"
        title = rng.choice(T.AUTHORITY_TITLES if rng.random() < 0.55 else T.OTHER_TITLES)
        state = rng.choice(self.states)
        budget = float(rng.randrange(2, 41) * 5000)
        timeline = rng.choice((30, 45, 60, 75, 90, 120, 150, 180, 270))
        need = rng.choice(T.FAMILIES)
        fields = dict(FirstName=first, LastName=last, Company=company, Title=title, State=state,
                      Email=f"{first}.{last}@{_slug(company)}.com".lower(), Industry=rng.choice(T.INDUSTRIES),
                      LeadSource=rng.choice(T.LEAD_SOURCES), CreatedDate=_ts(_at(rng, day)),
                      Budget__c=budget, TimelineDays__c=timeline, NeedFamily__c=need)
        if new:   # the routing pool
            self.add("Lead", Status="Open - Not Contacted", OwnerId=None, IsConverted=0, **fields)
            return
        rep = self._pick_rep(rng, state)
        converted_on = day + dt.timedelta(days=rng.randint(7, 60))
        age = (TODAY - day).days
        if rng.random() < rep.traits["conversion"] and converted_on < TODAY:
            status, conv = "Closed - Converted", converted_on.isoformat()
        else:
            conv = None
            status = ("Closed - Not Converted" if age > 60 and rng.random() < 0.7
                      else "Working - Contacted" if age > 7 else "Open - Not Contacted")
        lid = self.add("Lead", Status=status, OwnerId=rep.id, IsConverted=int(conv is not None),
                       ConvertedDate=conv, **fields)
        if rng.random() < 0.65:
            call = min(day + dt.timedelta(days=rng.randint(1, 10)), TODAY - dt.timedelta(days=1))
            self.add("VoiceCallTranscript__c", LeadId__c=lid, OwnerId__c=rep.id, CreatedDate=_ts(_at(rng, call)),
                     TranscriptBody__c=T.lead_call(rng, rep.first, first, title, company, budget, need, timeline))

    # ------------------------------------------------------------------------------------------
    # Opportunities: line items, contracts, stage tasks, sales calls, quotes
    # ------------------------------------------------------------------------------------------
    def opportunities(self) -> None:
        rng = self.rng("opportunities")
        quotes: list[str] = []
        # A live pipeline: 40% of opportunities were created in the last 4 months, so many are still
        # open (activity_priority and wrong_stage_rectification need open ones).
        n = self.size.opportunities
        recent = round(0.4 * n)
        days = [_day_between(rng, DATA_START, TODAY) for _ in range(n - recent)]
        days += [_day_between(rng, TODAY - dt.timedelta(days=120), TODAY) for _ in range(recent)]
        for day in sorted(days):
            self._opportunity(rng, day, quotes)
        self._quote_lines(self.rng("quote_lines"), quotes)

    def _opportunity(self, rng: random.Random, day: dt.date, quotes: list[str]) -> None:
        acc = rng.choice(self.account_list)
        rep = self._pick_rep(rng, acc["state"])
        cycle = max(7.0, rep.traits["cycle"] * rng.lognormvariate(0, 0.35))
        close_day = day + dt.timedelta(days=round(cycle))
        won = False
        if close_day < TODAY:
            stage, won = 4, rng.random() < 0.6
        else:   # still open: how far along it is follows the elapsed share of its cycle
            stage = min(3, int(4 * (TODAY - day).days / cycle))
        shown, wrong = stage, False
        if stage < 4 and rng.random() < 0.2:              # wrong_stage_rectification targets
            shown, wrong = rng.choice([x for x in range(4) if x != stage]), True
        pop = [p["popularity"] for p in self.products]
        items = list(dict.fromkeys(rng.choices(range(len(self.products)), weights=pop, k=rng.randint(1, 3))))
        qty = [float(rng.choice((1, 2, 5, 10, 20, 50))) for _ in items]
        amount = round(sum(q * self.products[i]["price"] for q, i in zip(qty, items, strict=True)), 2)
        contract = None
        if won:
            contract = self.add(
                "Contract", AccountId=acc["id"], Status="Activated",
                StartDate=(close_day + dt.timedelta(days=rng.randint(1, 14))).isoformat(),
                ContractTerm=rng.choice((12, 24, 36)), CompanySignedDate=close_day.isoformat(),
                CustomerSignedDate=(close_day - dt.timedelta(days=rng.randint(0, 5))).isoformat(),
                CreatedDate=_ts(_at(rng, max(day, close_day - dt.timedelta(days=5)))))
        name = f"{acc['name']} - {self.products[items[0]]['name']}"
        oid = self.add("Opportunity", Name=name, AccountId=acc["id"], OwnerId=rep.id, StageName=T.STAGES[shown],
                       Amount=amount, Probability=(10.0, 25.0, 50.0, 75.0, 100.0 if won else 0.0)[stage],
                       CloseDate=close_day.isoformat(), ContractID__c=contract, CreatedDate=_ts(_at(rng, day)))
        for i, q in zip(items, qty, strict=True):
            p = self.products[i]
            self.add("OpportunityLineItem", OpportunityId=oid, Product2Id=p["id"], PricebookEntryId=p["pbe"],
                     Quantity=q, UnitPrice=p["price"], TotalPrice=round(q * p["price"], 2))
        last = min(close_day, TODAY - dt.timedelta(days=1))
        self._stage_tasks(rng, oid, rep, name, day, last, stage, wrong)
        self._sales_calls(rng, oid, rep, acc, day, last)
        if stage >= 2:
            for _ in range(2 if rng.random() < 0.15 else 1):
                qday = _day_between(rng, day, last + dt.timedelta(days=1))
                quotes.append(self.add(
                    "Quote", Name=f"Q-{len(quotes) + 1:05d} {acc['name']}", OpportunityId=oid, AccountId=acc["id"],
                    Status=rng.choices(("Draft", "Needs Review", "Approved", "Rejected"), weights=(3, 3, 3, 1))[0],
                    Description=f"Quote for {name}.", CreatedDate=_ts(_at(rng, qday)),
                    ExpirationDate=(qday + dt.timedelta(days=30)).isoformat()))

    def _stage_tasks(self, rng: random.Random, oid: str, rep: _Person, name: str, start: dt.date,
                     last: dt.date, stage: int, wrong: bool) -> None:
        """Completed tasks up to the true stage (at least one in it); open tasks that fit the stage
        (its subjects or the next stage's); for ~30% of correctly staged opportunities, 'Not Started'
        tasks that do not fit. Wrongly staged ones get no open tasks, so activity_priority stays
        unambiguous on them."""
        used: set[str] = set()

        def task(subject: str, status: str, when: dt.date) -> None:
            used.add(subject)
            self.add("Task", WhatId=oid, OwnerId=rep.id, Subject=subject, Status=status,
                     Priority=rng.choices(("Low", "Normal", "High"), weights=(2, 5, 2))[0],
                     ActivityDate=when.isoformat(), Description=f"{subject} for {name}.")

        span = max(1, (last - start).days)
        for st in range(stage + 1):
            subjects = T.STAGE_ACTIVITIES[T.STAGES[st]]
            for subj in rng.sample(subjects, 1 if st < stage else rng.randint(1, 2)):
                task(subj, "Completed", start + dt.timedelta(days=int(span * (st + rng.random()) / (stage + 1))))
        if wrong:
            return
        ahead = max(last, TODAY)
        fits = [s for st in (stage, stage + 1) if st < len(T.STAGES)
                for s in T.STAGE_ACTIVITIES[T.STAGES[st]] if s not in used]
        for subj in rng.sample(fits, min(len(fits), rng.randint(0, 2))):
            task(subj, rng.choice(("Not Started", "In Progress")), ahead + dt.timedelta(days=rng.randint(1, 30)))
        if rng.random() < 0.3:
            misfits = [s for st, stg in enumerate(T.STAGES) if st not in (stage, stage + 1)
                       for s in T.STAGE_ACTIVITIES[stg] if s not in used]
            for subj in rng.sample(misfits, rng.randint(1, 2)):
                task(subj, "Not Started", ahead + dt.timedelta(days=rng.randint(1, 30)))

    def _sales_calls(self, rng: random.Random, oid: str, rep: _Person, acc: dict[str, Any], start: dt.date,
                     last: dt.date) -> None:
        n = rng.choices((0, 1, 2), weights=(45, 40, 15))[0]
        for _ in range(n):
            comps = rng.sample(T.COMPETITORS, rng.choice((1, 1, 2)))
            topics = rng.sample(T.TOPICS, rng.randint(1, 3))
            _, cfirst, _ = rng.choice(acc["contacts"])
            self.add("VoiceCallTranscript__c", OpportunityId__c=oid, OwnerId__c=rep.id,
                     CreatedDate=_ts(_at(rng, _day_between(rng, start, last + dt.timedelta(days=1)))),
                     TranscriptBody__c=T.opportunity_call(rng, rep.first, cfirst, comps, topics),
                     Competitors__c=", ".join(comps), Topics__c=", ".join(topics))

    # ------------------------------------------------------------------------------------------
    # Quote lines: a fixed share of quotes breaks a discount tier, another a configuration rule
    # ------------------------------------------------------------------------------------------
    def _quote_lines(self, rng: random.Random, quotes: list[str]) -> None:
        n = len(quotes)
        bad_discount = set(rng.sample(range(n), round(rng.uniform(0.35, 0.45) * n)))
        bad_config = set(rng.sample(range(n), round(rng.uniform(0.35, 0.45) * n)))
        price = {p["id"]: (p["price"], p["pbe"]) for p in self.products}
        for k, qid in enumerate(quotes):
            for pid, q, d in self._quote_config(rng, k in bad_discount, k in bad_config):
                unit, pbe = price[pid]
                self.add("QuoteLineItem", QuoteId=qid, Product2Id=pid, PricebookEntryId=pbe, Quantity=q,
                         UnitPrice=unit, Discount=d, TotalPrice=round(q * unit * (1 - d / 100), 2))

    def _quote_config(self, rng: random.Random, bad_discount: bool, bad_config: bool) -> list[list[Any]]:
        """1-6 lines [product, quantity, discount] that break exactly the asked kinds of rule. About a
        third of the rule-breaking quotes break two configuration rules, or the tiers on two lines, so
        that the POLICY tasks' precedence order matters."""
        n_cfg = (2 if rng.random() < 0.35 else 1) if bad_config else 0
        n_disc = (2 if rng.random() < 0.3 else 1) if bad_discount else 0
        for _ in range(200):          # a draw whose seeded rules cancel out is redrawn
            lines = self._draw_quote(rng, n_cfg, n_disc)
            broken = self.rules.broken([tuple(x) for x in lines])
            n_broken_cfg = sum(k != "discount_tiers" for k, _ in broken)
            if (len(broken) > n_broken_cfg) == bad_discount and n_broken_cfg >= n_cfg \
                    and (n_broken_cfg > 0) == bad_config:
                return lines
        raise RuntimeError(f"could not draw a quote breaking {n_cfg} configuration rules; too few rules?")

    def _draw_quote(self, rng: random.Random, n_cfg: int, n_disc: int) -> list[list[Any]]:
        R = self.rules
        requires = dict(R.bundles)
        excl: dict[str, set[str]] = {}
        for a, b in R.exclusions:
            excl.setdefault(a, set()).add(b)
            excl.setdefault(b, set()).add(a)
        chosen: list[str] = []
        banned: set[str] = set()
        over: set[str] = set()
        for _ in range(n_cfg):        # seed the rule breaks first
            kind = rng.choice(("quantity", "bundle", "exclusion"))
            if kind == "quantity":
                over.add(rng.choice(sorted(R.qty_limit)))
                seed = sorted(over)
            elif kind == "bundle":
                p, r = rng.choice(R.bundles)
                seed = [p]
                banned.add(r)
            else:
                seed = list(rng.choice(R.exclusions))
            chosen += [x for x in seed if x not in chosen]
        pool = [p["id"] for p in self.products]
        rng.shuffle(pool)
        k = rng.choice((1, 2, 2, 3, 3, 4, 5, 6))
        for c in list(chosen) + pool:      # the seeded products' own requirements first
            if c not in chosen and len(chosen) >= k:
                continue
            group = [c] if c not in chosen else []
            need = requires.get(c)
            if need is not None and need not in chosen:
                group.append(need)
            members = set(chosen)
            if (any(g in banned or excl.get(g, set()) & (members | set(group)) for g in group)
                    or len(chosen) + len(group) > 6):
                continue
            chosen.extend(group)
        lines: list[list[Any]] = []
        for pid in chosen[:6]:
            q = rng.choice((1, 1, 2, 3, 5, 8, 10, 12, 15, 20, 25, 30, 50, 60, 100, 120))
            limit = R.qty_limit.get(pid)
            if pid in over and limit is not None:
                q = limit + rng.randint(1, limit)
            elif limit is not None:
                q = min(q, limit)
            top = R.max_discount(pid, q)
            lines.append([pid, float(q), 0.0 if rng.random() < 0.4 else float(rng.randint(0, top))])
        for line in rng.sample(lines, min(n_disc, len(lines))):
            line[2] = float(min(100, R.max_discount(line[0], line[1]) + rng.randint(1, 10)))
        return lines


# ----------------------------------------------------------------------------------------------
# Writing and opening
# ----------------------------------------------------------------------------------------------
def _write(gen: _Generator, conn: sqlite3.Connection) -> None:
    """Schema, rows in table order, indexes, meta: one transaction, fixed order, no timestamps."""
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    create_schema(conn)
    for table, rows in gen.rows.items():
        marks = ", ".join("?" * len(TABLES[table]))
        conn.executemany(f"INSERT INTO {qi(table)} VALUES ({marks})", rows)
    create_indexes(conn)
    meta = {"seed": str(gen.seed), "size": gen.size.name, "today": TODAY.isoformat(),
            "version": GENERATOR_VERSION, "data_start": DATA_START.isoformat()}
    conn.executemany(f"INSERT INTO {qi(META_TABLE)} VALUES (?, ?)", sorted(meta.items()))
    conn.execute("COMMIT")
    conn.execute("VACUUM")


def build_org(path: str | os.PathLike[str], seed: int = 0, size: str = "small") -> Path:
    """Generate the org for ``seed`` and ``size`` (a key of ``SIZES``) into the SQLite file ``path``.

    Deterministic: the same (seed, size) gives a byte-identical file. The file is written next to
    ``path`` under a temporary name and moved into place atomically; an existing file is replaced.
    Returns the path.
    """
    if size not in SIZES:
        raise ValueError(f"unknown org size {size!r}; known: {', '.join(SIZES)}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    gen = _Generator(seed, SIZES[size])
    gen.run()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            _write(gen, conn)
        finally:
            conn.close()
        os.chmod(tmp, 0o644)               # mkstemp makes it private; an org is meant to be shared
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


def open_org(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open an org database read-only (``mode=ro``: no write can reach the file).

    Raises FileNotFoundError when there is no file, ValueError when the file is not an org built by
    ``build_org`` (not SQLite, or tables missing).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no org database at {p}: build one with seccrm.org.build_org(path) "
                                f"or `seccrm build --out DIR`")
    conn = sqlite3.connect(p.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as e:
        conn.close()
        raise ValueError(f"{p} is not an org database (not SQLite: {e})") from None
    missing = [t for t in [*TABLES, META_TABLE] if t not in names]
    if missing:
        conn.close()
        raise ValueError(f"{p} is not an org database: missing table(s) {', '.join(missing)}; "
                         f"rebuild it with seccrm.org.build_org")
    return conn
