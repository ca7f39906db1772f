"""The POLICY rule checks: pure functions over plain rows, reused by every POLICY task.

A Policy article states its rule twice: as text the model reads (``FAQ_Answer__c``) and as JSON the
gold answers are computed from (``PolicyRule__c``, docs/org-contract.md). :class:`Article` holds
both; :func:`check_discounts` (discount tiers), :func:`check_config` (quantity limits, bundles,
exclusions) and :func:`bant_failures` (lead qualification) apply the JSON rules to rows;
:func:`first_broken` picks the article named when several break; :func:`load_policy_articles`
reads the org's Policy articles.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from seccrm.world.tasks.base import Org

# Precedence of rule types when a quote breaks several (docs/org-contract.md, last paragraph).
RULE_ORDER: tuple[str, ...] = ("discount_tiers", "quantity_limit", "bundle", "exclusion")
CONFIG_TYPES: tuple[str, ...] = ("quantity_limit", "bundle", "exclusion")
BANT_FACTORS: tuple[str, ...] = ("Budget", "Authority", "Need", "Timeline")
EPS = 1e-9  # Discount and Quantity are REAL columns: compare with a tolerance, not ==.


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
