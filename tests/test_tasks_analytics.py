"""The eight ANALYTICS generators on a tiny org.

Each gold answer is recomputed here by a second, independent computation: plain Python loops over
``SELECT *`` rows, driven only by the parameters the instance's metadata records (window, filter,
candidates, min or max). The tests also check that every record the answer depends on is in the
prompt, determinism for a seed, the metadata, and that the levels differ in measurable ways.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
import statistics
from collections import Counter, defaultdict
from fractions import Fraction
from typing import Any

import pytest

from seccrm.world.org import build_org, open_org
from seccrm.world.org.ids import is_valid_id
from seccrm.world.tasks import get_task
from seccrm.world.tasks._analytics_common import rank
from seccrm.world.tasks._analytics_products import qualifying_months, slack
from seccrm.world.tasks.analytics import ANALYTICS_TASKS
from seccrm.world.tasks.base import MONTHS, NONE_ANSWER, Org, system_message

TASKS = [cls.name for cls in ANALYTICS_TASKS]
LEVELS = ("easy", "medium", "hard")
SEEDS = range(6)


# ----------------------------------------------------------------------------------------------
# Fixtures: one tiny org, its raw rows, and the instances generated from it
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def org_path(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return build_org(tmp_path_factory.mktemp("org") / "org.sqlite", seed=3, size="tiny")


@pytest.fixture(scope="module")
def org(org_path: Any) -> Org:
    return Org(open_org(org_path))


@pytest.fixture(scope="module")
def raw(org_path: Any) -> dict[str, Any]:
    """Every table the tasks read, as lists of dicts, from a connection of our own."""
    conn = sqlite3.connect(f"file:{org_path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    tables = ("Case", "CaseHistory__c", "OrderItem", "Order", "Account", "Opportunity", "Contract", "Lead",
              "Issue__c", "Product2")
    out: dict[str, Any] = {t: [dict(r) for r in conn.execute(f'SELECT * FROM "{t}"')] for t in tables}
    out["by_id"] = {t: {r["Id"]: r for r in out[t]} for t in tables}
    conn.close()
    return out


@pytest.fixture(scope="module")
def instances(org: Org) -> dict[tuple[str, str], list[Any]]:
    return {(t, d): [get_task(t).generate(org, d, random.Random(s)) for s in SEEDS] for t in TASKS for d in LEVELS}


# ----------------------------------------------------------------------------------------------
# Independent recomputation
# ----------------------------------------------------------------------------------------------

def in_window(date: str | None, meta: dict[str, Any]) -> bool:
    return date is not None and meta["window_start"] <= date[:10] < meta["window_end"]


def days(a: str, b: str) -> int:
    return (dt.date.fromisoformat(b[:10]) - dt.date.fromisoformat(a[:10])).days


def case_filter(raw: dict[str, Any], case: dict[str, Any], meta: dict[str, Any]) -> bool:
    f = meta["filter"]
    if f is None:
        return True
    if f["kind"] == "product":
        return raw["by_id"]["OrderItem"][case["OrderItemId__c"]]["Product2Id"] == f["value"]
    assert f["kind"] == "issue", f
    return case["IssueId__c"] == f["value"]


def assignments(raw: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for h in raw["CaseHistory__c"]:
        if h["Field__c"] == "Owner Assignment":
            out[h["CaseId__c"]].append(h)
    return out


def expected_rank(values: dict[str, Fraction], mode: str) -> tuple[str, bool]:
    """(winner with ties to the lowest Id / first code, whether there was a tie), by a plain loop."""
    best = None
    for k in values:
        better = best is None or (values[k] < values[best] if mode == "min" else values[k] > values[best])
        if better or (values[k] == values[best] and k < best):
            best = k
    tied = sum(1 for k in values if values[k] == values[best]) > 1
    return best, tied


def recompute(task: str, raw: dict[str, Any], meta: dict[str, Any]) -> tuple[str, set[str], bool]:
    """(gold answer, ids of the records it depends on, whether a tie decided it)."""
    cands = set(meta.get("candidates", ()))
    needed: set[str] = set()
    if task in ("handle_time", "best_region_identification"):
        n_assign = {k: len(v) for k, v in assignments(raw).items()}
        per: dict[str, list[int]] = defaultdict(list)
        for c in raw["Case"]:
            key = c["OwnerId"] if task == "handle_time" else raw["by_id"]["Account"][c["AccountId"]]["ShippingState"]
            if key not in cands or not in_window(c["CreatedDate"], meta) or not case_filter(raw, c, meta):
                continue
            needed.add(c["Id"])
            if c["Status"] == "Closed" and c["ClosedDate"] and (task != "handle_time" or n_assign[c["Id"]] == 1):
                per[key].append(days(c["CreatedDate"], c["ClosedDate"]))
        values = {k: Fraction(sum(v), len(v)) for k, v in per.items()}
    elif task == "transfer_count":
        values = dict.fromkeys(cands, Fraction(0))
        for case_id, rows in assignments(raw).items():
            c = raw["by_id"]["Case"][case_id]
            if not in_window(c["CreatedDate"], meta) or not case_filter(raw, c, meta):
                continue
            for h in rows:
                if h["OldValue__c"] in cands:
                    values[h["OldValue__c"]] += 1
                    needed.add(case_id)
    elif task == "sales_amount_understanding":
        owner = {o["Id"]: o["OwnerId"] for o in raw["Order"] if o["OwnerId"] in cands and in_window(o["EffectiveDate"], meta)}
        amount: dict[str, float] = defaultdict(float)
        for it in raw["OrderItem"]:
            f = meta["filter"]
            if it["OrderId"] in owner and (f is None or it["Product2Id"] == f["value"]):
                amount[owner[it["OrderId"]]] += it["Quantity"] * it["UnitPrice"]
                needed.add(it["OrderId"])
        values = {k: Fraction(round(v * 100), 100) for k, v in amount.items()}
    elif task == "sales_cycle_understanding":
        per = defaultdict(list)
        for o in raw["Opportunity"]:
            ct = raw["by_id"]["Contract"].get(o["ContractID__c"])
            f = meta["filter"]
            if (o["OwnerId"] in cands and ct and in_window(ct["CompanySignedDate"], meta)
                    and (f is None or raw["by_id"]["Account"][o["AccountId"]]["Industry"] == f["value"])):
                per[o["OwnerId"]].append(days(o["CreatedDate"], ct["CompanySignedDate"]))
                needed |= {o["Id"], ct["Id"]}
        values = {k: Fraction(sum(v), len(v)) for k, v in per.items()}
    elif task == "conversion_rate_comprehension":
        per = defaultdict(list)
        for lead in raw["Lead"]:
            f = meta["filter"]
            if lead["OwnerId"] in cands and in_window(lead["CreatedDate"], meta) and (
                    f is None or lead[f["kind"]] == f["value"]):
                per[lead["OwnerId"]].append(int(lead["IsConverted"] or 0))
                needed.add(lead["Id"])
        values = {k: Fraction(sum(v), len(v)) for k, v in per.items()}
    else:
        return recompute_product(task, raw, meta)
    assert set(values) == cands, "every listed candidate must have a value"
    winner, tied = expected_rank(values, meta["min_or_max"])
    return winner, needed, tied


def recompute_product(task: str, raw: dict[str, Any], meta: dict[str, Any]) -> tuple[str, set[str], bool]:
    cases = [c for c in raw["Case"] if in_window(c["CreatedDate"], meta)
             and raw["by_id"]["OrderItem"][c["OrderItemId__c"]]["Product2Id"] == meta["product_id"]
             and meta.get("origin") in (None, c["Origin"])]
    needed = {c["Id"] for c in cases}
    if task == "top_issue_identification":
        counts = Counter(c["IssueId__c"] for c in cases)
        top = counts.most_common()
        if not top or (len(top) > 1 and top[0][1] == top[1][1]):
            return NONE_ANSWER, needed, len(top) > 1
        return top[0][0], needed, False
    assert task == "monthly_trend_analysis"
    months = []
    d = dt.date.fromisoformat(meta["window_start"])
    while d.isoformat() < meta["window_end"]:
        months.append(d.isoformat()[:7])
        d = (d + dt.timedelta(days=32)).replace(day=1)
    counts = Counter(c["CreatedDate"][:7] for c in cases)
    hits = []
    for m in months:
        avg = Fraction(sum(counts[x] for x in months if x != m), len(months) - 1)
        if counts[m] >= 2 * avg and counts[m] >= avg + 5:
            hits.append(m)
    assert len(hits) <= 1, "two qualifying months must never be generated"
    return (MONTHS[int(hits[0][5:]) - 1] if hits else NONE_ANSWER), needed, False


# ----------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("level", LEVELS)
def test_gold_matches_independent_recomputation(task: str, level: str, instances: Any, raw: Any) -> None:
    for inst in instances[(task, level)]:
        gold, needed, tied = recompute(task, raw, inst.metadata)
        assert inst.answer == [gold], (task, level, inst.metadata)
        user = inst.messages[1]["content"]
        missing = [i for i in needed if i not in user]
        assert not missing, f"records the answer depends on are not in the prompt: {missing[:3]}"
        if tied:      # a tie may only be decided by a rule the question states
            rule = inst.metadata["tie_break"]
            assert rule in user or "tie" in user.split("Question:")[1], (task, level)


@pytest.mark.parametrize("task", TASKS)
def test_answers_are_well_formed(task: str, instances: Any, raw: Any) -> None:
    kind = get_task(task).answer
    for level in LEVELS:
        for inst in instances[(task, level)]:
            (ans,) = inst.answer
            if ans == NONE_ANSWER:
                # A flat period (monthly trend) or a tie at the top / no case (top issue): any level.
                assert kind.allow_none, (task, level)
            elif kind.kind == "id":
                assert is_valid_id(ans, kind.prefix)
                table = "Issue__c" if kind.prefix == "a03" else None
                assert table is None or ans in raw["by_id"][table]
                assert table is not None or ans in inst.metadata["candidates"]
            elif kind.kind == "month":
                assert ans in MONTHS
            else:
                assert kind.kind == "state" and len(ans) == 2 and ans.isupper()


@pytest.mark.parametrize("task", TASKS)
def test_metadata_and_prompt_shape(task: str, instances: Any) -> None:
    for level in LEVELS:
        for inst in instances[(task, level)]:
            m = inst.metadata
            for key in ("window_start", "window_end", "window_phrase", "min_or_max", "tie_break",
                        "n_scope_records", "n_distractors"):
                assert key in m, (task, key)
            assert m["window_start"] < m["window_end"]
            assert inst.task == task and inst.difficulty == level
            assert [x["role"] for x in inst.messages] == ["system", "user"]
            assert inst.messages[0]["content"] == system_message(inst.messages[1]["content"])
            user = inst.messages[1]["content"]
            assert m["window_phrase"] in user and len(user) <= 11_500
            # Only windows stated relative to today come with today's date.
            assert ("Today's date:" in user) == (level == "hard")
            if level == "hard":
                assert "past" in m["window_phrase"]
            if "candidates" in m:        # ranking tasks: per-candidate values recorded
                values = next(v for k, v in m.items() if k.endswith(("_days", "_transfers", "_amount", "_rate"))
                              and isinstance(v, dict))
                assert set(values) == set(m["candidates"])


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_same_instance(task: str, org_path: Any, instances: Any) -> None:
    fresh = Org(open_org(org_path))           # a new connection and empty caches
    for level in LEVELS:
        again = get_task(task).generate(fresh, level, random.Random(SEEDS[2]))
        first = instances[(task, level)][2]
        assert (again.messages, again.answer, again.metadata) == (first.messages, first.answer, first.metadata)
    prompts = {i.messages[1]["content"] for i in instances[(task, "medium")]}
    assert len(prompts) == len(SEEDS), "different seeds should give different instances"


def test_levels_differ_measurably(instances: Any) -> None:
    """Hard prompts hold more records, more distractors and more candidates than easy ones."""
    for task in TASKS:
        stats = {}
        for level in LEVELS:
            batch = instances[(task, level)]
            stats[level] = (statistics.mean(len(i.messages[1]["content"]) for i in batch),
                            statistics.mean(i.metadata["n_scope_records"] for i in batch),
                            statistics.mean(i.metadata["n_distractors"] for i in batch),
                            statistics.mean(len(i.metadata.get("candidates", [])) for i in batch))
        (e_len, e_rec, e_dis, e_cand), (m_len, _, m_dis, _), (h_len, h_rec, h_dis, h_cand) = (
            stats[lv] for lv in LEVELS)
        assert e_len < m_len < h_len, (task, stats)
        assert e_rec < h_rec and e_dis == 0 < m_dis < h_dis, (task, stats)
        assert e_cand <= h_cand, (task, stats)


def test_easy_and_medium_have_clear_winners(instances: Any) -> None:
    """No ties below hard, and the recorded gap respects the level's minimum."""
    for task in TASKS:
        if task in ("top_issue_identification", "monthly_trend_analysis"):
            continue
        cls = type(get_task(task))
        for level, min_gap in zip(("easy", "medium"), cls.gaps, strict=True):
            for inst in instances[(task, level)]:
                if inst.metadata["tie_break"].startswith("none"):
                    assert inst.metadata["tied"] == [] and inst.metadata["gap"] >= min_gap - 1e-9, task


def test_rank_breaks_ties_by_lowest_id() -> None:
    values = {"005B": Fraction(3), "005A": Fraction(3), "005C": Fraction(5)}
    r = rank(values, "min")
    assert r.winner == "005A" and r.tied == ["005A", "005B"] and r.gap == 2.0
    assert rank(values, "max").winner == "005C"
    assert rank({"x": Fraction(10), "y": Fraction(8)}, "max", relative=True).gap == pytest.approx(0.2)


def test_significant_month_threshold_is_inclusive() -> None:
    # Others average 5; a month of exactly 10 is both 2x and +5 above it.
    assert slack([10, 5, 5], 0) == 0
    assert slack([9, 5, 5], 0) < 0
    # Twice the average but not 5 more: [4, 1, 1] -> avg 1, 4 >= 2 but 4 < 6.
    assert slack([4, 1, 1], 0) < 0
    months = ["2024-01", "2024-02", "2024-03", "2024-04"]
    assert qualifying_months(months, [5, 10, 5, 5]) == ["2024-02"]       # exactly 2 x 5 and 5 + 5
    assert qualifying_months(months, [5, 9, 5, 5]) == []
    assert qualifying_months(months, [2, 9, 2, 1]) == ["2024-02"]        # avg 5/3: 9 >= 6.67
    assert qualifying_months(months, [0, 0, 0, 0]) == []


DIGEST_SCRIPT = """
import hashlib, json, random, sys
from seccrm.world.org import open_org
from seccrm.world.tasks import get_task
from seccrm.world.tasks.base import Org
from seccrm.world.tasks.analytics import ANALYTICS_TASKS
org, h = Org(open_org(sys.argv[1])), hashlib.sha256()
for cls in ANALYTICS_TASKS:
    for level in ("easy", "medium", "hard"):
        for seed in range(3):
            i = get_task(cls.name).generate(org, level, random.Random(seed))
            h.update(json.dumps([i.messages, i.answer, i.metadata], sort_keys=True).encode())
print(h.hexdigest())
"""


def test_instances_do_not_depend_on_the_hash_seed(org_path: Any) -> None:
    """Set iteration order changes with PYTHONHASHSEED; generation must not depend on it."""
    import os
    import subprocess
    import sys

    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", DIGEST_SCRIPT, str(org_path)], env=env, check=True,
                             capture_output=True, text=True, timeout=120)
        digests.add(out.stdout.strip())
    assert len(digests) == 1, "instances differ between processes: a set or dict order leaks into them"


def test_fit_prompt_drops_distractors_but_never_scope_records() -> None:
    from seccrm.world.tasks._analytics_common import PromptTooLong, fit_prompt

    def render(k: int, base: int = 100) -> list[dict[str, str]]:
        return [{"role": "user", "content": "x" * (base + 10 * k)}]

    msgs, kept = fit_prompt(render, 50, limit=400)
    assert kept < 50 and len(msgs[0]["content"]) <= 400
    with pytest.raises(PromptTooLong):
        fit_prompt(lambda k: render(k, base=500), 10, limit=400)


# ----------------------------------------------------------------------------------------------
# A careless solver: reads the prompt's tables but ignores the window and the filter
# ----------------------------------------------------------------------------------------------

def prompt_tables(user: str) -> dict[str, list[dict[str, str]]]:
    """The pipe tables of a prompt, by title."""
    out = {}
    for block in user.split("\n\n"):
        lines = block.split("\n")
        if len(lines) >= 2 and lines[0].endswith("rows)"):
            cols = lines[1].split(" | ")
            out[lines[0].split(" (")[0]] = [dict(zip(cols, line.split(" | "), strict=True)) for line in lines[2:]]
    return out


def careless_answer(task: str, inst: Any) -> str:
    t, m = prompt_tables(inst.messages[1]["content"]), inst.metadata
    if task == "top_issue_identification":
        top = Counter(r["IssueId__c"] for r in t["Case"] if r["Product2Id"] == m["product_id"]).most_common()
        return NONE_ANSWER if not top or (len(top) > 1 and top[0][1] == top[1][1]) else top[0][0]
    values: dict[str, Fraction] = {}
    if task == "conversion_rate_comprehension":
        per: dict[str, list[int]] = defaultdict(list)
        for r in t["Lead"]:
            per[r["OwnerId"]].append(int(r["IsConverted"]))
        values = {k: Fraction(sum(v), len(v)) for k, v in per.items() if k in m["candidates"]}
    else:
        values = dict.fromkeys(m["candidates"], Fraction(0))
        for r in t["CaseHistory__c where Field__c = 'Owner Assignment'"]:
            if r["OldValue__c"] in values:
                values[r["OldValue__c"]] += 1
    return expected_rank(values, m["min_or_max"])[0]


def test_distractors_defeat_a_careless_solver(org: Org) -> None:
    """Using every row shown, without applying the window or the filter, solves every easy
    instance (no distractors) and fails on a good share of hard ones. (On the full org it is
    right on 55-80% of hard instances; a tiny org has fewer records to mislead with.)"""
    hard = []
    for task in ("conversion_rate_comprehension", "top_issue_identification", "transfer_count"):
        for level in ("easy", "hard"):
            batch = [get_task(task).generate(org, level, random.Random(100 + s)) for s in range(40)]
            right = [careless_answer(task, i) == i.answer[0] for i in batch]
            assert level == "hard" or all(right), task
            hard += right if level == "hard" else []
    assert sum(hard) / len(hard) <= 0.9, sum(hard) / len(hard)


# ----------------------------------------------------------------------------------------------
# No fixed position among the candidates shown is a good guess (on the small org)
# ----------------------------------------------------------------------------------------------

POSITION_TASKS = [t for t in TASKS if t != "monthly_trend_analysis"]   # months are not listed


@pytest.fixture(scope="module")
def small_org(tmp_path_factory: pytest.TempPathFactory) -> Org:
    return Org(open_org(build_org(tmp_path_factory.mktemp("small") / "org.sqlite", seed=0, size="small")))


def gold_positions(org: Org, task: str, level: str, n: int) -> list[tuple[int, int | None]]:
    """(candidates shown, the gold's position among them or None) for n instances."""
    from seccrm.data.baselines import candidates
    from seccrm.world.rewards import instance_answer_kind

    out = []
    for s in range(n):
        inst = get_task(task).generate(org, level, random.Random(500 + s))
        rec = {"task": task, "messages": inst.messages, "answer": inst.answer, "metadata": inst.metadata}
        cands = candidates(rec, instance_answer_kind(rec))
        out.append((len(cands), cands.index(inst.answer[0]) if inst.answer[0] in cands else None))
    return out


@pytest.mark.parametrize("task", POSITION_TASKS)
def test_every_level_shows_five_candidates_in_no_telling_order(small_org: Org, task: str) -> None:
    for level in LEVELS:
        shown = gold_positions(small_org, task, level, 60)
        assert min(n for n, _ in shown) >= 5, (task, level, shown)
        pos = Counter(p for _, p in shown if p is not None)
        assert max(pos.values()) <= 0.4 * len(shown), (task, level, pos)


def test_top_issue_none_at_every_level(org: Org) -> None:
    for level in LEVELS:
        answers = [get_task("top_issue_identification").generate(org, level, random.Random(s)).answer
                   for s in range(40)]
        assert [NONE_ANSWER] in answers, level
