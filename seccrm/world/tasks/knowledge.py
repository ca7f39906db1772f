"""KNOWLEDGE tasks: facts in articles, loose product mentions, call transcripts, task priorities.

Each generator picks its target from the org, renders the records the question needs (and, from
medium on, distractors), and computes the gold answer from the database. The rules a model must
apply are stated in the prompt; for activity_priority that is the stage catalogue article's text,
while the gold answer is computed from the same article's ``PolicyRule__c`` JSON, which the model
never sees.

- ``knowledge_qa``: two question forms, drawn half and half at every level. The *fact* form asks
  for a fact an FAQ article states verbatim (its ``PolicyRule__c`` lists the facts); the question
  names the article, by title or (hard) only by Id, among look-alike articles. The *article* form
  gives a customer's question and asks which of the shown articles answers it: the article's Id,
  or None when the article that answers it is deliberately left out (``NONE_DRAW_RATE`` of these). It is
  the training task that answers the way the held-out POLICY tasks do (a Knowledge article Id or
  None); such instances record ``metadata["answer_kind"]``, which ``seccrm.world.rewards`` scores by.
- ``named_entity_disambiguation``: "the <words> I bought <when>" -> the Product2 Id. CRMArena-Pro
  leaves the matching to judgement; here the prompt states it (the product the account bought that
  day whose name begins with the customer's words), and draws whose answer would be ambiguous are
  rejected, so the gold is unique. None when nothing bought that day matches.
- ``sales_insight_mining``: the competitors or subtopics raised in an opportunity's calls; the gold
  is the deduplicated list in first-mention order (compared as a set by the reward).
- ``activity_priority``: the opportunity's 'Not Started' tasks that fit neither its stage nor the
  next. "Its stage" is StageName; only opportunities whose StageName agrees with their completed
  tasks are asked about (the others belong to wrong_stage_rectification).

Per-org lookups (candidate targets, catalogues) are built once per connection and cached
(``Org.cached``), so that one instance costs a couple of indexed queries.

The code: shared helpers and per-org lookups in ``_knowledge_common`` (re-exported here for the
CRUD tasks), knowledge_qa in ``_knowledge_articles``, named_entity_disambiguation in
``_knowledge_purchases``, sales_insight_mining and activity_priority in ``_knowledge_sales``.
Importing this module registers the four tasks, in the order of ``KNOWLEDGE_TASKS`` (the import
order below, which the suite's generation order follows; ``seccrm.world.tasks.crud`` imports this
module first, so these register before the CRUD tasks).
"""

from __future__ import annotations

from seccrm.world.org.schema import STAGES
from seccrm.world.tasks._knowledge_articles import KnowledgeQA
from seccrm.world.tasks._knowledge_common import (
    CHAR_BUDGET,
    MIN_CANDIDATES,
    TASK_COLUMNS,
    StageCatalogue,
    char_budget,
    fill_distractors,
    opportunity_stages,
    opportunity_tasks,
    pick,
    policy_article,
    sample_others,
    split_list,
    stage_catalogue,
)
from seccrm.world.tasks._knowledge_purchases import NamedEntityDisambiguation
from seccrm.world.tasks._knowledge_sales import ActivityPriority, SalesInsightMining

KNOWLEDGE_TASKS = (KnowledgeQA, NamedEntityDisambiguation, SalesInsightMining, ActivityPriority)

__all__ = ["CHAR_BUDGET", "KNOWLEDGE_TASKS", "MIN_CANDIDATES", "STAGES", "TASK_COLUMNS", "ActivityPriority",
           "KnowledgeQA", "NamedEntityDisambiguation", "SalesInsightMining", "StageCatalogue",
           "char_budget", "fill_distractors", "opportunity_stages", "opportunity_tasks", "pick", "policy_article",
           "sample_others", "split_list", "stage_catalogue"]
