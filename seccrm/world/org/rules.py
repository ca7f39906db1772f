"""The quote rules: discount tiers, quantity limits, bundles and exclusions.

``make_rules`` draws them for a catalogue, ``rule_articles`` states them as Policy articles (text and
JSON), ``draw_quote_lines`` builds quote lines that break exactly the asked kinds of rule, and
``Rules.broken`` checks lines against them (the semantics of docs/org-contract.md).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from seccrm.world.org import text as T

# Share of discount-breaking quotes drawn with two lines over their tiers (in two Families when the
# quote has two): about a quarter of them then break two discount articles.
TWO_DISCOUNT_SHARE = 0.3


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



def make_rules(rng: random.Random, products: list[dict[str, Any]]) -> Rules:
    """Draw the discount tiers (one per Family present), quantity limits, bundles and exclusions."""
    ids = [p["id"] for p in products]
    family = {p["id"]: p["family"] for p in products}
    name = {p["id"]: p["name"] for p in products}
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


def rule_articles(rules: Rules, name: dict[str, str]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(Title, Summary, FAQ_Answer__c, PolicyRule__c) of the quote rules' Policy articles, in the
    contract's order: discount tiers by Family, quantity limits, bundles, exclusions. Each text states
    every number of its rule and names products with their Ids."""
    out: list[tuple[str, str, str, dict[str, Any]]] = []
    for fam, tiers in rules.tiers.items():
        parts = []
        for k, (lo, pct) in enumerate(tiers):
            span = f"{lo} to {tiers[k + 1][0] - 1} units" if k + 1 < len(tiers) else f"{lo} units or more"
            parts.append(f"{span}: at most {pct}% discount")
        body = (f"The discount on a quote line for a {fam} product may not exceed the maximum for the "
                f"line's quantity: {'; '.join(parts)}. A line above its maximum breaks this policy.")
        out.append((f"Discount policy: {fam} products", f"Volume discount tiers for {fam} products.", body,
                    {"type": "discount_tiers", "family": fam, "tiers": [list(t) for t in tiers]}))
    for pid, n in rules.qty_limit.items():
        out.append((f"Quantity limit: {name[pid]}", f"Maximum quantity of {name[pid]} per quote line.",
                    f"A quote line may include at most {n} units of {name[pid]} (product {pid}). "
                    f"A line with more than {n} units breaks this policy.",
                    {"type": "quantity_limit", "product_id": pid, "max_quantity": n}))
    for p, r in rules.bundles:
        out.append((f"Bundle requirement: {name[p]}", f"{name[p]} must be quoted with {name[r]}.",
                    f"{name[p]} (product {p}) must be quoted together with {name[r]} (product {r}). "
                    f"A quote that includes {name[p]} but not {name[r]} breaks this policy.",
                    {"type": "bundle", "product_id": p, "requires_product_id": r}))
    for a, b in rules.exclusions:
        out.append((f"Product exclusion: {name[a]} and {name[b]}", f"{name[a]} and {name[b]} cannot share a quote.",
                    f"{name[a]} (product {a}) and {name[b]} (product {b}) cannot be sold on the same "
                    f"quote. A quote that includes both breaks this policy.",
                    {"type": "exclusion", "product_ids": [a, b]}))
    return out


def draw_quote_lines(rng: random.Random, rules: Rules, products: list[str], bad_discount: bool,
                     bad_config: bool) -> list[list[Any]]:
    """1-6 lines [product, quantity, discount] that break exactly the asked kinds of rule. About a
    third of the configuration-breaking quotes break two configuration rules, and about a quarter of
    the discount-breaking ones break the tiers of two Families, so that the POLICY tasks' precedence
    order matters."""
    n_cfg = (2 if rng.random() < 0.35 else 1) if bad_config else 0
    n_disc = (2 if rng.random() < TWO_DISCOUNT_SHARE else 1) if bad_discount else 0
    for _ in range(200):          # a draw whose seeded rules cancel out is redrawn
        lines = _draw(rng, rules, products, n_cfg, n_disc)
        broken = rules.broken([tuple(x) for x in lines])
        n_broken_cfg = sum(k != "discount_tiers" for k, _ in broken)
        if (len(broken) > n_broken_cfg) == bad_discount and n_broken_cfg >= n_cfg \
                and (n_broken_cfg > 0) == bad_config:
            return lines
    raise RuntimeError(f"could not draw a quote breaking {n_cfg} configuration rules; too few rules?")

def _draw(rng: random.Random, R: Rules, products: list[str], n_cfg: int, n_disc: int) -> list[list[Any]]:
    """One draw: seed the asked rule breaks, fill compliantly up to a random size, set quantities and
    discounts. May fail to break what was asked (seeds can cancel out); the caller checks and redraws."""
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
    pool = list(products)
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
    for line in _discount_breakers(rng, R, lines, n_disc):
        line[2] = float(min(100, R.max_discount(line[0], line[1]) + rng.randint(1, 10)))
    return lines


def _discount_breakers(rng: random.Random, R: Rules, lines: list[list[Any]], n: int) -> list[list[Any]]:
    """``n`` lines to push over their tier: a second line comes from another Family when the quote has
    one, so that two discount articles break (two lines of one Family break only one article)."""
    if n <= 0 or not lines:
        return []
    first = rng.choice(lines)
    if n == 1:
        return [first]
    rest = [x for x in lines if x is not first]
    other = [x for x in rest if R.family[x[0]] != R.family[first[0]]]
    return [first] + rng.sample(other or rest, min(n - 1, len(other or rest)))
