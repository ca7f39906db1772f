"""CRUD generators: every gold write action recomputed independently from raw rows.

The recomputations read whole tables (``SELECT *``), parse the policy articles' JSON themselves and
loop in plain Python (their own month arithmetic, their own tie-breaks); they share no code with the
generators' SQL.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import statistics
from collections import Counter
from pathlib import Path

import pytest

from seccrm.world.arms import DIFFICULTIES
from seccrm.world.tasks import get_task
from seccrm.world.tasks.base import Instance, Org

TASKS = ("case_routing", "lead_routing", "wrong_stage_rectification")
SEEDS = range(12)
STAGE_ORDER = ["Qualification", "Discovery", "Quote", "Negotiation", "Closed"]
OBJECT = {"case_routing": ("Case", "OwnerId"), "lead_routing": ("Lead", "OwnerId"),
          "wrong_stage_rectification": ("Opportunity", "StageName")}


@pytest.fixture(scope="module")
def org_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from seccrm.world.org import build_org
    return build_org(Path(tmp_path_factory.mktemp("org")) / "org.sqlite", seed=5, size="tiny")


@pytest.fixture(scope="module")
def org(org_path: Path) -> Org:
    from seccrm.world.org import open_org
    return Org(open_org(org_path))


@pytest.fixture(scope="module")
def raw(org: Org) -> dict[str, list[dict]]:
    tables = ("Knowledge__kav", "User", "Territory2", "UserTerritory2Association", "Account", "Case", "Lead",
              "Task", "Opportunity")
    return {t: [dict(r) for r in org.conn.execute(f'SELECT * FROM "{t}"')] for t in tables}


@pytest.fixture(scope="module")
def instances(org: Org) -> dict[tuple[str, str], list[Instance]]:
    return {(t, d): [get_task(t).generate(org, d, random.Random(s)) for s in SEEDS]
            for t in TASKS for d in DIFFICULTIES}


def rule_of(raw: dict, rule_type: str) -> dict:
    rules = [json.loads(a["PolicyRule__c"]) for a in raw["Knowledge__kav"] if a["PolicyRule__c"]]
    (rule,) = [r for r in rules if r.get("type") == rule_type]
    return rule


def candidates(raw: dict, state: str, role: str) -> list[str]:
    """Users of ``role`` associated with the territory whose Description lists ``state``."""
    terr = [t["Id"] for t in raw["Territory2"] if state in [s.strip() for s in t["Description"].split(",")]]
    assert len(terr) == 1, "territories partition the states"
    roles = {u["Id"]: u["UserRole"] for u in raw["User"]}
    return sorted({a["UserId"] for a in raw["UserTerritory2Association"]
                   if a["Territory2Id"] == terr[0] and roles[a["UserId"]] == role})


def months_before(today: dt.date, n: int) -> tuple[str, str]:
    """[first day of the month n months before today's month, first day of today's month)."""
    y, m = today.year, today.month - n
    while m < 1:
        y, m = y - 1, m + 12
    return dt.date(y, m, 1).isoformat(), dt.date(today.year, today.month, 1).isoformat()


def case_counts(raw: dict, target: str, today: dt.date) -> tuple[list[str], Counter, Counter]:
    """(candidate agents, closed cases of the issue in the window per agent, open cases per agent)."""
    case = next(c for c in raw["Case"] if c["Id"] == target)
    assert case["Status"] == "New" and case["OwnerId"] is None
    state = next(a["ShippingState"] for a in raw["Account"] if a["Id"] == case["AccountId"])
    start, end = months_before(today, int(rule_of(raw, "case_routing")["lookback_months"]))
    closed, open_ = Counter(), Counter()
    for c in raw["Case"]:
        if c["Status"] == "Closed" and c["IssueId__c"] == case["IssueId__c"] and start <= c["ClosedDate"][:10] < end:
            closed[c["OwnerId"]] += 1
        elif c["Status"] != "Closed":
            open_[c["OwnerId"]] += 1
    return candidates(raw, state, "Support Agent"), closed, open_


def expect_case_routing(raw: dict, target: str, today: dt.date) -> dict:
    agents, closed, open_ = case_counts(raw, target, today)
    best = sorted(agents, key=lambda a: (-closed[a], open_[a], a))[0]
    return {"op": "update", "object": "Case", "id": target, "fields": {"OwnerId": best}}


def expect_lead_routing(raw: dict, target: str, today: dt.date) -> dict:
    lead = next(x for x in raw["Lead"] if x["Id"] == target)
    assert lead["OwnerId"] is None and not lead["IsConverted"]
    owned, conv = Counter(), Counter()
    for x in raw["Lead"]:
        owned[x["OwnerId"]] += 1
        conv[x["OwnerId"]] += bool(x["IsConverted"])
    reps = candidates(raw, lead["State"], "Sales Rep")

    def better(a: str, b: str) -> bool:       # exact: cross-multiplied rates, then the tie-breaks
        ra, rb = conv[a] * owned[b], conv[b] * owned[a]
        return ra > rb or (ra == rb and (owned[a] - conv[a], a) < (owned[b] - conv[b], b))
    best = reps[0]
    for r in reps[1:]:
        best = r if better(r, best) else best
    return {"op": "update", "object": "Lead", "id": target, "fields": {"OwnerId": best}}


def expect_stage(raw: dict, target: str, today: dt.date) -> dict:
    stage_of = {s: st for st, subs in rule_of(raw, "stage_activities")["stages"].items() for s in subs}
    done = [STAGE_ORDER.index(stage_of[t["Subject"]]) for t in raw["Task"]
            if t["WhatId"] == target and t["Status"] == "Completed" and t["Subject"] in stage_of]
    stage = STAGE_ORDER[max(done)]
    assert stage != next(o["StageName"] for o in raw["Opportunity"] if o["Id"] == target)
    return {"op": "update", "object": "Opportunity", "id": target, "fields": {"StageName": stage}}


EXPECT = {"case_routing": expect_case_routing, "lead_routing": expect_lead_routing,
          "wrong_stage_rectification": expect_stage}


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_gold_action_matches_independent_recomputation(instances, raw, org, task, difficulty):
    for inst in instances[(task, difficulty)]:
        assert len(inst.answer) == 1
        got = json.loads(inst.answer[0])
        assert inst.answer[0] == json.dumps(got, sort_keys=True), "canonical JSON"
        assert got == EXPECT[task](raw, inst.metadata["target_id"], org.today), inst.metadata


@pytest.mark.parametrize("task", ["case_routing", "lead_routing"])
def test_routing_metadata_explains_the_choice(instances, raw, task):
    for d in DIFFICULTIES:
        for inst in instances[(task, d)]:
            m = inst.metadata
            assert m["chosen"] == json.loads(inst.answer[0])["fields"]["OwnerId"]
            assert m["chosen"] in {c["Id"] for c in m["candidates"]}
            assert set(m["shown_user_ids"]) >= {c["Id"] for c in m["candidates"]}
            p = inst.messages[-1]["content"]
            assert all(c["Id"] in p for c in m["candidates"]), "every candidate is in the prompt"
            assert "PolicyRule__c" not in p and '"type"' not in p, "the rule JSON stays hidden"


def test_routing_candidate_counts_match(instances, raw, org):
    """The facts recorded in metadata are the recomputed ones (this catches a wrong window even
    when it happens not to change the winner)."""
    for d in DIFFICULTIES:
        for inst in instances[("case_routing", d)]:
            agents, closed, open_ = case_counts(raw, inst.metadata["target_id"], org.today)
            assert inst.metadata["candidates"] == [{"Id": a, "closed": closed[a], "open": open_[a]} for a in agents]
        for inst in instances[("lead_routing", d)]:
            lead = next(x for x in raw["Lead"] if x["Id"] == inst.metadata["target_id"])
            reps = candidates(raw, lead["State"], "Sales Rep")
            want = [{"Id": r, "owned": sum(x["OwnerId"] == r for x in raw["Lead"]),
                     "converted": sum(x["OwnerId"] == r and x["IsConverted"] == 1 for x in raw["Lead"])} for r in reps]
            assert inst.metadata["candidates"] == want


def test_case_routing_prompt_holds_the_needed_cases(instances, raw, org):
    """Easy states each candidate's counts; from medium on, every closed case of the issue inside
    the window by a candidate is listed (so the counts can be made from the prompt)."""
    n_needed = n_listed = 0
    for d in DIFFICULTIES:
        for inst in instances[("case_routing", d)]:
            m, p = inst.metadata, inst.messages[-1]["content"]
            assert org.today.isoformat() in p
            if d == "easy":
                assert all(f"{c['Id']} | {c['closed']} | {c['open']}" in p for c in m["candidates"])
                continue
            agents = {c["Id"] for c in m["candidates"]}
            needed = [c["Id"] for c in raw["Case"] if c["OwnerId"] in agents and c["Status"] == "Closed"
                      and c["IssueId__c"] == m["issue_id"] and m["window_start"] <= c["ClosedDate"][:10] < m["window_end"]]
            assert all(i in p for i in needed)
            n_needed, n_listed = n_needed + len(needed), n_listed + p.count(" | Closed | ")
    assert n_listed > 1.5 * n_needed, "distractor cases are listed too"


def test_gold_actions_score_one_and_a_wrong_value_does_not(instances, org_path):
    rewards = pytest.importorskip("seccrm.world.rewards")
    for task in TASKS:
        for inst in instances[(task, "medium")][:4]:
            record = {"id": "x", "task": task, "answer": inst.answer,
                      "metadata": {**inst.metadata, "org_path": str(org_path)}}
            assert rewards.score(record, f"<answer>{inst.answer[0]}</answer>") == 1.0
            wrong = json.loads(inst.answer[0])
            obj, field = OBJECT[task]
            if field == "StageName":
                wrong["fields"][field] = inst.metadata["current_stage"]
            else:
                others = [c["Id"] for c in inst.metadata["candidates"] if c["Id"] != inst.metadata["chosen"]]
                if not others:
                    continue
                wrong["fields"][field] = others[0]
            assert rewards.score(record, f"<answer>{json.dumps(wrong)}</answer>") == 0.1


@pytest.mark.parametrize("task", TASKS)
def test_deterministic_for_a_seed(org, task):
    for d in DIFFICULTIES:
        a = get_task(task).generate(org, d, random.Random(11))
        b = get_task(task).generate(org, d, random.Random(11))
        assert (a.messages, a.answer, a.metadata) == (b.messages, b.answer, b.metadata)


@pytest.mark.parametrize("task", TASKS)
def test_prompt_sizes_grow_with_the_level(instances, task):
    def mean_len(d: str) -> float:
        return statistics.mean(len(i.messages[-1]["content"]) for i in instances[(task, d)])
    assert mean_len("easy") < mean_len("medium") < mean_len("hard")
    assert max(sum(len(m["content"]) for m in i.messages) for i in instances[(task, "hard")]) < 12_000


def test_routing_hard_shows_more_agents(instances):
    for task in ("case_routing", "lead_routing"):
        n = {d: statistics.mean(len(i.metadata["shown_user_ids"]) for i in instances[(task, d)])
             for d in DIFFICULTIES}
        assert n["easy"] < n["medium"] < n["hard"]
