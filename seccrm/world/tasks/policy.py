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

The code: the rule checks in ``_policy_rules``, the per-org records, pools and shared prompt pieces
in ``_policy_data``, the quote tasks in ``_policy_quotes`` and the transcript tasks in
``_policy_transcripts``; importing this module registers the four tasks, in the order of
``POLICY_TASKS`` (the import order below, which the suite's generation order follows).
"""

from __future__ import annotations

from seccrm.world.tasks._policy_data import MIN_ARTICLES, MIN_POOL
from seccrm.world.tasks._policy_quotes import InvalidConfig, QuoteApproval
from seccrm.world.tasks._policy_rules import (
    BANT_FACTORS,
    CONFIG_TYPES,
    RULE_ORDER,
    Article,
    ConfigIndex,
    applicable_tier,
    bant_failures,
    check_config,
    check_discounts,
    first_broken,
    load_policy_articles,
)
from seccrm.world.tasks._policy_transcripts import LeadQualification, PolicyViolationIdentification

POLICY_TASKS = (QuoteApproval, InvalidConfig, LeadQualification, PolicyViolationIdentification)

__all__ = ["BANT_FACTORS", "CONFIG_TYPES", "MIN_ARTICLES", "MIN_POOL", "POLICY_TASKS", "RULE_ORDER", "Article",
           "ConfigIndex", "InvalidConfig", "LeadQualification", "PolicyViolationIdentification", "QuoteApproval",
           "applicable_tier", "bant_failures", "check_config", "check_discounts", "first_broken",
           "load_policy_articles"]
