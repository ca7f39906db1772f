"""The POLICY tasks' per-org data and the prompt pieces they share.

:class:`PolicyData` (one per org connection, :func:`org_data`) reads the Policy articles once,
classifies every candidate record once (quotes and their lines, leads, closed cases: gold,
relevant articles, a per-task hardness score) and keeps each level's pool of records, from which
:meth:`PolicyData.draw` picks an instance's record. The helpers at the end render the articles
table and the article-Id answer format, and sample distractor article ids reproducibly.
"""

from __future__ import annotations

import copy
import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from itertools import combinations
from typing import Any, TypeVar

from seccrm.world.tasks._policy_rules import (
    BANT_FACTORS,
    Article,
    ConfigIndex,
    bant_failures,
    check_config,
    check_discounts,
    load_policy_articles,
)
from seccrm.world.tasks.base import Instance, Org, build_messages, render_table

# The fewest articles an article-Id question shows (the relevant ones and distractors together).
MIN_ARTICLES = 5
# A level's pool of records is kept at least this large where the org allows (see PolicyData.draw), so
# that instances of one level rarely repeat a record.
MIN_POOL = 40

ID_ANSWER = "the Knowledge article Id (starts with ka0)"


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


def discount_hardness(checks: list[dict[str, Any]], tiers_of: dict[str, Article]) -> int:
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


class PolicyData:
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
                discount_hardness=discount_hardness(disc, self.tiers_of),
                config=cfg, config_hardness=_config_hardness(cfg, lines, self.types, self.by_id)))
        return out

    def discount_lines(self) -> list[LineRec]:
        return self.lazy("lines", lambda: [LineRec(c["line"], q, c, discount_hardness([c], self.tiers_of))
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


def org_data(org: Org) -> PolicyData:
    """The ``PolicyData`` of ``org``, built once per Org object."""
    return org.cached("policy_data", PolicyData)


# ----------------------------------------------------------------------------------------------
# Prompt pieces shared by the tasks.
# ----------------------------------------------------------------------------------------------

def sample_ids(rng: random.Random, pool: Iterable[str], k: int, exclude: Iterable[str] = ()) -> list[str]:
    """``k`` distinct ids from ``pool`` minus ``exclude`` (fewer if the pool is smaller), reproducibly."""
    skip = set(exclude)
    cands = sorted(set(pool) - skip)
    return rng.sample(cands, min(k, len(cands)))


def articles_table(data: PolicyData, ids: Iterable[str]) -> str:
    return render_table("Knowledge__kav (articles)", ["Id", "Title", "FAQ_Answer__c"],
                        [data.by_id[a].shown() for a in ids])


def make_instance(task: str, difficulty: str, messages: list[dict[str, str]], answer: list[str],
                  meta: dict[str, Any]) -> Instance:
    """The metadata is deep-copied: it holds lists from the per-org cache, which must not be shared."""
    return Instance(task, difficulty, messages, answer, copy.deepcopy(meta))


def id_messages(question: str, tables: list[str], context: str, none_when: str,
                terse: bool = False) -> list[dict[str, str]]:
    fmt = f"{ID_ANSWER}, or None if {none_when}."
    return build_messages(question, tables, fmt, context=context, terse=terse)
