"""The four POLICY tasks: does a record obey the policy an article states, and if not, which article?

- ``lead_qualification``: which BANT factors (Budget, Authority, Need, Timeline; easy names two) a lead
  fails, read from its call transcripts against the BANT article; ``None`` when it meets them.
- ``quote_approval`` (held out): the ``discount_tiers`` article a quote line's Discount exceeds.
  Easy asks about one line of the quote, medium and hard about the whole quote.
- ``invalid_config`` (held out): the quantity-limit, bundle or exclusion article a quote breaks.
- ``policy_violation_identification`` (held out, "Solution Violation"): the ``allowed_solutions``
  article of the case's issue when the agent offered a solution that article does not allow.

Gold answers come from the database: the records by SQL and the rules from the articles'
``PolicyRule__c`` JSON (docs/org-contract.md). The model only ever sees the articles' Id, Title and
``FAQ_Answer__c`` text, never the JSON, nor the fields the gold is computed from
(``Lead.Budget__c``, ``Case.OfferedSolution__c``, ...): those facts reach it through transcripts.
When several rules break, the answer is the first by the contract's precedence (discount tiers, then
quantity limits, then bundles, then exclusions; within a type, the lowest article Id). Each quote
task checks its own rule types only (the question says so), so within a task precedence reduces to
"lowest Id" for discounts and to "limits, bundles, exclusions, then lowest Id" for configuration;
articles of the other kind appear at hard as distractors.

How an instance is drawn: the generator first decides whether the gold will be ``None`` (with
probability ``NONE_DRAW_RATE``, the same at every level; the builder then redraws instances to the suite's
exact None share), then draws a record of that class from the level's candidate pool. Pools are built
once per org: easy pools hold the simplest records (one line, one relevant rule, one chat, one call);
hard pools hold the upper half by a per-task hardness score (quantities at tier boundaries and discounts
near the cap, several rule types on one quote, values near BANT thresholds, solutions that another
issue's article allows). A pool is not narrowed below ``MIN_POOL`` records where the org allows, so that
instances rarely repeat. Every article the gold depends on is always shown, so the gold is decidable
from the prompt; the level decides how many distractors surround it. The three tasks that answer with an
article Id show at least ``MIN_ARTICLES`` articles at every level (easy: the relevant one among 4
others), in random order, so that no fixed position among the articles shown is a good guess.
"""

from __future__ import annotations

import copy
import json
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Any, TypeVar

from seccrm.world.org.schema import qi
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

# Precedence of rule types when a quote breaks several (docs/org-contract.md, last paragraph).
RULE_ORDER: tuple[str, ...] = ("discount_tiers", "quantity_limit", "bundle", "exclusion")
CONFIG_TYPES: tuple[str, ...] = ("quantity_limit", "bundle", "exclusion")
BANT_FACTORS: tuple[str, ...] = ("Budget", "Authority", "Need", "Timeline")
# Probability that an instance is drawn to have a None gold, the same at every level.
# The fewest articles an article-Id question shows (the relevant ones and distractors together).
MIN_ARTICLES = 5
# A level's pool of records is kept at least this large where the org allows (see _OrgData.draw), so
# that instances of one level rarely repeat a record.
MIN_POOL = 40
EPS = 1e-9  # Discount and Quantity are REAL columns: compare with a tolerance, not ==.

ID_ANSWER = "the Knowledge article Id (starts with ka0)"


# ----------------------------------------------------------------------------------------------
# Articles and the rule checks: pure functions over plain rows, reused by every task below.
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Article:
    """A Policy article: what the model sees (id, title, text) and the rule it states (JSON)."""

    id: str
    title: str
    text: str
    rule: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.rule["type"])

    def shown(self) -> tuple[str, str, str]:
        return (self.id, self.title, self.text)


def first_broken(article_ids: Iterable[str], types: dict[str, str]) -> str | None:
    """The article named when several break: rule type in ``RULE_ORDER``, then lowest Id."""
    return min(article_ids, key=lambda a: (RULE_ORDER.index(types[a]), a), default=None)


def applicable_tier(tiers: Sequence[Sequence[float]], quantity: float) -> tuple[float, float]:
    """The ``(min_qty, max_discount_pct)`` tier with the largest ``min_qty <= quantity``.

    >>> applicable_tier([[1, 5], [10, 10], [50, 15]], 10)
    (10, 10)
    """
    ordered = sorted((t[0], t[1]) for t in tiers)
    best = ordered[0]  # the contract makes the first min_qty 1, so every quantity has a tier
    for min_qty, max_pct in ordered:
        if min_qty <= quantity + EPS:
            best = (min_qty, max_pct)
    return best


def check_discounts(lines: Sequence[dict[str, Any]], by_family: dict[str, Article]) -> list[dict[str, Any]]:
    """One audit record per quote line: its tier, the allowed maximum, and whether it breaks it."""
    out = []
    for ln in lines:
        art = by_family.get(ln["Family"])
        rec = {"line": ln["Id"], "product": ln["Product2Id"], "family": ln["Family"],
               "quantity": ln["Quantity"], "discount": ln["Discount"]}
        if art is None:  # a family without a tier article cannot break one
            out.append({**rec, "article": None, "tier_min_qty": None, "max_discount": None, "broken": False})
            continue
        min_qty, max_pct = applicable_tier(art.rule["tiers"], ln["Quantity"])
        out.append({**rec, "article": art.id, "tier_min_qty": min_qty, "max_discount": max_pct,
                    "broken": ln["Discount"] > max_pct + EPS})
    return out


@dataclass
class ConfigIndex:
    """Configuration articles indexed by the product that can make them break."""

    quantity: dict[str, list[Article]] = field(default_factory=lambda: defaultdict(list))
    bundle: dict[str, list[Article]] = field(default_factory=lambda: defaultdict(list))
    bundle_required: dict[str, list[Article]] = field(default_factory=lambda: defaultdict(list))
    exclusion: dict[str, list[Article]] = field(default_factory=lambda: defaultdict(list))

    def add(self, a: Article) -> None:
        r = a.rule
        if a.type == "quantity_limit":
            self.quantity[r["product_id"]].append(a)
        elif a.type == "bundle":
            self.bundle[r["product_id"]].append(a)
            self.bundle_required[r["requires_product_id"]].append(a)
        elif a.type == "exclusion":
            for p in r["product_ids"]:
                self.exclusion[p].append(a)


def check_config(lines: Sequence[dict[str, Any]], idx: ConfigIndex) -> dict[str, Any]:
    """The configuration articles a quote could break, those it breaks (with why), and near misses.

    *Relevant* articles are those whose trigger is on the quote (a limited product, a bundle's main
    product, both excluded products): the gold depends on them, so they are always shown. *Near*
    articles mention a quote product but cannot break (one excluded product, a bundle's required
    product): the best distractors.
    """
    products = {ln["Product2Id"] for ln in lines}
    max_qty: dict[str, float] = defaultdict(float)
    for ln in lines:
        max_qty[ln["Product2Id"]] = max(max_qty[ln["Product2Id"]], ln["Quantity"])
    relevant: dict[str, Article] = {}
    broken: list[dict[str, Any]] = []
    near: dict[str, Article] = {}
    for p in sorted(products):
        for a in idx.quantity.get(p, []):
            relevant[a.id] = a
            if max_qty[p] > a.rule["max_quantity"] + EPS:
                broken.append({"article": a.id, "type": a.type, "product": p, "quantity": max_qty[p],
                               "max_quantity": a.rule["max_quantity"]})
        for a in idx.bundle.get(p, []):
            relevant[a.id] = a
            if a.rule["requires_product_id"] not in products:
                broken.append({"article": a.id, "type": a.type, "product": p,
                               "missing_product": a.rule["requires_product_id"]})
        for a in idx.bundle_required.get(p, []):
            near.setdefault(a.id, a)
        for a in idx.exclusion.get(p, []):
            if all(q in products for q in a.rule["product_ids"]):
                if a.id not in relevant:
                    relevant[a.id] = a
                    broken.append({"article": a.id, "type": a.type, "products": list(a.rule["product_ids"])})
            else:
                near.setdefault(a.id, a)
    for a_id in relevant:
        near.pop(a_id, None)
    broken.sort(key=lambda b: (RULE_ORDER.index(b["type"]), b["article"]))
    return {"relevant": sorted(relevant), "broken": broken, "near": sorted(near)}


def bant_failures(lead: dict[str, Any], rule: dict[str, Any]) -> list[str]:
    """The BANT factors a lead fails, in the order Budget, Authority, Need, Timeline."""
    fails = {
        "Budget": lead["Budget__c"] < rule["budget_min"],
        "Authority": lead["Title"] not in rule["authority_titles"],
        "Need": lead["NeedFamily__c"] not in rule["need_families"],
        "Timeline": lead["TimelineDays__c"] > rule["timeline_max_days"],
    }
    return [f for f in BANT_FACTORS if fails[f]]


def load_policy_articles(org: Org) -> list[Article]:
    """Every Policy article with its parsed rule, ordered by Id."""
    rows = org.query("SELECT Id, Title, FAQ_Answer__c, PolicyRule__c FROM Knowledge__kav "
                     "WHERE ArticleType__c = 'Policy' ORDER BY Id")
    return [Article(r["Id"], r["Title"] or "", r["FAQ_Answer__c"] or "", json.loads(r["PolicyRule__c"]))
            for r in rows if r["PolicyRule__c"]]


# ----------------------------------------------------------------------------------------------
# Per-org data: every candidate record classified once (gold, relevance, hardness), then reused.
# ----------------------------------------------------------------------------------------------

@dataclass
class QuoteRec:
    id: str
    lines: list[dict[str, Any]]           # QuoteLineItem rows joined with the product's Name, Family
    families: tuple[str, ...]
    discount: list[dict[str, Any]]        # check_discounts(): one audit record per line
    discount_relevant: tuple[str, ...]    # the tier articles of the quote's families
    discount_broken: tuple[str, ...]
    discount_hardness: int
    config: dict[str, Any]                # check_config(): relevant, broken, near
    config_hardness: int


@dataclass
class LineRec:
    """One quote line with a tier article: easy quote_approval asks about a single line."""

    id: str
    quote: QuoteRec
    check: dict[str, Any]                 # its check_discounts() record
    hardness: int


@dataclass
class LeadRec:
    id: str
    transcripts: tuple[str, ...]          # VoiceCallTranscript__c ids, oldest first
    text_len: int
    fails: tuple[str, ...]                # of the factors asked about
    hardness: int
    asked: tuple[str, ...] = BANT_FACTORS  # the factors the question asks about (easy: two, see lead_pairs)


@dataclass
class CaseRec:
    id: str
    issue: str
    offered: str
    article: str                          # the allowed_solutions article of the case's issue
    violating: bool
    chats: tuple[str, ...]
    emails: tuple[str, ...]
    text_len: int
    traps: tuple[str, ...]                # other issues' articles that do allow the offered solution


def _discount_hardness(checks: list[dict[str, Any]], tiers_of: dict[str, Article]) -> int:
    """Lines whose quantity sits at a tier boundary or whose discount is within a point of the cap,
    plus several broken or several families (then precedence and per-family tiers matter)."""
    score = 0
    for c in checks:
        if c["article"] is None:
            continue
        mins = sorted(t[0] for t in tiers_of[c["family"]].rule["tiers"])
        score += any(abs(c["quantity"] - m) <= 2 for m in mins[1:])
        score += abs(c["discount"] - c["max_discount"]) <= 1
    broken = {c["article"] for c in checks if c["broken"]}
    return score + 2 * (len(broken) >= 2) + len({c["family"] for c in checks})


def _config_hardness(cfg: dict[str, Any], lines: list[dict[str, Any]], types: dict[str, str],
                     by_id: dict[str, Article]) -> int:
    """Several broken rules (precedence), several rule types at once (bundle + exclusion),
    quantities at a limit, and near-miss articles that mention the quote's products."""
    qty = {ln["Product2Id"]: ln["Quantity"] for ln in lines}
    at_limit = sum(1 for a in cfg["relevant"] if types[a] == "quantity_limit"
                   and abs(qty.get(by_id[a].rule["product_id"], -99) - by_id[a].rule["max_quantity"]) <= 1)
    return (3 * (len(cfg["broken"]) >= 2) + len({types[a] for a in cfg["relevant"]}) + at_limit
            + min(len(cfg["near"]), 2))


_T = TypeVar("_T")


class _OrgData:
    """The org's policy articles and classified records; built lazily, one per connection."""

    def __init__(self, org: Org):
        self.org = org
        self.articles = load_policy_articles(org)
        self.by_id = {a.id: a for a in self.articles}
        self.types = {a.id: a.type for a in self.articles}
        self.tiers_of = {a.rule["family"]: a for a in self.articles if a.type == "discount_tiers"}
        self.config_index = ConfigIndex()
        for a in self.articles:
            self.config_index.add(a)
        self.solutions_of = {a.rule["issue_id"]: a for a in self.articles if a.type == "allowed_solutions"}
        bant = [a for a in self.articles if a.type == "bant"]
        self.bant = bant[0] if bant else None
        self._lazy: dict[str, Any] = {}
        self.pools: dict[tuple[str, str, bool], list[Any]] = {}

    def ids_of(self, *types: str) -> list[str]:
        return [a.id for a in self.articles if a.type in types]

    def lazy(self, name: str, build: Callable[[], _T]) -> _T:
        if name not in self._lazy:
            self._lazy[name] = build()
        value: _T = self._lazy[name]
        return value

    def quotes(self) -> list[QuoteRec]:
        return self.lazy("quotes", self._load_quotes)

    def _load_quotes(self) -> list[QuoteRec]:
        rows = self.org.query(
            "SELECT l.Id, l.QuoteId, l.Product2Id, l.Quantity, l.UnitPrice, l.Discount, l.TotalPrice, "
            "p.Name AS ProductName, p.Family FROM QuoteLineItem l LEFT JOIN Product2 p ON p.Id = l.Product2Id "
            "ORDER BY l.QuoteId, l.Id")
        lines_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            lines_of[r["QuoteId"]].append(dict(r))
        out = []
        for qid, lines in lines_of.items():
            disc = check_discounts(lines, self.tiers_of)
            fams = tuple(sorted({ln["Family"] for ln in lines if ln["Family"]}))
            cfg = check_config(lines, self.config_index)
            out.append(QuoteRec(
                id=qid, lines=lines, families=fams, discount=disc,
                discount_relevant=tuple(sorted({c["article"] for c in disc if c["article"]})),
                discount_broken=tuple(sorted({c["article"] for c in disc if c["broken"]})),
                discount_hardness=_discount_hardness(disc, self.tiers_of),
                config=cfg, config_hardness=_config_hardness(cfg, lines, self.types, self.by_id)))
        return out

    def discount_lines(self) -> list[LineRec]:
        return self.lazy("lines", lambda: [LineRec(c["line"], q, c, _discount_hardness([c], self.tiers_of))
                                           for q in self.quotes() for c in q.discount if c["article"]])

    def leads(self) -> list[LeadRec]:
        return self.lazy("leads", self._load_leads)

    def _load_leads(self) -> list[LeadRec]:
        if self.bant is None:
            return []
        calls: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for r in self.org.query("SELECT Id, LeadId__c, length(TranscriptBody__c) AS n FROM VoiceCallTranscript__c "
                                "WHERE LeadId__c IS NOT NULL ORDER BY CreatedDate, Id"):
            calls[r["LeadId__c"]].append((r["Id"], r["n"] or 0))
        rule = self.bant.rule
        out = []
        for r in self.org.query("SELECT Id, Title, Budget__c, TimelineDays__c, NeedFamily__c FROM Lead "
                                "WHERE Budget__c IS NOT NULL AND TimelineDays__c IS NOT NULL "
                                "AND NeedFamily__c IS NOT NULL ORDER BY Id"):
            if r["Id"] not in calls:
                continue
            fails = tuple(bant_failures(dict(r), rule))
            # Near a threshold: budget within 15% of the minimum, timeline within 15 days of the maximum.
            near = (abs(r["Budget__c"] - rule["budget_min"]) <= 0.15 * rule["budget_min"]) + \
                   (abs(r["TimelineDays__c"] - rule["timeline_max_days"]) <= 15)
            out.append(LeadRec(r["Id"], tuple(i for i, _ in calls[r["Id"]]),
                               sum(n for _, n in calls[r["Id"]]), fails, 2 * near + len(fails)))
        return out

    def lead_pairs(self) -> list[LeadRec]:  # each lead once per pair of factors, the pair's failures
        return self.lazy("lead_pairs", lambda: [replace(r, fails=tuple(f for f in r.fails if f in p), asked=p)
                                                for r in self.leads() for p in combinations(BANT_FACTORS, 2)])

    def cases(self) -> list[CaseRec]:
        return self.lazy("cases", self._load_cases)

    def _load_cases(self) -> list[CaseRec]:
        # Message ids and lengths per case, and which cases' messages state the offered solution
        # verbatim: only those are asked about, so that the gold is always decidable from the prompt.
        chats: dict[str, list[tuple[str, int]]] = defaultdict(list)
        emails: dict[str, list[tuple[str, int]]] = defaultdict(list)
        stated: set[str] = set()
        for table, parent, body, when, into in (("LiveChatTranscript", "CaseId", "Body", "EndTime", chats),
                                                ("EmailMessage", "ParentId", "TextBody", "MessageDate", emails)):
            for r in self.org.query(
                    f"SELECT m.Id, m.{parent} AS CaseId, length(m.{body}) AS n, "
                    f"instr(m.{body}, c.OfferedSolution__c) > 0 AS states FROM {table} m "
                    f'JOIN "Case" c ON c.Id = m.{parent} ORDER BY m.{when}, m.Id'):
                into[r["CaseId"]].append((r["Id"], r["n"] or 0))
                if r["states"]:
                    stated.add(r["CaseId"])
        allowing: dict[str, list[str]] = defaultdict(list)  # solution -> articles allowing it
        for a in self.solutions_of.values():
            for s in a.rule["solutions"]:
                allowing[s].append(a.id)
        out = []
        for r in self.org.query('SELECT Id, IssueId__c, OfferedSolution__c FROM "Case" '
                                "WHERE Status = 'Closed' AND OfferedSolution__c IS NOT NULL ORDER BY Id"):
            art = self.solutions_of.get(r["IssueId__c"])
            msgs = chats.get(r["Id"], []) + emails.get(r["Id"], [])
            if art is None or r["Id"] not in stated:
                continue
            offered = r["OfferedSolution__c"]
            out.append(CaseRec(
                r["Id"], r["IssueId__c"], offered, art.id, offered not in art.rule["solutions"],
                tuple(i for i, _ in chats.get(r["Id"], [])), tuple(i for i, _ in emails.get(r["Id"], [])),
                sum(n for _, n in msgs), tuple(sorted(a for a in allowing.get(offered, []) if a != art.id))))
        return out

    def draw(self, rng: random.Random, task: str, difficulty: str, want_none: bool, items: list[Any],
             is_none: Callable[[Any], bool], filters: list[Callable[[Any], bool]],
             hardness: Callable[[Any], Any] | None) -> Any:
        """One record of the wanted class from the level's pool (built once, then cached).

        The pool is the wanted class (every record when the org has none of that class), narrowed by
        the first of ``filters`` (ordered strict to loose) that leaves ``MIN_POOL`` records, or else by
        the loosest that leaves any. Then, when a ``hardness`` is given and the pool is large enough
        to stay varied, easy keeps the lower half by hardness and hard the upper half.
        """
        key = (task, difficulty, want_none)
        if key not in self.pools:
            if not items:
                raise ValueError(f"{task}: the org has no records this task can ask about")
            pool = [x for x in items if is_none(x) == want_none] or items
            narrowed = [n for n in ([x for x in pool if f(x)] for f in filters) if n]
            pool = next((n for n in narrowed if len(n) >= MIN_POOL), narrowed[-1] if narrowed else pool)
            if hardness is not None and len(pool) >= 2 * MIN_POOL and difficulty != "medium":
                pool = sorted(pool, key=lambda x: (hardness(x), x.id))
                half = len(pool) // 2
                pool = pool[:half] if difficulty == "easy" else pool[half:]
            self.pools[key] = pool
        return rng.choice(self.pools[key])


def org_data(org: Org) -> _OrgData:
    """The ``_OrgData`` of ``org``, built once per Org object."""
    return org.cached("policy_data", _OrgData)


# ----------------------------------------------------------------------------------------------
# Prompt pieces shared by the tasks.
# ----------------------------------------------------------------------------------------------

DISCOUNT_RULES = """How a discount-tier article applies to a quote: a quote line of a product of the article's family uses the tier with the largest minimum quantity at or below the line's Quantity; the line breaks the article when its Discount (percent) is greater than that tier's maximum discount."""

CONFIG_RULES = """How the configuration articles apply to a quote:
- Quantity limit: a quote breaks it when a line of the product has a Quantity above the limit.
- Bundle: a quote breaks it when it has a line of the product but no line of the required product.
- Exclusion: a quote breaks it when it has lines of both products."""


def _sample(rng: random.Random, pool: Iterable[str], k: int, exclude: Iterable[str] = ()) -> list[str]:
    """``k`` distinct ids from ``pool`` minus ``exclude`` (fewer if the pool is smaller), reproducibly."""
    skip = set(exclude)
    cands = sorted(set(pool) - skip)
    return rng.sample(cands, min(k, len(cands)))


def _articles_table(data: _OrgData, ids: Iterable[str]) -> str:
    return render_table("Knowledge__kav (articles)", ["Id", "Title", "FAQ_Answer__c"],
                        [data.by_id[a].shown() for a in ids])


def _quote_tables(org: Org, quote_id: str, lines: list[dict[str, Any]]) -> list[str]:
    """The quote's header row and the given line items with product names and families."""
    head = org.query("SELECT Id, Name, Status, CreatedDate, ExpirationDate FROM Quote WHERE Id = ?", (quote_id,))
    cols = ["Id", "Product2Id", "ProductName", "Family", "Quantity", "UnitPrice", "Discount", "TotalPrice"]
    return [render_table("Quote", ["Id", "Name", "Status", "CreatedDate", "ExpirationDate"], head),
            render_table("QuoteLineItem (Discount in percent)", cols, lines)]


def _instance(task: str, difficulty: str, messages: list[dict[str, str]], answer: list[str],
              meta: dict[str, Any]) -> Instance:
    """The metadata is deep-copied: it holds lists from the per-org cache, which must not be shared."""
    return Instance(task, difficulty, messages, answer, copy.deepcopy(meta))


def _id_messages(question: str, tables: list[str], context: str, none_when: str) -> list[dict[str, str]]:
    fmt = f"{ID_ANSWER}, or None if {none_when}."
    return build_messages(question, tables, fmt, context=context)


# ----------------------------------------------------------------------------------------------
# The tasks.
# ----------------------------------------------------------------------------------------------

@register
class QuoteApproval(Task):
    name = "quote_approval"
    answer = AnswerKind("id", prefix="ka0", allow_none=True)
    levels = {
        "easy": "One quote line, far from its tier's boundaries; its family's discount-tier article among 4 "
                "other families' tier articles.",
        "medium": "A 2-4 line quote, its families' tier articles plus the other families' tier articles and "
                  "configuration articles (5 others in all); several lines can break, lowest article Id wins.",
        "hard": "The most line items, quantities at tier boundaries and discounts within a point of the cap, "
                "every tier article plus configuration articles about the quote's products and others (8+ "
                "distractors).",
    }

    def generate(self, org: Org, difficulty: str, rng: random.Random) -> Instance:
        data = org_data(org)
        want_none = rng.random() < NONE_DRAW_RATE
        if difficulty == "easy":  # a single line: the quote's other lines are not part of the question
            rec = data.draw(rng, self.name, difficulty, want_none, data.discount_lines(),
                            lambda r: not r.check["broken"], [], lambda r: r.hardness)
            q, checks = rec.quote, [rec.check]
            lines = [ln for ln in q.lines if ln["Id"] == rec.id]
            subject = f"Does line {rec.id} of quote {q.id}"
        else:
            filters = {"medium": [lambda q: 2 <= len(q.lines) <= 4],
                       "hard": [lambda q: len(q.lines) >= 4, lambda q: len(q.lines) >= 3]}[difficulty]
            q = data.draw(rng, self.name, difficulty, want_none, data.quotes(), lambda q: not q.discount_broken,
                          filters, lambda q: (q.discount_hardness, len(q.lines)))
            checks, lines, subject = q.discount, shuffled(rng, q.lines), f"Does quote {q.id}"
        relevant = sorted({c["article"] for c in checks if c["article"]})
        broken = sorted({c["article"] for c in checks if c["broken"]})
        shown = relevant + self._distractors(data, q, relevant, difficulty, rng)
        question = (f"{subject} comply with the discount policy in the articles above? If a line's discount "
                    "exceeds what its family's tier allows, which discount article does it break?")
        if any(data.types[a] != "discount_tiers" for a in shown):
            question += " Only discount-tier articles count here."
        if difficulty != "easy":
            question += " If several discount articles are broken, name the one with the lowest article Id."
        messages = _id_messages(question, [_articles_table(data, shuffled(rng, shown)),
                                           *_quote_tables(org, q.id, lines)],
                                DISCOUNT_RULES, "the line complies" if difficulty == "easy" else "every line complies")
        gold = first_broken(broken, data.types)
        meta = {"quote_id": q.id, "line_ids": [ln["Id"] for ln in lines], "rule_checked": "discount_tiers",
                "line_checks": checks, "relevant_articles": relevant, "broken_articles": broken,
                "precedence": "lowest article Id among broken discount_tiers articles",
                "articles_shown": sorted(shown), "n_lines": len(lines),
                "hardness": _discount_hardness(checks, data.tiers_of), "wanted_none": want_none}
        return _instance(self.name, difficulty, messages, [gold or NONE_ANSWER], meta)

    @staticmethod
    def _distractors(data: _OrgData, q: QuoteRec, relevant: list[str], difficulty: str,
                     rng: random.Random) -> list[str]:
        """Easy: 4 other families' tier articles. Medium: every other tier article, then configuration
        articles, 5 in all. Hard: every other tier article, 2 configuration articles about this quote's
        products (which the question rules out) and other configuration articles, 8 or more in all.
        Configuration articles fill in wherever the org has too few tier articles."""
        tiers = _sample(rng, data.ids_of("discount_tiers"), 99, exclude=relevant)
        config = data.ids_of(*CONFIG_TYPES)
        want = {"easy": MIN_ARTICLES - 1, "medium": MIN_ARTICLES, "hard": MIN_ARTICLES + 3}[difficulty]
        if difficulty == "easy":
            out = tiers[:want]
        elif difficulty == "medium":
            out = tiers
        else:
            cfg_near = q.config["relevant"] + q.config["near"]
            out = tiers + _sample(rng, cfg_near, 2)
        return out + _sample(rng, config, want - len(out), exclude=out)


@register
class InvalidConfig(Task):
    name = "invalid_config"
    answer = AnswerKind("id", prefix="ka0", allow_none=True)
    levels = {
        "easy": "A short quote with exactly one configuration rule about its products; that article among 4 "
                "unrelated configuration articles.",
        "medium": "A 2-4 line quote, its relevant rules plus near-miss and unrelated configuration articles "
                  "(5 others); precedence stated.",
        "hard": "Long quotes where several rule types meet (limits at the boundary, bundle + exclusion), several "
                "broken so precedence decides, many distractors (near misses, 8+ configuration articles in "
                "all, and discount articles).",
    }

    def generate(self, org: Org, difficulty: str, rng: random.Random) -> Instance:
        data = org_data(org)
        want_none = rng.random() < NONE_DRAW_RATE
        filters = {
            "easy": [lambda q: len(q.config["relevant"]) == 1 and len(q.lines) <= 2,
                     lambda q: len(q.config["relevant"]) == 1],
            "medium": [lambda q: 2 <= len(q.lines) <= 4 and len(q.config["relevant"]) >= 1],
            "hard": [lambda q: len(q.lines) >= 3 and len(q.config["relevant"]) >= 2,
                     lambda q: len(q.config["relevant"]) >= 2],
        }[difficulty]
        q = data.draw(rng, self.name, difficulty, want_none, data.quotes(), lambda q: not q.config["broken"],
                      filters, lambda q: (q.config_hardness, len(q.lines)))
        relevant, near = q.config["relevant"], q.config["near"]
        others = data.ids_of(*CONFIG_TYPES)
        shown = list(relevant)
        if difficulty == "easy":
            if not shown:  # nothing can break: show one article about the quote anyway
                shown = (near or _sample(rng, others, 1))[:1]
            shown += _sample(rng, others, MIN_ARTICLES - len(shown), exclude=shown + near)
        elif difficulty == "medium":
            n_rel = len(shown)
            shown += _sample(rng, near, 2)
            shown += _sample(rng, others, n_rel + MIN_ARTICLES - len(shown), exclude=shown)
        elif difficulty == "hard":
            shown += near
            shown += _sample(rng, others, max(MIN_ARTICLES + 5 - len(shown), 3), exclude=shown)
            shown += _sample(rng, q.discount_relevant, 2)
        if len(shown) < MIN_ARTICLES:  # an org with few configuration articles: discount ones fill in
            shown += _sample(rng, data.ids_of("discount_tiers"), MIN_ARTICLES - len(shown))
        broken = [b["article"] for b in q.config["broken"]]
        gold = first_broken(broken, data.types)
        question = (f"Does quote {q.id} break a product configuration rule (quantity limit, bundle or "
                    "exclusion) stated in the articles above? If so, which article?")
        if difficulty != "easy":
            question += (" Discount rules are not part of this check. If several rules are broken, name the "
                         "first in this order: quantity limits, then bundles, then exclusions; among articles "
                         "of the same type, the lowest article Id.")
        messages = _id_messages(question, [_articles_table(data, shuffled(rng, shown)),
                                           *_quote_tables(org, q.id, shuffled(rng, q.lines))],
                                CONFIG_RULES, "the quote breaks no configuration rule")
        meta = {"quote_id": q.id, "rule_checked": "quantity_limit, bundle, exclusion",
                "quantities": {ln["Id"]: [ln["Product2Id"], ln["Quantity"]] for ln in q.lines},
                "relevant_articles": relevant, "near_articles": near, "broken_rules": q.config["broken"],
                "precedence": "quantity_limit, then bundle, then exclusion; within a type the lowest article Id",
                "articles_shown": sorted(shown), "n_lines": len(q.lines), "hardness": q.config_hardness,
                "wanted_none": want_none}
        return _instance(self.name, difficulty, messages, [gold or NONE_ANSWER], meta)


LEAD_RULES = """How the BANT article applies to a lead: Budget fails when the lead's budget is below the minimum; Authority fails when the lead's title is not one of the listed decision-maker titles; Need fails when the product family the lead needs is not one of the listed families; Timeline fails when the lead's purchase timeline is longer than the maximum number of days."""


@register
class LeadQualification(Task):
    name = "lead_qualification"
    answer = AnswerKind("subset", choices=BANT_FACTORS, allow_none=True)
    levels = {
        "easy": "One short call transcript, two of the four factors asked about, the BANT article alone, the "
                "lead's Title in its record.",
        "medium": "All the lead's calls, the BANT article among distractor policy articles.",
        "hard": "Values near the thresholds and several failing factors, Title only in the transcript, other "
                "leads' calls in the same table, more distractor articles.",
    }

    def generate(self, org: Org, difficulty: str, rng: random.Random) -> Instance:
        data = org_data(org)
        if data.bant is None:
            raise ValueError("lead_qualification: the org has no BANT article")
        want_none = rng.random() < NONE_DRAW_RATE
        filters = {"easy": [lambda r: len(r.transcripts) == 1], "medium": [],
                   "hard": [lambda r: len(r.fails) != 1]}[difficulty]
        hardness = None if difficulty == "easy" else (lambda r: (r.hardness, r.text_len))
        leads = data.lead_pairs() if difficulty == "easy" else data.leads()
        lead = data.draw(rng, self.name, difficulty, want_none, leads, lambda r: not r.fails, filters, hardness)
        others = [a.id for a in data.articles if a.type != "bant"]
        shown = [data.bant.id] + _sample(rng, others, {"easy": 0, "medium": 1, "hard": 3}[difficulty])
        calls = list(lead.transcripts)
        if difficulty == "hard":  # other leads' first calls: the model must keep to this lead's
            pool = data.leads()
            calls = sorted({*calls, *(pool[rng.randrange(len(pool))].transcripts[0] for _ in range(2))})
        cols = ["Id", "FirstName", "LastName", "Company", *(["Title"] if difficulty != "hard" else []),
                "Industry", "State", "LeadSource", "Status"]
        row = org.query(f"SELECT {', '.join(cols)} FROM Lead WHERE Id = ?", (lead.id,))
        bodies = org.query("SELECT Id, LeadId__c, CreatedDate, TranscriptBody__c FROM VoiceCallTranscript__c "
                           f"WHERE Id IN ({','.join('?' * len(calls))}) ORDER BY CreatedDate, Id", tuple(calls))
        tables = [_articles_table(data, shuffled(rng, shown)), render_table("Lead", cols, row),
                  render_table("VoiceCallTranscript__c", ["Id", "LeadId__c", "CreatedDate", "TranscriptBody__c"],
                               bodies)]
        which = "BANT factors" if len(lead.asked) == 4 else f"of the BANT factors {' and '.join(lead.asked)}"
        question = (f"Using the BANT qualification article and lead {lead.id}'s call transcripts, which {which} "
                    "does the lead fail?")
        fmt = (f"the failing factors as a comma-separated list drawn from {', '.join(lead.asked)}, or None if the "
               f"lead meets {'all four' if len(lead.asked) == 4 else 'both'}.")
        messages = build_messages(question, tables, fmt, context=LEAD_RULES)
        lead_row = org.query("SELECT Title, Budget__c, TimelineDays__c, NeedFamily__c FROM Lead WHERE Id = ?",
                             (lead.id,))[0]
        meta = {"lead_id": lead.id, "rule_checked": "bant", "bant_article": data.bant.id, "bant_rule": data.bant.rule,
                "lead_facts": dict(lead_row), **({"factors_asked": list(lead.asked)} if len(lead.asked) < 4 else {}),
                "failed_factors": list(lead.fails), "transcripts": list(lead.transcripts), "transcripts_shown": calls,
                "articles_shown": sorted(shown), "hardness": lead.hardness, "wanted_none": want_none}
        return _instance(self.name, difficulty, messages, list(lead.fails) or [NONE_ANSWER], meta)


@register
class PolicyViolationIdentification(Task):
    name = "policy_violation_identification"
    answer = AnswerKind("id", prefix="ka0", allow_none=True)
    levels = {
        "easy": "One short chat transcript, the case's issue named, its allowed-solutions article among 4 other "
                "issues' articles (none of which allows the offered solution).",
        "medium": "Chat or email thread, its issue's article among 5 other issues' articles (those that allow the "
                  "offered solution first).",
        "hard": "The issue given only by its Id (no subject, no issue names), 7-9 other issues' articles, those "
                "that allow the offered solution first.",
    }

    def generate(self, org: Org, difficulty: str, rng: random.Random) -> Instance:
        data = org_data(org)
        want_none = rng.random() < NONE_DRAW_RATE
        filters = [lambda c: len(c.chats) + len(c.emails) == 1] if difficulty == "easy" else []
        hardness = {"easy": lambda c: (c.text_len, len(c.traps))}.get(
            difficulty, lambda c: (len(c.traps) > 0, c.text_len))
        case = data.draw(rng, self.name, difficulty, want_none, data.cases(), lambda c: not c.violating,
                         filters, hardness)
        k = {"easy": MIN_ARTICLES - 1, "medium": MIN_ARTICLES, "hard": rng.randint(7, 9)}[difficulty]
        all_ids = [a.id for a in data.solutions_of.values()]
        # Easy distractors are other issues' articles that do not allow the offered solution (where
        # the org has enough); from medium on those that allow it come first.
        shown = [case.article] + ([] if difficulty == "easy" else _sample(rng, case.traps, k))
        shown += _sample(rng, all_ids, k - len(shown) + 1,
                         exclude=shown + (list(case.traps) if difficulty == "easy" else []))
        shown += _sample(rng, all_ids, k - len(shown) + 1, exclude=shown)
        issues = sorted({data.by_id[a].rule["issue_id"] for a in shown})
        issue_rows = org.query(f"SELECT Id, Name FROM Issue__c WHERE Id IN ({','.join('?' * len(issues))}) "
                               "ORDER BY Id", tuple(issues))
        # Hard gives the issue only as IssueId__c: the model must find the article naming that Id.
        cols = ["Id", "Status", "Priority", "Origin", "CreatedDate", "ClosedDate", "IssueId__c"]
        if difficulty != "hard":
            cols.insert(1, "Subject")
        tables = [_articles_table(data, shuffled(rng, shown)),
                  render_table("Case", cols, org.query(f"SELECT {', '.join(map(qi, cols))} FROM \"Case\" "
                                                       "WHERE Id = ?", (case.id,)))]
        if difficulty != "hard":
            tables.append(render_table("Issue__c", ["Id", "Name"], issue_rows))
        tables += _case_messages(org, case)
        issue_name = next(r["Name"] for r in issue_rows if r["Id"] == case.issue)
        about = f"about issue {case.issue} ({issue_name})" if difficulty == "easy" else f"about issue {case.issue}"
        question = (f"Case {case.id} {about} is closed. Did the agent offer the customer a solution that the "
                    "allowed-solutions article of the case's issue does not allow? If so, which article does "
                    "the case break?")
        messages = _id_messages(question, tables, "", "the offered solution is allowed")
        meta = {"case_id": case.id, "issue_id": case.issue, "rule_checked": "allowed_solutions",
                "issue_article": case.article, "offered_solution": case.offered,
                "allowed_solutions": data.by_id[case.article].rule["solutions"], "violating": case.violating,
                "trap_articles": list(case.traps), "articles_shown": sorted(shown),
                "chats": list(case.chats), "emails": list(case.emails), "wanted_none": want_none}
        return _instance(self.name, difficulty, messages, [case.article if case.violating else NONE_ANSWER], meta)


def _case_messages(org: Org, case: CaseRec) -> list[str]:
    """The case's chat transcripts and emails, the only place the offered solution is stated."""
    out = []
    if case.chats:
        rows = org.query(f"SELECT Id, EndTime, Body FROM LiveChatTranscript WHERE Id IN "
                         f"({','.join('?' * len(case.chats))}) ORDER BY EndTime, Id", case.chats)
        out.append(render_table("LiveChatTranscript", ["Id", "EndTime", "Body"], rows))
    if case.emails:
        rows = org.query(f"SELECT Id, MessageDate, FromAddress, Subject, TextBody FROM EmailMessage WHERE Id IN "
                         f"({','.join('?' * len(case.emails))}) ORDER BY MessageDate, Id", case.emails)
        out.append(render_table("EmailMessage", ["Id", "MessageDate", "FromAddress", "Subject", "TextBody"], rows))
    return out
