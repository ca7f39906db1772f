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
import json
import math
import os
import random
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from seccrm.world.org import text as T
from seccrm.world.org.activity import ActivitySections
from seccrm.world.org.common import (
    DATA_START,
    ORDERS_START,
    SIZES,
    TODAY,
    OrgSize,
    Person,
    at,
    day_between,
    slug,
    spread,
    stable_seed,
    ts,
)
from seccrm.world.org.ids import make_id
from seccrm.world.org.rules import make_rules, rule_articles
from seccrm.world.org.schema import ID_PREFIXES, META_TABLE, STAGES, TABLES, create_indexes, create_schema, qi

GENERATOR_VERSION = "1"
SUPPORT, SALES = "Support Agent", "Sales Rep"


class _Generator(ActivitySections):
    """Collects the rows of every table; one method per section, run in a fixed order (the case,
    lead and opportunity sections live in ``seccrm.world.org.activity``)."""

    def __init__(self, seed: int, size: OrgSize):
        self.seed, self.size = seed, size
        self.rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in TABLES}
        self._cols = {t: [f for f, _ in fs] for t, fs in TABLES.items()}
        self._colset = {t: set(c) for t, c in self._cols.items()}
        self._count = {t: 0 for t in TABLES}

    def rng(self, section: str) -> random.Random:
        return random.Random(stable_seed(self.seed, section))

    def add(self, table: str, **fields: Any) -> str:
        """Append one row (fields by name; the rest NULL) and return its new Id."""
        unknown = fields.keys() - self._colset[table]
        if unknown:
            raise KeyError(f"{table} has no field(s) {sorted(unknown)}")
        self._count[table] += 1
        fields["Id"] = rid = make_id(ID_PREFIXES[table], self._count[table])
        self.rows[table].append(tuple(map(fields.get, self._cols[table])))
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
        speed = spread(rng, 1.0, 2.8, s.support_agents)           # mean handle days: ~3x spread
        transfer = spread(rng, 0.02, 0.30, s.support_agents)
        breachers = set(rng.sample(range(s.support_agents), math.ceil(0.3 * s.support_agents)))
        volume = spread(rng, 0.5, 2.0, s.sales_reps)
        cycle = spread(rng, 25.0, 110.0, s.sales_reps)             # mean days to contract signature
        conversion = spread(rng, 0.12, 0.60, s.sales_reps)
        self.agents: list[Person] = []
        self.reps: list[Person] = []
        for i, (first, last) in enumerate(names):
            role = SUPPORT if i < s.support_agents else SALES
            uid = self.add("User", FirstName=first, LastName=last, Name=f"{first} {last}",
                           Email=f"{first}.{last}@seccrm-demo.com".lower(), Alias=(first[0] + last[:4]).lower(),
                           UserRole=role, IsActive=1, CreatedDate=ts(at(rng, day_between(
                               rng, dt.date(2021, 1, 1), dt.date(2022, 6, 1)))))
            p = Person(uid, first, role, f"{first}.{last}@seccrm-demo.com".lower())
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

    def _pick_rep(self, rng: random.Random, state: str) -> Person:
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
        factors = sorted(spread(rng, 0.6, 1.7, len(self.states)))
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
                           CreatedDate=ts(at(rng, day_between(rng, dt.date(2020, 1, 1), ORDERS_START))))
            self.account_list.append({"id": aid, "name": name, "state": state, "domain": slug(name) + ".com",
                                      "contacts": []})
        for acc in self.account_list:
            for _ in range(rng.randint(*s.contacts_per_account)):
                first, last = rng.choice(T.FIRST_NAMES), rng.choice(T.LAST_NAMES)
                email = f"{first}.{last}@{acc['domain']}".lower()
                cid = self.add("Contact", FirstName=first, LastName=last, Email=email,
                               Title=rng.choice(T.AUTHORITY_TITLES + T.OTHER_TITLES), AccountId=acc["id"],
                               CreatedDate=ts(at(rng, day_between(rng, dt.date(2020, 6, 1), ORDERS_START))))
                acc["contacts"].append((cid, first, email))

    # ------------------------------------------------------------------------------------------
    # Orders: every product is bought early on, so every case has a purchase before it
    # ------------------------------------------------------------------------------------------
    def orders(self) -> None:
        rng, s = self.rng("orders"), self.size
        early_end = ORDERS_START + dt.timedelta(days=90)
        specs: list[tuple[dt.date, list[int]]] = [
            (day_between(rng, ORDERS_START, early_end), [i]) for i in range(len(self.products))]
        pop = [p["popularity"] for p in self.products]
        for _ in range(max(0, s.orders - len(specs))):
            k = rng.choice((1, 1, 2, 2, 3, 4))
            items = list(dict.fromkeys(rng.choices(range(len(self.products)), weights=pop, k=k)))
            specs.append((day_between(rng, ORDERS_START, TODAY), items))
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
        url = slug(title)
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
        self.rules = make_rules(rng, self.products)
        names = {p["id"]: p["name"] for p in self.products}
        for title, summary, body, rule in rule_articles(self.rules, names):
            self._article(title, summary, body, "Policy", rule)
        self._solution_articles()
        self._sales_policies(rng)

    def _faq(self, rng: random.Random, title: str, summary: str,
             facts: tuple[tuple[str, tuple[str, ...], str], ...], names: dict[str, str]) -> None:
        """One FAQ article; each fact's answer appears verbatim in the body."""
        out, sentences = [], []
        for question, choices, sentence in facts:
            answer = rng.choice(choices)
            out.append({"question": question.format(**names), "answer": answer})
            sentences.append(sentence.format(a=answer, **names))
        self._article(title, summary, " ".join(sentences), "FAQ", {"type": "faq", "facts": out})


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
        stages = {s: list(T.STAGE_ACTIVITIES[s]) for s in STAGES}
        listing = " ".join(f"{s}: {', '.join(subj)}." for s, subj in stages.items())
        self._article("Sales stage activities", "Which activities belong to each opportunity stage.",
                      "Each opportunity stage has its own activities. " + listing + " An opportunity is in "
                      "the latest stage for which it has a completed activity. A task that has not started "
                      "should belong to the opportunity's stage or the next one.", "Policy",
                      {"type": "stage_activities", "stages": stages})



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
        raise FileNotFoundError(f"no org database at {p}: build one with seccrm.world.org.build_org(path) "
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
                         f"rebuild it with seccrm.world.org.build_org")
    return conn
