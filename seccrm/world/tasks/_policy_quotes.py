"""The two quote tasks of POLICY: ``quote_approval`` (discount tiers) and ``invalid_config``
(quantity limits, bundles, exclusions).

Both show a quote (its header and line items) with Policy articles and ask which article the quote
breaks, by Id, or None; each checks its own rule types only (the question says so), and articles of
the other kind appear as distractors. The rules are stated in the prompt (``DISCOUNT_RULES``,
``CONFIG_RULES``); the gold comes from ``seccrm.world.tasks._policy_rules`` over the org's rows.
"""

from __future__ import annotations

import random
from typing import Any

from seccrm.world.tasks._policy_data import (
    MIN_ARTICLES,
    PolicyData,
    QuoteRec,
    articles_table,
    discount_hardness,
    id_messages,
    make_instance,
    org_data,
    sample_ids,
)
from seccrm.world.tasks._policy_rules import CONFIG_TYPES, first_broken
from seccrm.world.tasks.base import (
    NONE_ANSWER,
    NONE_DRAW_RATE,
    AnswerKind,
    Instance,
    Org,
    Task,
    register,
    render_table,
    shuffled,
)

DISCOUNT_RULES = """How a discount-tier article applies to a quote: a quote line of a product of the article's family uses the tier with the largest minimum quantity at or below the line's Quantity; the line breaks the article when its Discount (percent) is greater than that tier's maximum discount."""

CONFIG_RULES = """How the configuration articles apply to a quote:
- Quantity limit: a quote breaks it when a line of the product has a Quantity above the limit.
- Bundle: a quote breaks it when it has a line of the product but no line of the required product.
- Exclusion: a quote breaks it when it has lines of both products."""


def _quote_tables(org: Org, quote_id: str, lines: list[dict[str, Any]]) -> list[str]:
    """The quote's header row and the given line items with product names and families."""
    head = org.query("SELECT Id, Name, Status, CreatedDate, ExpirationDate FROM Quote WHERE Id = ?", (quote_id,))
    cols = ["Id", "Product2Id", "ProductName", "Family", "Quantity", "UnitPrice", "Discount", "TotalPrice"]
    return [render_table("Quote", ["Id", "Name", "Status", "CreatedDate", "ExpirationDate"], head),
            render_table("QuoteLineItem (Discount in percent)", cols, lines)]


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
        messages = id_messages(question, [articles_table(data, shuffled(rng, shown)),
                                          *_quote_tables(org, q.id, lines)],
                               DISCOUNT_RULES, "the line complies" if difficulty == "easy" else "every line complies",
                               terse=org.rendering.terse)
        gold = first_broken(broken, data.types)
        meta = {"quote_id": q.id, "line_ids": [ln["Id"] for ln in lines], "rule_checked": "discount_tiers",
                "line_checks": checks, "relevant_articles": relevant, "broken_articles": broken,
                "precedence": "lowest article Id among broken discount_tiers articles",
                "articles_shown": sorted(shown), "n_lines": len(lines),
                "hardness": discount_hardness(checks, data.tiers_of), "wanted_none": want_none}
        return make_instance(self.name, difficulty, messages, [gold or NONE_ANSWER], meta)

    @staticmethod
    def _distractors(data: PolicyData, q: QuoteRec, relevant: list[str], difficulty: str,
                     rng: random.Random) -> list[str]:
        """Easy: 4 other families' tier articles. Medium: every other tier article, then configuration
        articles, 5 in all. Hard: every other tier article, 2 configuration articles about this quote's
        products (which the question rules out) and other configuration articles, 8 or more in all.
        Configuration articles fill in wherever the org has too few tier articles."""
        tiers = sample_ids(rng, data.ids_of("discount_tiers"), 99, exclude=relevant)
        config = data.ids_of(*CONFIG_TYPES)
        want = {"easy": MIN_ARTICLES - 1, "medium": MIN_ARTICLES, "hard": MIN_ARTICLES + 3}[difficulty]
        if difficulty == "easy":
            out = tiers[:want]
        elif difficulty == "medium":
            out = tiers
        else:
            cfg_near = q.config["relevant"] + q.config["near"]
            out = tiers + sample_ids(rng, cfg_near, 2)
        return out + sample_ids(rng, config, want - len(out), exclude=out)


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
                shown = (near or sample_ids(rng, others, 1))[:1]
            shown += sample_ids(rng, others, MIN_ARTICLES - len(shown), exclude=shown + near)
        elif difficulty == "medium":
            n_rel = len(shown)
            shown += sample_ids(rng, near, 2)
            shown += sample_ids(rng, others, n_rel + MIN_ARTICLES - len(shown), exclude=shown)
        elif difficulty == "hard":
            shown += near
            shown += sample_ids(rng, others, max(MIN_ARTICLES + 5 - len(shown), 3), exclude=shown)
            shown += sample_ids(rng, q.discount_relevant, 2)
        if len(shown) < MIN_ARTICLES:  # an org with few configuration articles: discount ones fill in
            shown += sample_ids(rng, data.ids_of("discount_tiers"), MIN_ARTICLES - len(shown))
        broken = [b["article"] for b in q.config["broken"]]
        gold = first_broken(broken, data.types)
        question = (f"Does quote {q.id} break a product configuration rule (quantity limit, bundle or "
                    "exclusion) stated in the articles above? If so, which article?")
        if difficulty != "easy":
            question += (" Discount rules are not part of this check. If several rules are broken, name the "
                         "first in this order: quantity limits, then bundles, then exclusions; among articles "
                         "of the same type, the lowest article Id.")
        messages = id_messages(question, [articles_table(data, shuffled(rng, shown)),
                                          *_quote_tables(org, q.id, shuffled(rng, q.lines))],
                               CONFIG_RULES, "the quote breaks no configuration rule", terse=org.rendering.terse)
        meta = {"quote_id": q.id, "rule_checked": "quantity_limit, bundle, exclusion",
                "quantities": {ln["Id"]: [ln["Product2Id"], ln["Quantity"]] for ln in q.lines},
                "relevant_articles": relevant, "near_articles": near, "broken_rules": q.config["broken"],
                "precedence": "quantity_limit, then bundle, then exclusion; within a type the lowest article Id",
                "articles_shown": sorted(shown), "n_lines": len(q.lines), "hardness": q.config_hardness,
                "wanted_none": want_none}
        return make_instance(self.name, difficulty, messages, [gold or NONE_ANSWER], meta)
