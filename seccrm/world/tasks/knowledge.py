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
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from seccrm.world.org.schema import STAGES
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

T = TypeVar("T")

# Hard prompts stay under ~12,000 characters: distractors are added until this budget is spent.
CHAR_BUDGET = {"easy": 2_500, "medium": 6_000, "hard": 10_000}
# Probability that an instance is drawn to have a None gold, the same at every level (the builder
# then redraws instances to the suite's exact None share).
# The fewest answer candidates (articles, products) an id question shows: with fewer, "answer the
# k-th one shown" would be a good guess.
MIN_CANDIDATES = 5

def pick(rng: random.Random, items: list[T], what: str, org: Org) -> T:
    """``rng.choice`` that says which org lacks what, instead of an IndexError."""
    if not items:
        raise ValueError(f"org (seed {org.meta.get('seed')}, size {org.meta.get('size')}) has no {what}")
    return rng.choice(items)


def split_list(text: str | None) -> list[str]:
    """'a, b,,c ' -> ['a', 'b', 'c'] (the org's comma-separated fields)."""
    return [p.strip() for p in (text or "").split(",") if p.strip()]


# ----------------------------------------------------------------------------------------------
# The stage catalogue (shared with the CRUD task wrong_stage_rectification)
# ----------------------------------------------------------------------------------------------



@dataclass(frozen=True)
class StageCatalogue:
    article_id: str
    text: str                        # FAQ_Answer__c: what the model reads
    stage_of: dict[str, int]         # Task subject -> index into STAGES

    def fits(self, subject: str, stage: str) -> bool:
        """A 'Not Started' task fits an opportunity at ``stage`` when its subject belongs to that
        stage or the next one (subjects outside the catalogue fit nowhere)."""
        s = self.stage_of.get(subject)
        return s is not None and s in (STAGES.index(stage), STAGES.index(stage) + 1)

    def derived_stage(self, completed_subjects: list[str]) -> str | None:
        """The latest stage (pipeline order) among completed subjects, None when none is known."""
        idx = [self.stage_of[s] for s in completed_subjects if s in self.stage_of]
        return STAGES[max(idx)] if idx else None


def _load_policy(org: Org, rule_type: str) -> tuple[str, str, dict[str, Any]]:
    """(Id, FAQ_Answer__c, rule JSON) of the one Policy article of ``rule_type``."""
    rows = org.query(
        "SELECT Id, FAQ_Answer__c, PolicyRule__c FROM Knowledge__kav "
        "WHERE ArticleType__c = 'Policy' AND PolicyRule__c LIKE ? ORDER BY Id", (f'%"{rule_type}"%',))
    for r in rows:
        rule = json.loads(r["PolicyRule__c"])
        if rule.get("type") == rule_type:
            return r["Id"], r["FAQ_Answer__c"], rule
    raise ValueError(f"org has no Policy article of type {rule_type!r} (see docs/org-contract.md)")


def policy_article(org: Org, rule_type: str) -> tuple[str, str, dict[str, Any]]:
    """Cached ``_load_policy``: the routing and stage articles are read by every CRUD instance."""
    return org.cached(f"policy:{rule_type}", lambda o: _load_policy(o, rule_type))


def stage_catalogue(org: Org) -> StageCatalogue:
    def build(o: Org) -> StageCatalogue:
        art_id, text, rule = policy_article(o, "stage_activities")
        stage_of = {subj: STAGES.index(stage) for stage, subjects in rule["stages"].items()
                    for subj in subjects}
        return StageCatalogue(art_id, text, stage_of)
    return org.cached("stage_catalogue", build)


def opportunity_tasks(org: Org) -> dict[str, list[sqlite3.Row]]:
    """Opportunity Id -> its Tasks (Id, WhatId, Subject, Status, ActivityDate), ordered by Id."""
    def build(o: Org) -> dict[str, list[sqlite3.Row]]:
        out: dict[str, list[sqlite3.Row]] = defaultdict(list)
        for r in o.query("SELECT Id, WhatId, Subject, Status, Priority, ActivityDate FROM Task "
                         "WHERE WhatId LIKE '006%' ORDER BY Id"):
            out[r["WhatId"]].append(r)
        return dict(out)
    return org.cached("opportunity_tasks", build)


def opportunity_stages(org: Org) -> dict[str, sqlite3.Row]:
    """Opportunity Id -> (Id, Name, StageName, AccountId)."""
    return org.cached("opportunity_stages", lambda o: {
        r["Id"]: r for r in o.query("SELECT Id, Name, StageName, AccountId FROM Opportunity ORDER BY Id")})


TASK_COLUMNS = ["Id", "WhatId", "Subject", "Status", "ActivityDate"]


def sample_others(rng: random.Random, keys: list[T], exclude: T, k: int) -> list[T]:
    """Up to ``k`` random keys other than ``exclude``, without shuffling the whole (large) list."""
    picked = rng.sample(keys, min(k + 1, len(keys)))
    return [x for x in picked if x != exclude][:k]


def fill_distractors(pool: list[T], size: Callable[[T], int], budget: int, limit: int) -> list[T]:
    """Distractors taken from ``pool`` in its order (shuffle or rank it first) while they fit.

    ``size(item)`` is the item's rendered size in characters; at most ``limit`` items are taken
    and their sizes sum to at most ``budget``.
    """
    out: list[T] = []
    for item in pool:
        if len(out) >= limit:
            break
        n = size(item)
        if n <= budget:
            out.append(item)
            budget -= n
    return out



# ----------------------------------------------------------------------------------------------
# knowledge_qa
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FaqArticle:
    id: str
    title: str
    text: str                                # FAQ_Answer__c
    facts: tuple[tuple[str, str], ...]       # (question, answer), answers verbatim in the text


def faq_articles(org: Org) -> list[FaqArticle]:
    """FAQ articles with at least one askable fact: its answer is verbatim in the text and its
    question is asked once in the article (so the article and the question fix the answer)."""
    def build(o: Org) -> list[FaqArticle]:
        out = []
        for r in o.query("SELECT Id, Title, FAQ_Answer__c, PolicyRule__c FROM Knowledge__kav "
                         "WHERE ArticleType__c = 'FAQ' ORDER BY Id"):
            facts = json.loads(r["PolicyRule__c"] or "{}").get("facts", [])
            questions = [f["question"] for f in facts]
            ok = tuple((f["question"], f["answer"]) for f in facts
                       if questions.count(f["question"]) == 1 and f["answer"] in (r["FAQ_Answer__c"] or ""))
            if ok:
                out.append(FaqArticle(r["Id"], r["Title"], r["FAQ_Answer__c"], ok))
        return out
    return org.cached("faq_articles", build)


def _words(text: str) -> set[str]:
    return set(text.lower().rstrip("?").split())


def faq_question_index(org: Org) -> dict[str, list[str]]:
    """Question -> the FAQ articles whose ``PolicyRule__c`` facts ask it (every fact, not only the
    askable ones), by Id."""
    def build(o: Org) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for r in o.query("SELECT Id, PolicyRule__c FROM Knowledge__kav WHERE ArticleType__c = 'FAQ' ORDER BY Id"):
            for f in json.loads(r["PolicyRule__c"] or "{}").get("facts", []):
                if r["Id"] not in out[f["question"]]:
                    out[f["question"]].append(r["Id"])
        return dict(out)
    return org.cached("faq_question_index", build)


ARTICLE_ID_KIND = {"kind": "id", "prefix": "ka0", "allow_none": True}


@register
class KnowledgeQA(Task):
    """Half the instances ask for a fact (text answer), half for the Id of the article that answers
    a customer's question (a Knowledge article Id, or None): see the module docstring."""

    name = "knowledge_qa"
    answer = AnswerKind("text")
    levels = {
        "easy": "Fact form: only the article that states the fact, named by title. Article form: the "
                "article among 4 random other FAQ articles (5 random ones when the answer is None).",
        "medium": "Fact form: the article among up to 3 other FAQ articles, named by title. Article "
                  "form: among 6 others, the 2 asking the most similar questions included.",
        "hard": "Fact form: the article among up to 10 others, those asking the most similar questions "
                "(look-alike products, same fact) first, named only by its Id. Article form: among up "
                "to 10 others, the most similar first (a look-alike product's article when the answer "
                "is None).",
    }
    _n_distractors = {"easy": 0, "medium": 3, "hard": 10}
    # Article form: how many other articles are shown, and how many of them are the most similar.
    _n_others = {"easy": (4, 0), "medium": (6, 2), "hard": (10, 10)}
    P_ARTICLE_FORM = 0.5

    def generate(self, org: Org, difficulty: str, rng: random.Random) -> Instance:
        arts = faq_articles(org)
        art = pick(rng, arts, "FAQ article with a verbatim fact", org)
        question = rng.choice(art.facts)[0]
        if rng.random() < self.P_ARTICLE_FORM:
            return self._article_form(org, difficulty, rng, arts, art, question)
        others = [a for a in arts if a.id != art.id]
        if difficulty == "hard":    # articles asking the most similar questions come first
            pool = _by_similarity(rng, others, question)
        else:
            pool = shuffled(rng, others)
        distractors = fill_distractors(pool, lambda a: len(a.title) + len(a.text) + 30,
                                       CHAR_BUDGET[difficulty] - len(art.text),
                                       self._n_distractors[difficulty])
        shown = shuffled(rng, [art, *distractors])
        table = render_table("Knowledge__kav", ["Id", "Title", "FAQ_Answer__c"],
                             [{"Id": a.id, "Title": a.title, "FAQ_Answer__c": a.text} for a in shown])
        ref = f"knowledge article {art.id}" if difficulty == "hard" else f'the knowledge article "{art.title}"'
        # Gold: the article's own fact list, read back from the database.
        rule = json.loads(org.scalar("SELECT PolicyRule__c FROM Knowledge__kav WHERE Id = ?", (art.id,)))
        gold = next(f["answer"] for f in rule["facts"] if f["question"] == question)
        messages = build_messages(
            f"According to {ref}: {question}", [table],
            "the exact fact as the article states it (a number, word or short phrase).")
        meta = {"form": "fact", "article_id": art.id, "article_title": art.title, "question": question,
                "distractor_ids": [a.id for a in distractors], "n_articles": len(shown),
                "referenced_by": "Id" if difficulty == "hard" else "Title"}
        return Instance(self.name, difficulty, messages, [gold], meta)

    def _article_form(self, org: Org, difficulty: str, rng: random.Random, arts: list[FaqArticle],
                      art: FaqArticle, question: str) -> Instance:
        """Which shown article answers the customer's question? Its Id, or None when left out."""
        want_none = rng.random() < NONE_DRAW_RATE
        answering = set(faq_question_index(org).get(question, [art.id]))
        others = [a for a in arts if a.id not in answering]
        n_others, n_similar = self._n_others[difficulty]
        similar = _by_similarity(rng, others, question)[:n_similar]
        rest = shuffled(rng, [a for a in others if a not in similar])
        # A None instance shows one more other article in the answering article's place.
        k = n_others + int(want_none)
        distractors = fill_distractors(similar + rest, lambda a: len(a.title) + len(a.text) + 30,
                                       CHAR_BUDGET[difficulty] - (0 if want_none else len(art.text) + 30), k)
        shown = shuffled(rng, distractors if want_none else [art, *distractors])
        table = render_table("Knowledge__kav", ["Id", "Title", "FAQ_Answer__c"],
                             [{"Id": a.id, "Title": a.title, "FAQ_Answer__c": a.text} for a in shown])
        gold = self.article_gold(org, [a.id for a in shown], question)
        messages = build_messages(
            f'A customer asks: "{question}" Which of the knowledge articles above answers this question?',
            [table], "the Knowledge article Id (starts with ka0) of the article that answers it, or None if "
            "none of the articles shown does.")
        meta = {"form": "article", "answer_kind": dict(ARTICLE_ID_KIND), "article_id": art.id,
                "article_title": art.title, "question": question,
                "distractor_ids": [a.id for a in distractors], "shown_ids": [a.id for a in shown],
                "n_articles": len(shown), "article_shown": not want_none,
                "none_reason": "the answering article is not shown" if want_none else None}
        return Instance(self.name, difficulty, messages, [gold], meta)

    @staticmethod
    def article_gold(org: Org, shown_ids: list[str], question: str) -> str:
        """The shown FAQ article whose facts ask ``question`` (by SQL over PolicyRule__c); None when
        no shown article does."""
        rows = org.query(
            "SELECT DISTINCT k.Id FROM Knowledge__kav k, json_each(k.PolicyRule__c, '$.facts') f "
            f"WHERE k.ArticleType__c = 'FAQ' AND k.Id IN ({','.join('?' * len(shown_ids))}) "
            "AND json_extract(f.value, '$.question') = ?", (*shown_ids, question))
        if len(rows) > 1:
            raise AssertionError(f"several shown articles answer {question!r}: {[r[0] for r in rows]}")
        return rows[0][0] if rows else NONE_ANSWER


def _by_similarity(rng: random.Random, articles: list[FaqArticle], question: str) -> list[FaqArticle]:
    """Articles asking the most similar questions (most shared words) first; ties in random order."""
    words = _words(question)
    return sorted(shuffled(rng, articles), key=lambda a: -max(len(words & _words(q)) for q, _ in a.facts))


# ----------------------------------------------------------------------------------------------
# named_entity_disambiguation
# ----------------------------------------------------------------------------------------------

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
        shown = sorted([date, *rest[: self._n_dates[difficulty] - 1]])
        lines = [(d, o, x) for d in shown for o, x in history[d]]
        # The product list: bought products and look-alikes, padded with others drawn independently
        # of the listing order, which is random (so the gold's position in it says nothing).
        listed = {x for _, _, x in lines} | {pid for pid, n in p.products.items()
                                            if name_matches(n, mention.split()[0])}
        padding = [x for x in shuffled(rng, sorted(p.products)) if x not in listed]
        listed |= set(padding[:max(0, self._n_products[difficulty] - len(listed))])
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
                                  "that day matches.", today=org.today if difficulty == "hard" else None)
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


# ----------------------------------------------------------------------------------------------
# sales_insight_mining
# ----------------------------------------------------------------------------------------------

INSIGHT_FIELDS = {"Competitors__c": "competitors", "Topics__c": "subtopics"}


@dataclass(frozen=True)
class CallIndex:
    by_opp: dict[str, list[tuple[str, int]]]     # Opportunity Id -> [(transcript Id, body length)]
    candidates: dict[str, list[str]]             # field -> opportunities whose calls name some
    opps: list[str]                              # opportunities with calls, sorted
    opp_account: dict[str, str]
    by_account: dict[str, list[str]]             # AccountId -> its opportunities with calls


def call_index(org: Org) -> CallIndex:
    def build(o: Org) -> CallIndex:
        by_opp: dict[str, list[tuple[str, int]]] = defaultdict(list)
        named: dict[str, set[str]] = {f: set() for f in INSIGHT_FIELDS}
        for r in o.query("SELECT Id, OpportunityId__c, length(TranscriptBody__c), Competitors__c, Topics__c "
                         "FROM VoiceCallTranscript__c WHERE OpportunityId__c IS NOT NULL ORDER BY Id"):
            by_opp[r[1]].append((r[0], r[2] or 0))
            for f in INSIGHT_FIELDS:
                if split_list(r[f]):
                    named[f].add(r[1])
        accounts = {k: v["AccountId"] for k, v in opportunity_stages(o).items() if k in by_opp}
        by_account: dict[str, list[str]] = defaultdict(list)
        for opp in sorted(by_opp):
            by_account[accounts.get(opp, "")].append(opp)
        return CallIndex(dict(by_opp), {f: sorted(s) for f, s in named.items()}, sorted(by_opp), accounts,
                         dict(by_account))
    return org.cached("call_index", build)


@register
class SalesInsightMining(Task):
    name = "sales_insight_mining"
    answer = AnswerKind("text_list")
    levels = {
        "easy": "Only the opportunity's own calls (at most 2) are shown.",
        "medium": "The opportunity's calls are shown with up to 3 calls of other opportunities.",
        "hard": "The opportunity's calls are mixed with up to 10 other calls, those of the same account "
                "first, in random order.",
    }
    _n_distractors = {"easy": 0, "medium": 3, "hard": 10}

    def generate(self, org: Org, difficulty: str, rng: random.Random) -> Instance:
        idx = call_index(org)
        field = rng.choice(sorted(INSIGHT_FIELDS))
        cands = idx.candidates[field]
        if difficulty == "easy":
            cands = [c for c in cands if len(idx.by_opp[c]) <= 2] or cands
        opp = pick(rng, cands, f"opportunity calls naming {INSIGHT_FIELDS[field]}", org)
        own = idx.by_opp[opp]
        acc = idx.opp_account.get(opp, "")
        near = [o for o in idx.by_account.get(acc, []) if o != opp] if difficulty == "hard" else []
        far = sample_others(rng, idx.opps, opp, 4 * self._n_distractors[difficulty])
        # calls of the same account's other deals read most alike, so they come first when hard
        pool = [(o, c) for o in shuffled(rng, near) + [o for o in far if o not in near] for c in idx.by_opp[o]]
        budget = CHAR_BUDGET[difficulty] - sum(n for _, n in own)
        extra = fill_distractors(pool, lambda oc: oc[1][1] + 60, budget, self._n_distractors[difficulty])
        ids = [t for t, _ in own] + [c[0] for _, c in extra]
        rows = org.query("SELECT Id, OpportunityId__c, CreatedDate, TranscriptBody__c FROM VoiceCallTranscript__c "
                         f"WHERE Id IN ({','.join('?' * len(ids))})", tuple(ids))
        rows = shuffled(rng, rows) if difficulty == "hard" else sorted(rows, key=lambda r: r["CreatedDate"])
        table = render_table("VoiceCallTranscript__c", ["Id", "OpportunityId__c", "CreatedDate",
                                                        "TranscriptBody__c"], rows)
        opp_name = opportunity_stages(org)[opp]["Name"]
        what = INSIGHT_FIELDS[field]
        items = self.gold(org, opp, field)
        question = (f"Which {what} were raised in the voice calls about opportunity {opp_name} ({opp})? "
                    f"List every one named in those calls, as written there.")
        messages = build_messages(question, [table], f"the {what}, comma-separated.")
        meta = {"opportunity_id": opp, "field": field, "asks_for": what, "items": items,
                "transcript_ids": [t for t, _ in own], "distractor_ids": [c[0] for _, c in extra],
                "n_calls": len(rows)}
        return Instance(self.name, difficulty, messages, items, meta)

    @staticmethod
    def gold(org: Org, opportunity_id: str, field: str) -> list[str]:
        """Distinct names in ``field`` over the opportunity's calls, in order of first mention."""
        out: list[str] = []
        for r in org.query(f"SELECT {field} FROM VoiceCallTranscript__c WHERE OpportunityId__c = ? "
                           "ORDER BY CreatedDate, Id", (opportunity_id,)):
            out.extend(x for x in split_list(r[0]) if x not in out)
        return out


# ----------------------------------------------------------------------------------------------
# activity_priority
# ----------------------------------------------------------------------------------------------

def stage_consistent_opps(org: Org) -> tuple[list[str], list[str]]:
    """Opportunities with 'Not Started' tasks whose StageName agrees with their completed tasks (or
    that have none), split into (some task does not fit, all fit). Opportunities whose StageName is
    wrong belong to wrong_stage_rectification, and would make 'its stage' ambiguous here."""
    def build(o: Org) -> tuple[list[str], list[str]]:
        cat, opps = stage_catalogue(o), opportunity_stages(o)
        misfit: list[str] = []
        fit: list[str] = []
        for opp, tasks in opportunity_tasks(o).items():
            stage = opps[opp]["StageName"] if opp in opps else None
            pending = [t for t in tasks if t["Status"] == "Not Started"]
            derived = cat.derived_stage([t["Subject"] for t in tasks if t["Status"] == "Completed"])
            if stage not in STAGES or not pending or derived not in (None, stage):
                continue
            (misfit if any(not cat.fits(t["Subject"], stage) for t in pending) else fit).append(opp)
        return misfit, fit
    return org.cached("activity_priority", build)


@register
class ActivityPriority(Task):
    name = "activity_priority"
    answer = AnswerKind("id_list", prefix="00T", allow_none=True)
    levels = {
        "easy": "One opportunity with 5-8 tasks, in random order.",
        "medium": "The opportunity's tasks mixed with 2 other opportunities' tasks, in random order.",
        "hard": "Tasks of up to 8 other opportunities in random order.",
    }
    _n_other = {"easy": 0, "medium": 2, "hard": 8}

    def generate(self, org: Org, difficulty: str, rng: random.Random) -> Instance:
        cat, tasks, opps = stage_catalogue(org), opportunity_tasks(org), opportunity_stages(org)
        misfit, fit = stage_consistent_opps(org)
        pool = fit if (rng.random() < NONE_DRAW_RATE and fit) else misfit      # fit: every task fits (None)
        if difficulty == "easy":     # a short task list, but enough tasks to choose among
            pool = ([o for o in pool if MIN_CANDIDATES <= len(tasks[o]) <= 8]
                    or [o for o in pool if len(tasks[o]) <= 8] or pool)
        opp = pick(rng, pool, "opportunity with 'Not Started' tasks", org)
        others = fill_distractors(sample_others(rng, list(tasks), opp, 4 * self._n_other[difficulty]),
                                  lambda o: 70 * len(tasks[o]), CHAR_BUDGET[difficulty] - len(cat.text),
                                  self._n_other[difficulty])
        shown = [opp, *others]
        task_rows = [t for o in shown for t in tasks[o]]
        task_rows = shuffled(rng, task_rows)    # in Id order the pending (misfit) tasks would come last
        tables = [render_table("Opportunity", ["Id", "Name", "StageName"], [opps[o] for o in sorted(shown)]),
                  render_table("Task", TASK_COLUMNS, task_rows)]
        stage = opps[opp]["StageName"]
        gold = self.gold(org, cat, opp)
        question = (f"Which 'Not Started' tasks of opportunity {opp} do not fit its current stage "
                    f"({stage}) under the stage activity policy?")
        messages = build_messages(question, tables, "the Task Ids, comma-separated, or None if every "
                                  "'Not Started' task fits.",
                                  context=f"Stage activity policy (knowledge article {cat.article_id}):\n{cat.text}")
        meta = {"opportunity_id": opp, "stage": stage, "rule_article_id": cat.article_id,
                "rule": "fits when the subject belongs to the stage or the next one",
                "pending_task_ids": [t["Id"] for t in tasks[opp] if t["Status"] == "Not Started"],
                "other_opportunity_ids": others, "n_tasks": len(task_rows)}
        return Instance(self.name, difficulty, messages, gold, meta)

    @staticmethod
    def gold(org: Org, cat: StageCatalogue, opportunity_id: str) -> list[str]:
        stage = org.scalar("SELECT StageName FROM Opportunity WHERE Id = ?", (opportunity_id,))
        rows = org.query("SELECT Id, Subject FROM Task WHERE WhatId = ? AND Status = 'Not Started' ORDER BY Id",
                         (opportunity_id,))
        bad = [r["Id"] for r in rows if not cat.fits(r["Subject"], stage)]
        return bad or [NONE_ANSWER]
