"""The four POLICY task generators on a real tiny org.

Every gold answer is recomputed here by a second, independent computation: ``SELECT *`` over the
rows, the articles' ``PolicyRule__c`` parsed here, and plain loops (no code shared with the generator).
Also checked: every article the answer depends on is in the prompt, the prompt never leaks the rule
JSON or the fields the gold is computed from, determinism, the share of ``None`` golds, and that the
levels differ in what they demand.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections import Counter
from pathlib import Path

import pytest

from seccrm.world import rewards
from seccrm.world.arms import DIFFICULTIES
from seccrm.world.org import build_org, open_org
from seccrm.world.org.ids import is_valid_id
from seccrm.world.tasks import get_task, policy
from seccrm.world.tasks.base import NONE_ANSWER, Instance, Org

TASKS = ("lead_qualification", "quote_approval", "invalid_config", "policy_violation_identification")
SEEDS = range(40)
ORDER = ("discount_tiers", "quantity_limit", "bundle", "exclusion")


@pytest.fixture(scope="module")
def org_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_org(tmp_path_factory.mktemp("policy") / "org.sqlite", seed=0, size="tiny")


@pytest.fixture(scope="module")
def org(org_path: Path) -> Org:
    return Org(open_org(org_path))


@pytest.fixture(scope="module")
def instances(org: Org) -> dict[tuple[str, str], list[Instance]]:
    return {(t, d): [get_task(t).generate(org, d, random.Random(s)) for s in SEEDS]
            for t in TASKS for d in DIFFICULTIES}


# ----------------------------------------------------------------------------------------------
# The independent recomputation.
# ----------------------------------------------------------------------------------------------

def rules(org: Org, rule_type: str) -> list[tuple[str, dict]]:
    out = []
    for row in org.query("SELECT * FROM Knowledge__kav"):
        if row["ArticleType__c"] == "Policy" and row["PolicyRule__c"]:
            rule = json.loads(row["PolicyRule__c"])
            if rule["type"] == rule_type:
                out.append((row["Id"], rule))
    return out


def quote_lines(org: Org, quote_id: str) -> list[dict]:
    family = {p["Id"]: p["Family"] for p in org.query("SELECT * FROM Product2")}
    lines = [dict(r) for r in org.query("SELECT * FROM QuoteLineItem") if r["QuoteId"] == quote_id]
    for ln in lines:
        ln["Family"] = family[ln["Product2Id"]]
    return lines


def oracle_quote_approval(org: Org, quote_id: str, line_ids: list[str]) -> str:
    broken = []
    for ln in quote_lines(org, quote_id):
        if ln["Id"] not in line_ids:  # easy asks about one line of the quote
            continue
        for art_id, rule in rules(org, "discount_tiers"):
            if rule["family"] != ln["Family"]:
                continue
            # Walk the tiers from the top: the first whose minimum the quantity reaches applies.
            allowed = next(pct for min_qty, pct in sorted(rule["tiers"], reverse=True) if ln["Quantity"] >= min_qty)
            if ln["Discount"] > allowed:
                broken.append(art_id)
    return min(broken) if broken else NONE_ANSWER


def config_broken(org: Org, quote_id: str) -> dict[str, list[str]]:
    lines = quote_lines(org, quote_id)
    products = {ln["Product2Id"] for ln in lines}
    broken: dict[str, list[str]] = {t: [] for t in ORDER[1:]}
    for art_id, rule in rules(org, "quantity_limit"):
        if any(ln["Product2Id"] == rule["product_id"] and ln["Quantity"] > rule["max_quantity"] for ln in lines):
            broken["quantity_limit"].append(art_id)
    for art_id, rule in rules(org, "bundle"):
        if rule["product_id"] in products and rule["requires_product_id"] not in products:
            broken["bundle"].append(art_id)
    for art_id, rule in rules(org, "exclusion"):
        if all(p in products for p in rule["product_ids"]):
            broken["exclusion"].append(art_id)
    return broken


def oracle_invalid_config(org: Org, quote_id: str) -> str:
    broken = config_broken(org, quote_id)
    for t in ORDER[1:]:
        if broken[t]:
            return min(broken[t])
    return NONE_ANSWER


def oracle_lead_qualification(org: Org, lead_id: str) -> list[str]:
    lead = next(r for r in org.query("SELECT * FROM Lead") if r["Id"] == lead_id)
    (_, rule), = rules(org, "bant")
    fails = []
    if lead["Budget__c"] < rule["budget_min"]:
        fails.append("Budget")
    if lead["Title"] not in rule["authority_titles"]:
        fails.append("Authority")
    if lead["NeedFamily__c"] not in rule["need_families"]:
        fails.append("Need")
    if lead["TimelineDays__c"] > rule["timeline_max_days"]:
        fails.append("Timeline")
    return fails or [NONE_ANSWER]


def oracle_policy_violation(org: Org, case_id: str) -> str:
    case = next(r for r in org.query('SELECT * FROM "Case"') if r["Id"] == case_id)
    (art_id, rule), = [(a, r) for a, r in rules(org, "allowed_solutions") if r["issue_id"] == case["IssueId__c"]]
    return NONE_ANSWER if case["OfferedSolution__c"] in rule["solutions"] else art_id


def oracle(org: Org, inst: Instance) -> list[str]:
    m = inst.metadata
    if inst.task == "lead_qualification":  # the failures among the factors the question names
        asked = m.get("factors_asked", policy.BANT_FACTORS)
        assert f"which of the BANT factors {' and '.join(asked)} does" in user_text(inst) or len(asked) == 4
        return [f for f in oracle_lead_qualification(org, m["lead_id"]) if f in asked] or [NONE_ANSWER]
    if inst.task == "quote_approval":
        if inst.difficulty != "easy":  # the question is about the whole quote
            assert sorted(m["line_ids"]) == sorted(ln["Id"] for ln in quote_lines(org, m["quote_id"]))
        return [oracle_quote_approval(org, m["quote_id"], m["line_ids"])]
    if inst.task == "invalid_config":
        return [oracle_invalid_config(org, m["quote_id"])]
    return [oracle_policy_violation(org, m["case_id"])]


def all_of(instances: dict, task: str) -> list[Instance]:
    return [i for d in DIFFICULTIES for i in instances[(task, d)]]


def user_text(inst: Instance) -> str:
    return inst.messages[-1]["content"]


# ----------------------------------------------------------------------------------------------
# Gold answers.
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("task", TASKS)
def test_gold_matches_independent_recomputation(org: Org, instances: dict, task: str) -> None:
    for inst in all_of(instances, task):
        assert inst.answer == oracle(org, inst), (inst.difficulty, inst.metadata)


@pytest.mark.parametrize("task", TASKS)
def test_answers_are_well_formed_and_exist(org: Org, instances: dict, task: str) -> None:
    articles = {r["Id"] for r in org.query("SELECT * FROM Knowledge__kav")}
    kind = get_task(task).answer
    for inst in all_of(instances, task):
        if inst.answer == [NONE_ANSWER]:
            continue
        if kind.kind == "subset":
            assert set(inst.answer) <= set(kind.choices) and len(set(inst.answer)) == len(inst.answer)
        else:
            (gold,) = inst.answer
            assert is_valid_id(gold, "ka0") and gold in articles
        json.dumps(inst.metadata)  # metadata must be plain JSON for the JSONL files


@pytest.mark.parametrize("task", TASKS)
def test_gold_scores_one_and_a_wrong_article_scores_format_only(instances: dict, task: str) -> None:
    """The golds parse as the task's answer kind in the reward; a plausible wrong answer earns 0.1."""
    for inst in all_of(instances, task):
        record = {"task": inst.task, "answer": inst.answer, "metadata": inst.metadata}
        assert rewards.score(record, rewards.gold_completion(record)) == 1.0
        if task == "lead_qualification":
            wrong = "None" if inst.answer != [NONE_ANSWER] else "Budget"
        else:  # another article of the prompt, or None when the gold is an article
            others = [a for a in inst.metadata["articles_shown"] if a not in inst.answer]
            wrong = NONE_ANSWER if inst.answer != [NONE_ANSWER] or not others else others[0]
        assert rewards.score(record, f"<answer>{wrong}</answer>") == pytest.approx(0.1), (inst.answer, wrong)


def test_hard_quotes_have_interacting_rules(org: Org, instances: dict) -> None:
    """Hard quotes hold several rules at once; where several break, the gold follows the order."""
    def n_relevant(quote_id: str) -> int:
        prods = {ln["Product2Id"] for ln in quote_lines(org, quote_id)}
        return (sum(r["product_id"] in prods for _, r in rules(org, "quantity_limit") + rules(org, "bundle"))
                + sum(set(r["product_ids"]) <= prods for _, r in rules(org, "exclusion")))

    relevant = {d: statistics.mean(n_relevant(i.metadata["quote_id"]) for i in instances[("invalid_config", d)])
                for d in DIFFICULTIES}
    assert relevant["easy"] <= 1.2 and relevant["hard"] >= 2, relevant
    for inst in [i for d in DIFFICULTIES for i in instances[("invalid_config", d)]]:
        broken = config_broken(org, inst.metadata["quote_id"])
        if sum(map(len, broken.values())) >= 2:
            first_type = next(t for t in ORDER[1:] if broken[t])
            assert inst.answer == [min(broken[first_type])]
    families = {d: statistics.mean(len({c["family"] for c in i.metadata["line_checks"]})
                                   for i in instances[("quote_approval", d)]) for d in DIFFICULTIES}
    assert families["easy"] == 1 < families["medium"] < families["hard"], families


# ----------------------------------------------------------------------------------------------
# The prompt: decidable, and never leaking what the gold is computed from.
# ----------------------------------------------------------------------------------------------

def test_every_article_the_answer_depends_on_is_shown(org: Org, instances: dict) -> None:
    families = {p["Id"]: p["Family"] for p in org.query("SELECT * FROM Product2")}
    for inst in [i for t in TASKS for i in all_of(instances, t)]:
        text, m = user_text(inst), inst.metadata
        if inst.answer != [NONE_ANSWER] and inst.task != "lead_qualification":
            assert inst.answer[0] in text
        if inst.task == "quote_approval":
            fams = {families[ln["Product2Id"]] for ln in quote_lines(org, m["quote_id"]) if ln["Id"] in m["line_ids"]}
            assert all(line_id in text for line_id in m["line_ids"])
            needed = [a for a, r in rules(org, "discount_tiers") if r["family"] in fams]
        elif inst.task == "invalid_config":
            prods = {ln["Product2Id"] for ln in quote_lines(org, m["quote_id"])}
            needed = [a for a, r in rules(org, "quantity_limit") + rules(org, "bundle") if r["product_id"] in prods]
            needed += [a for a, r in rules(org, "exclusion") if set(r["product_ids"]) <= prods]
        elif inst.task == "lead_qualification":
            needed = [a for a, _ in rules(org, "bant")]
        else:
            case = org.query('SELECT * FROM "Case" WHERE Id = ?', (m["case_id"],))[0]
            needed = [a for a, r in rules(org, "allowed_solutions") if r["issue_id"] == case["IssueId__c"]]
            assert case["OfferedSolution__c"] in text, "the offered solution must be stated in a message"
        assert needed and all(a in text for a in needed), (inst.task, inst.difficulty, needed)


def test_prompt_never_shows_rule_json_or_gold_fields(instances: dict) -> None:
    for inst in [i for t in TASKS for i in all_of(instances, t)]:
        text = "\n".join(msg["content"] for msg in inst.messages)
        for leak in ("PolicyRule__c", '"type":', "Budget__c", "TimelineDays__c", "NeedFamily__c",
                     "OfferedSolution__c"):
            assert leak not in text, (inst.task, leak)
        assert inst.metadata.get("lead_id", inst.metadata.get("quote_id", inst.metadata.get("case_id"))) in text


# ----------------------------------------------------------------------------------------------
# Determinism, balance, difficulty, speed.
# ----------------------------------------------------------------------------------------------

def test_same_seed_same_instance_even_with_a_fresh_cache(org: Org, org_path: Path, instances: dict) -> None:
    fresh = Org(open_org(org_path))  # a new connection and an empty cache must give the same draws
    for task in TASKS:
        for d in DIFFICULTIES:
            for s in (0, 7, 31):
                again = get_task(task).generate(fresh, d, random.Random(s))
                assert again == instances[(task, d)][s]
    other = [get_task("quote_approval").generate(org, "medium", random.Random(s)).metadata["quote_id"]
             for s in range(1000, 1010)]
    assert len(set(other)) > 1, "different seeds should draw different quotes"


@pytest.mark.parametrize("task", TASKS)
def test_none_share_is_balanced(instances: dict, task: str) -> None:
    """None golds at every level, about NONE_DRAW_RATE of them (the same share at every level)."""
    shares = {d: statistics.mean(i.answer == [NONE_ANSWER] for i in instances[(task, d)]) for d in DIFFICULTIES}
    overall = statistics.mean(shares.values())
    assert 0.1 <= overall <= 0.35, shares
    assert all(0.05 <= s <= 0.45 for s in shares.values()), shares


@pytest.mark.parametrize("task", TASKS)
def test_hard_demands_more_than_easy(instances: dict, task: str) -> None:
    def mean(d: str, f) -> float:
        return statistics.mean(f(i) for i in instances[(task, d)])

    length = {d: mean(d, lambda i: len(user_text(i))) for d in DIFFICULTIES}
    assert length["easy"] < length["medium"] < length["hard"], length
    articles = {d: mean(d, lambda i: len(i.metadata["articles_shown"])) for d in DIFFICULTIES}
    assert articles["easy"] < articles["medium"] < articles["hard"], articles
    if task in ("quote_approval", "invalid_config"):
        assert mean("easy", lambda i: i.metadata["n_lines"]) < mean("hard", lambda i: i.metadata["n_lines"])
        assert mean("easy", lambda i: i.metadata["hardness"]) < mean("hard", lambda i: i.metadata["hardness"])


def test_easy_lead_qualification_shows_only_the_bant_article(instances: dict) -> None:
    counts = [len(i.metadata["articles_shown"]) for i in instances[("lead_qualification", "easy")]]
    assert all(c == 1 for c in counts), counts


def test_easy_lead_qualification_asks_about_two_factors_of_a_one_call_lead(instances: dict) -> None:
    """Easy names two factors (so its golds include pairs); medium and hard ask about all four."""
    easy = instances[("lead_qualification", "easy")]
    assert all(len(i.metadata["factors_asked"]) == 2 and len(i.metadata["transcripts"]) == 1 for i in easy)
    assert len({tuple(i.metadata["factors_asked"]) for i in easy}) >= 4
    assert any(len(i.answer) == 2 for i in easy) and any(len(i.answer) == 1 for i in easy)
    for i in instances[("lead_qualification", "medium")] + instances[("lead_qualification", "hard")]:
        assert "factors_asked" not in i.metadata and "which BANT factors does the lead fail?" in user_text(i)


ID_TASKS = ("quote_approval", "invalid_config", "policy_violation_identification")


@pytest.fixture(scope="module")
def small_org(tmp_path_factory: pytest.TempPathFactory) -> Org:
    return Org(open_org(build_org(tmp_path_factory.mktemp("small") / "org.sqlite", seed=0, size="small")))


@pytest.mark.parametrize("task", ID_TASKS)
def test_every_level_shows_five_articles_in_no_telling_order(small_org: Org, instances: dict, task: str) -> None:
    """At least 5 article Ids shown at every level (tiny and small orgs), and no position among them
    holds more than 40% of the golds (small org)."""
    from seccrm.data.baselines import candidates

    kind = rewards.answer_kind(task)
    for d in DIFFICULTIES:
        assert all(len(i.metadata["articles_shown"]) >= policy.MIN_ARTICLES for i in instances[(task, d)])
        recs = [{"task": task, "messages": i.messages, "answer": i.answer, "metadata": i.metadata}
                for i in (get_task(task).generate(small_org, d, random.Random(900 + s)) for s in range(60))]
        shown = [candidates(r, kind) for r in recs]
        assert min(len(c) for c in shown) >= policy.MIN_ARTICLES, (task, d)
        pos = Counter(c.index(r["answer"][0]) for r, c in zip(recs, shown, strict=True) if r["answer"][0] in c)
        assert max(pos.values()) <= 0.4 * len(recs), (task, d, pos)


def test_generation_is_fast(org: Org) -> None:
    for task in TASKS:  # warm the per-org cache first: it is built once per org
        get_task(task).generate(org, "hard", random.Random(0))
    start = time.perf_counter()
    n = 0
    for task in TASKS:
        for d in DIFFICULTIES:
            for s in range(25):
                get_task(task).generate(org, d, random.Random(s))
                n += 1
    per_instance = (time.perf_counter() - start) / n
    assert per_instance < 0.02, f"{per_instance * 1e3:.1f} ms per instance"


# ----------------------------------------------------------------------------------------------
# The rule checks on hand-made rows.
# ----------------------------------------------------------------------------------------------

def test_applicable_tier_at_the_boundaries() -> None:
    tiers = [[10, 10], [1, 5], [50, 15]]  # unsorted on purpose
    assert policy.applicable_tier(tiers, 1) == (1, 5)
    assert policy.applicable_tier(tiers, 9) == (1, 5)
    assert policy.applicable_tier(tiers, 10) == (10, 10)
    assert policy.applicable_tier(tiers, 49.0) == (10, 10)
    assert policy.applicable_tier(tiers, 500) == (50, 15)


def test_check_discounts_breaks_only_above_the_cap() -> None:
    art = policy.Article("ka0A", "t", "x", {"type": "discount_tiers", "family": "F", "tiers": [[1, 5], [10, 10]]})
    lines = [{"Id": f"L{i}", "Product2Id": "P", "Family": fam, "Quantity": q, "Discount": d}
             for i, (fam, q, d) in enumerate([("F", 10, 10), ("F", 9, 6), ("G", 1, 90)])]
    got = policy.check_discounts(lines, {"F": art})
    assert [c["broken"] for c in got] == [False, True, False]
    assert got[1]["max_discount"] == 5 and got[2]["article"] is None


def test_check_config_relevant_broken_and_near() -> None:
    idx = policy.ConfigIndex()
    arts = [policy.Article("ka0Q", "", "", {"type": "quantity_limit", "product_id": "P1", "max_quantity": 5}),
            policy.Article("ka0B", "", "", {"type": "bundle", "product_id": "P2", "requires_product_id": "P3"}),
            policy.Article("ka0C", "", "", {"type": "bundle", "product_id": "P4", "requires_product_id": "P1"}),
            policy.Article("ka0E", "", "", {"type": "exclusion", "product_ids": ["P1", "P2"]}),
            policy.Article("ka0F", "", "", {"type": "exclusion", "product_ids": ["P2", "P9"]})]
    for a in arts:
        idx.add(a)
    lines = [{"Id": "L1", "Product2Id": "P1", "Quantity": 5.0}, {"Id": "L2", "Product2Id": "P2", "Quantity": 1.0}]
    got = policy.check_config(lines, idx)
    assert got["relevant"] == ["ka0B", "ka0E", "ka0Q"]      # limit at (not above) its max still relevant
    assert [b["article"] for b in got["broken"]] == ["ka0B", "ka0E"]   # bundle before exclusion
    assert got["near"] == ["ka0C", "ka0F"]
    lines[0]["Quantity"] = 6.0
    assert policy.check_config(lines, idx)["broken"][0]["article"] == "ka0Q"
    types = {a.id: a.type for a in arts}
    assert policy.first_broken(["ka0E", "ka0B", "ka0Q"], types) == "ka0Q"
    assert policy.first_broken([], types) is None


def test_bant_failures_thresholds() -> None:
    rule = {"budget_min": 1000, "authority_titles": ["CEO"], "need_families": ["A"], "timeline_max_days": 90}
    lead = {"Budget__c": 1000.0, "Title": "CEO", "NeedFamily__c": "A", "TimelineDays__c": 90}
    assert policy.bant_failures(lead, rule) == []
    lead = {"Budget__c": 999.0, "Title": "Intern", "NeedFamily__c": "B", "TimelineDays__c": 91}
    assert policy.bant_failures(lead, rule) == ["Budget", "Authority", "Need", "Timeline"]
