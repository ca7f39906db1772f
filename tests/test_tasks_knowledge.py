"""KNOWLEDGE generators: every gold answer recomputed independently from raw rows.

The recomputations below read whole tables (``SELECT *``), parse the articles' JSON themselves and
loop in plain Python; they share no code with the generators' SQL.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import statistics
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from seccrm.data.baselines import candidates
from seccrm.world.arms import DIFFICULTIES
from seccrm.world.rewards import instance_answer_kind, score_details
from seccrm.world.tasks import get_task
from seccrm.world.tasks.base import NONE_ANSWER, Instance, Org

TASKS = ("knowledge_qa", "named_entity_disambiguation", "sales_insight_mining", "activity_priority")
SEEDS = range(12)
STAGE_ORDER = ["Qualification", "Discovery", "Quote", "Negotiation", "Closed"]


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Org:
    from seccrm.world.org import build_org, open_org
    path = build_org(Path(tmp_path_factory.mktemp("org")) / "org.sqlite", seed=3, size="tiny")
    return Org(open_org(path))


@pytest.fixture(scope="module")
def raw(org: Org) -> dict[str, list[dict]]:
    """Whole tables as plain dicts, for the independent recomputations."""
    tables = ("Knowledge__kav", "Order", "OrderItem", "Product2", "VoiceCallTranscript__c", "Task",
              "Opportunity")
    return {t: [dict(r) for r in org.conn.execute(f'SELECT * FROM "{t}"')] for t in tables}


@pytest.fixture(scope="module")
def instances(org: Org) -> dict[tuple[str, str], list[Instance]]:
    return {(t, d): [get_task(t).generate(org, d, random.Random(s)) for s in SEEDS]
            for t in TASKS for d in DIFFICULTIES}


def prompt(inst: Instance) -> str:
    return inst.messages[-1]["content"]


def items(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


# ----------------------------------------------------------------------------------------------
# Independent recomputation, one per task
# ----------------------------------------------------------------------------------------------

def expect_knowledge_qa(raw: dict, meta: dict) -> list[str]:
    if meta.get("form") == "article":   # the shown article whose facts ask the question, else None
        found = [a["Id"] for a in raw["Knowledge__kav"] if a["Id"] in meta["shown_ids"]
                 and a["ArticleType__c"] == "FAQ"
                 and any(f["question"] == meta["question"] for f in json.loads(a["PolicyRule__c"])["facts"])]
        assert len(found) <= 1, "at most one shown article may answer the question"
        return found or [NONE_ANSWER]
    art = next(a for a in raw["Knowledge__kav"] if a["Id"] == meta["article_id"])
    facts = json.loads(art["PolicyRule__c"])["facts"]
    answers = [f["answer"] for f in facts if f["question"] == meta["question"]]
    assert len(answers) == 1, "the question must be asked once in its article"
    return answers


def expect_ned(raw: dict, meta: dict) -> list[str]:
    names = {p["Id"]: p["Name"] for p in raw["Product2"]}
    orders = {o["Id"] for o in raw["Order"]
              if o["AccountId"] == meta["account_id"] and o["EffectiveDate"][:10] == meta["purchase_date"]}
    words = meta["mention"].lower().split()
    found = {i["Product2Id"] for i in raw["OrderItem"] if i["OrderId"] in orders
             and names[i["Product2Id"]].lower().split()[: len(words)] == words}
    assert len(found) <= 1, "the mention must never be ambiguous"
    return sorted(found) or [NONE_ANSWER]


def expect_insight(raw: dict, meta: dict) -> list[str]:
    calls = sorted((c for c in raw["VoiceCallTranscript__c"] if c["OpportunityId__c"] == meta["opportunity_id"]),
                   key=lambda c: (c["CreatedDate"], c["Id"]))
    out: list[str] = []
    for c in calls:
        for x in items(c[meta["field"]]):
            if x not in out:
                out.append(x)
    return out


def stage_rule(raw: dict) -> tuple[str, dict[str, str]]:
    """(article text, subject -> stage) from the one stage_activities article."""
    for a in raw["Knowledge__kav"]:
        rule = json.loads(a["PolicyRule__c"] or "{}")
        if rule.get("type") == "stage_activities":
            return a["FAQ_Answer__c"], {s: st for st, subs in rule["stages"].items() for s in subs}
    raise AssertionError("no stage_activities article")


def expect_activity(raw: dict, meta: dict) -> list[str]:
    _, stage_of = stage_rule(raw)
    stage = next(o["StageName"] for o in raw["Opportunity"] if o["Id"] == meta["opportunity_id"])
    ok = {stage} | ({STAGE_ORDER[STAGE_ORDER.index(stage) + 1]} if stage != "Closed" else set())
    bad = sorted(t["Id"] for t in raw["Task"] if t["WhatId"] == meta["opportunity_id"]
                 and t["Status"] == "Not Started" and stage_of.get(t["Subject"]) not in ok)
    return bad or [NONE_ANSWER]


EXPECT = {"knowledge_qa": expect_knowledge_qa, "named_entity_disambiguation": expect_ned,
          "sales_insight_mining": expect_insight, "activity_priority": expect_activity}


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_gold_matches_independent_recomputation(instances, raw, task, difficulty):
    for inst in instances[(task, difficulty)]:
        assert inst.task == task and inst.difficulty == difficulty
        want = EXPECT[task](raw, inst.metadata)
        got = sorted(inst.answer) if task == "activity_priority" else inst.answer
        assert got == want, (task, difficulty, inst.metadata)


# ----------------------------------------------------------------------------------------------
# The prompt holds what the answer needs, and no more
# ----------------------------------------------------------------------------------------------

def test_knowledge_qa_prompt_shows_the_fact(instances, raw):
    for d in DIFFICULTIES:
        for inst in instances[("knowledge_qa", d)]:
            p = prompt(inst)
            assert inst.answer[0] in p or inst.answer == [NONE_ANSWER]
            assert inst.metadata["question"] in p and "PolicyRule__c" not in p
            if inst.metadata["form"] == "article":
                assert all(a in p for a in inst.metadata["shown_ids"])
                assert (inst.metadata["article_id"] in p) == (inst.answer != [NONE_ANSWER])
                continue
            assert (inst.metadata["article_id"] in p) if d == "hard" else (inst.metadata["article_title"] in p)
            assert "PolicyRule__c" not in p


def test_ned_prompt_states_the_date(instances, org):
    for d in DIFFICULTIES:
        for inst in instances[("named_entity_disambiguation", d)]:
            m, p = inst.metadata, prompt(inst)
            assert f'the {m["mention"]} I bought' in p
            if d == "hard":
                days = (org.today - dt.date.fromisoformat(m["purchase_date"])).days
                assert f"{days} days ago" in p and org.today.isoformat() in p
            else:
                assert f'on {m["purchase_date"]}' in p
            if inst.answer != [NONE_ANSWER]:
                assert inst.answer[0] in p


def test_ned_loose_mentions_are_shared_by_look_alikes(instances, raw):
    """From medium on, the customer's words fit several products of the catalogue."""
    names = [p["Name"].lower().split() for p in raw["Product2"]]
    shared = 0
    for inst in instances[("named_entity_disambiguation", "hard")]:
        words = inst.metadata["mention"].lower().split()
        shared += sum(n[: len(words)] == words for n in names) > 1
    assert shared >= len(SEEDS) // 2


def test_insight_prompt_hides_the_gold_fields(instances):
    for d in DIFFICULTIES:
        for inst in instances[("sales_insight_mining", d)]:
            p = prompt(inst)
            assert "Competitors__c" not in p and "Topics__c" not in p
            assert all(x in p for x in inst.answer), "every gold item is stated verbatim in a shown call"
            assert inst.metadata["asks_for"] in p


def test_activity_prompt_shows_article_and_pending_tasks(instances, raw):
    text, _ = stage_rule(raw)
    for d in DIFFICULTIES:
        for inst in instances[("activity_priority", d)]:
            p = prompt(inst)
            assert text[:200] in p.replace("\n", " ") or text[:200] in p
            assert all(t in p for t in inst.metadata["pending_task_ids"])


# ----------------------------------------------------------------------------------------------
# Determinism, metadata, difficulty
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("task", TASKS)
def test_deterministic_for_a_seed(org, task):
    for d in DIFFICULTIES:
        a = get_task(task).generate(org, d, random.Random(7))
        b = get_task(task).generate(org, d, random.Random(7))
        assert (a.messages, a.answer, a.metadata) == (b.messages, b.answer, b.metadata)
        others = {json.dumps(get_task(task).generate(org, d, random.Random(s)).messages) for s in range(8)}
        assert len(others) > 1, "different seeds should give different instances"


REQUIRED_META = {
    "knowledge_qa": {"article_id", "question", "distractor_ids", "n_articles"},
    "named_entity_disambiguation": {"account_id", "purchase_date", "mention", "date_phrase", "n_purchase_dates"},
    "sales_insight_mining": {"opportunity_id", "field", "items", "transcript_ids", "n_calls"},
    "activity_priority": {"opportunity_id", "stage", "rule_article_id", "pending_task_ids", "n_tasks"},
}


@pytest.mark.parametrize("task", TASKS)
def test_metadata_and_answer_shape(instances, task):
    for d in DIFFICULTIES:
        for inst in instances[(task, d)]:
            kind = instance_answer_kind({"task": task, "metadata": inst.metadata})
            assert REQUIRED_META[task] <= set(inst.metadata)
            json.dumps(inst.metadata)                       # must be serialisable as written
            assert inst.answer and all(isinstance(a, str) and a for a in inst.answer)
            if kind.prefix and inst.answer != [NONE_ANSWER]:
                assert all(a.startswith(kind.prefix) and len(a) == 18 for a in inst.answer)
            assert inst.answer != [NONE_ANSWER] or kind.allow_none
            assert sum(len(m["content"]) for m in inst.messages) < 12_000


# How much each level asks of a model: the prompt and the records to search through.
SIZE = {"knowledge_qa": "n_articles", "named_entity_disambiguation": "n_purchase_dates",
        "sales_insight_mining": "n_calls", "activity_priority": "n_tasks"}


@pytest.mark.parametrize("task", TASKS)
def test_hard_shows_more_than_easy(instances, task):
    def mean(d: str, f) -> float:
        return statistics.mean(f(i) for i in instances[(task, d)])
    for f in (lambda i: len(prompt(i)), lambda i: i.metadata[SIZE[task]]):
        assert mean("easy", f) < mean("medium", f) <= mean("hard", f)


@pytest.mark.parametrize("task", ["named_entity_disambiguation", "activity_priority", "knowledge_qa"])
def test_none_answers_at_every_level(org, task):
    """Tasks whose answer may be None give None at every level, about equally often."""
    nones = defaultdict(int)
    for d in DIFFICULTIES:
        for s in range(60):
            nones[d] += get_task(task).generate(org, d, random.Random(s)).answer == [NONE_ANSWER]
    assert all(2 <= n <= 24 for n in nones.values()), nones


def test_cache_is_per_connection(org, tmp_path):
    """A second org in the same process gets its own lookups, not those cached for the first."""
    from seccrm.world.org import build_org, open_org
    get_task("named_entity_disambiguation").generate(org, "easy", random.Random(0))    # fills the cache
    other = Org(open_org(build_org(tmp_path / "other.sqlite", seed=11, size="tiny")))
    inst = get_task("named_entity_disambiguation").generate(other, "easy", random.Random(0))
    accounts = {r[0] for r in other.conn.execute('SELECT AccountId FROM "Order"')}
    orders = {r[0] for r in other.conn.execute('SELECT Id FROM "Order" WHERE AccountId = ?',
                                               (inst.metadata["account_id"],))}
    assert inst.metadata["account_id"] in accounts and set(inst.metadata["order_ids"]) <= orders
    assert inst.answer == expect_ned({t: [dict(r) for r in other.conn.execute(f'SELECT * FROM "{t}"')]
                                      for t in ("Order", "OrderItem", "Product2")}, inst.metadata)


# ----------------------------------------------------------------------------------------------
# Id questions: enough candidates, in no telling order (on the small org); the article-Id form
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_org(tmp_path_factory: pytest.TempPathFactory) -> Org:
    from seccrm.world.org import build_org, open_org
    return Org(open_org(build_org(Path(tmp_path_factory.mktemp("small")) / "org.sqlite", seed=0, size="small")))


def record(inst: Instance) -> dict:
    return {"task": inst.task, "messages": inst.messages, "answer": inst.answer, "metadata": inst.metadata}


@pytest.mark.parametrize("task", ["named_entity_disambiguation", "activity_priority", "knowledge_qa"])
def test_every_level_shows_five_candidates_in_no_telling_order(small_org, task):
    for d in DIFFICULTIES:
        recs = [record(get_task(task).generate(small_org, d, random.Random(700 + s))) for s in range(60)]
        if task == "knowledge_qa":
            recs = [r for r in recs if r["metadata"]["form"] == "article"]
            assert len(recs) >= 15, d
        shown = [candidates(r, instance_answer_kind(r)) for r in recs]
        assert min(len(c) for c in shown) >= 5, (task, d)
        pos = Counter(c.index(r["answer"][0]) for r, c in zip(recs, shown, strict=True) if r["answer"][0] in c)
        assert max(pos.values()) <= 0.4 * len(recs), (task, d, pos)


def test_knowledge_qa_article_form(instances):
    """Half the instances ask for an article Id (or None): the gold scores 1.0, another shown
    article 0.1, and the answer kind comes from the instance's metadata."""
    forms = Counter(i.metadata["form"] for d in DIFFICULTIES for i in instances[("knowledge_qa", d)])
    assert forms["article"] >= 8 and forms["fact"] >= 8, forms
    seen_none = False
    for d in DIFFICULTIES:
        for inst in instances[("knowledge_qa", d)]:
            rec = record(inst)
            if inst.metadata["form"] != "article":
                assert instance_answer_kind(rec).kind == "text"
                continue
            kind = instance_answer_kind(rec)
            assert (kind.kind, kind.prefix, kind.allow_none) == ("id", "ka0", True)
            assert score_details(rec, f"<answer>{inst.answer[0]}</answer>")["reward"] == 1.0
            wrong = next(a for a in inst.metadata["shown_ids"] if a != inst.answer[0])
            assert score_details(rec, f"<answer>{wrong}</answer>")["reward"] == 0.1
            if inst.answer == [NONE_ANSWER]:
                seen_none = True
                assert inst.metadata["article_id"] not in prompt(inst)
            else:
                assert score_details(rec, "<answer>None</answer>")["reward"] == 0.1
    assert seen_none
