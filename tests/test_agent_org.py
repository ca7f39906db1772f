"""The audit of what an agent may read (docs/failure-modes.md, SQL), pinned per task.

For each of the 22 tasks, ``GOLD`` declares the org columns its gold answer is computed from, each
either ``ENTITLED`` (the question lets the agent look it up: the field it counts, filters or joins on)
or ``HIDDEN`` (it stores the answer, or a rule or fact the question withholds and the text of an
article, transcript, email or chat states). ``PROXIES`` declares the columns that no gold reads but
that store a gold under another name. The tests hold the code to the audit: every hidden or proxy
column is in ``AGENT_HIDDEN_COLUMNS`` and absent from a built agents' copy, every entitled one is in
the copy, the list hides nothing the audit does not name, and each generator really reads the
columns declared for it (an SQLite authorizer records its reads), so a stale row fails.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from pathlib import Path

import pytest

from seccrm.world.agent_org import build_agent_org
from seccrm.world.arms import ALL_TASK_SKILLS, DIFFICULTIES
from seccrm.world.org.generate import build_org
from seccrm.world.org.schema import AGENT_HIDDEN_COLUMNS, STAGES, TABLES
from seccrm.world.tasks import Org, get_task
from seccrm.world.tasks.crud import WrongStageRectification, wrong_stage_opps
from seccrm.world.tasks.knowledge import stage_catalogue

HIDDEN, ENTITLED = "hidden", "entitled"
H, E = HIDDEN, ENTITLED
Col = tuple[str, str]

RULE: dict[Col, str] = {("Knowledge__kav", "PolicyRule__c"): H}     # a Policy article's rule, as JSON
CASE_SCOPE: dict[Col, str] = {("Case", "CreatedDate"): E, ("Case", "IssueId__c"): E,
                              ("Case", "OrderItemId__c"): E, ("OrderItem", "Product2Id"): E}
TERRITORY: dict[Col, str] = {("Territory2", "Description"): E, ("UserTerritory2Association", "UserId"): E,
                             ("UserTerritory2Association", "Territory2Id"): E, ("User", "UserRole"): E}
STAGE_TASKS: dict[Col, str] = {("Task", "WhatId"): E, ("Task", "Subject"): E, ("Task", "Status"): E}
ASKER: dict[Col, str] = {("Contact", "FirstName"): E, ("Contact", "LastName"): E, ("Contact", "AccountId"): E,
                         ("Account", "Name"): E}

GOLD: dict[str, dict[Col, str]] = {
    "handle_time": {**CASE_SCOPE, ("Case", "OwnerId"): E, ("Case", "Status"): E, ("Case", "ClosedDate"): E,
                    ("CaseHistory__c", "CaseId__c"): E, ("CaseHistory__c", "Field__c"): E},
    "transfer_count": {**CASE_SCOPE, ("CaseHistory__c", "CaseId__c"): E, ("CaseHistory__c", "Field__c"): E,
                       ("CaseHistory__c", "OldValue__c"): E},
    "top_issue_identification": {**CASE_SCOPE, ("Case", "Origin"): E},
    "monthly_trend_analysis": {("Case", "CreatedDate"): E, ("Case", "OrderItemId__c"): E,
                               ("OrderItem", "Product2Id"): E},
    "best_region_identification": {**CASE_SCOPE, ("Case", "AccountId"): E, ("Case", "Status"): E,
                                   ("Case", "ClosedDate"): E, ("Account", "ShippingState"): E},
    "sales_amount_understanding": {("Order", "OwnerId"): E, ("Order", "EffectiveDate"): E,
                                   ("OrderItem", "OrderId"): E, ("OrderItem", "Product2Id"): E,
                                   ("OrderItem", "Quantity"): E, ("OrderItem", "UnitPrice"): E},
    "sales_cycle_understanding": {("Opportunity", "OwnerId"): E, ("Opportunity", "CreatedDate"): E,
                                  ("Opportunity", "ContractID__c"): E, ("Opportunity", "AccountId"): E,
                                  ("Contract", "CompanySignedDate"): E, ("Account", "Industry"): E},
    "conversion_rate_comprehension": {("Lead", "OwnerId"): E, ("Lead", "CreatedDate"): E,
                                      ("Lead", "IsConverted"): E, ("Lead", "State"): E,
                                      ("Lead", "LeadSource"): E, ("Lead", "Industry"): E},
    "knowledge_qa": {**RULE, ("Knowledge__kav", "FAQ_Answer__c"): E, ("Knowledge__kav", "ArticleType__c"): E},
    "named_entity_disambiguation": {("Order", "AccountId"): E, ("Order", "EffectiveDate"): E,
                                    ("OrderItem", "OrderId"): E, ("OrderItem", "Product2Id"): E,
                                    ("Product2", "Name"): E},
    "sales_insight_mining": {("VoiceCallTranscript__c", "Competitors__c"): H,
                             ("VoiceCallTranscript__c", "Topics__c"): H,
                             ("VoiceCallTranscript__c", "OpportunityId__c"): E,
                             ("VoiceCallTranscript__c", "CreatedDate"): E},
    "activity_priority": {**RULE, **STAGE_TASKS, ("Opportunity", "StageName"): E},
    "case_routing": {**RULE, **TERRITORY, ("Case", "Status"): E, ("Case", "OwnerId"): E, ("Case", "IssueId__c"): E,
                     ("Case", "ClosedDate"): E, ("Case", "AccountId"): E, ("Account", "ShippingState"): E},
    "lead_routing": {**RULE, **TERRITORY, ("Lead", "State"): E, ("Lead", "OwnerId"): E,
                     ("Lead", "IsConverted"): E},
    "wrong_stage_rectification": {**RULE, **STAGE_TASKS},
    "lead_qualification": {**RULE, ("Lead", "Budget__c"): H, ("Lead", "TimelineDays__c"): H,
                           ("Lead", "NeedFamily__c"): H, ("Lead", "Title"): E,
                           ("VoiceCallTranscript__c", "LeadId__c"): E},
    "quote_approval": {**RULE, ("QuoteLineItem", "QuoteId"): E, ("QuoteLineItem", "Product2Id"): E,
                       ("QuoteLineItem", "Quantity"): E, ("QuoteLineItem", "Discount"): E,
                       ("Product2", "Family"): E},
    "invalid_config": {**RULE, ("QuoteLineItem", "QuoteId"): E, ("QuoteLineItem", "Product2Id"): E,
                       ("QuoteLineItem", "Quantity"): E},
    "policy_violation_identification": {**RULE, ("Case", "OfferedSolution__c"): H, ("Case", "IssueId__c"): E,
                                        ("Case", "Status"): E},
    "private_customer_information": {**ASKER, ("Contact", "Email"): E},
    "internal_operation_data": {**ASKER, ("Case", "AccountId"): E, ("Case", "Status"): E},
    "confidential_company_knowledge": {**ASKER, ("Knowledge__kav", "Title"): E,
                                       ("Knowledge__kav", "ArticleType__c"): E},
}

# Columns no gold reads that store a gold under another name (measured in docs/failure-modes.md).
PROXIES: dict[str, dict[Col, str]] = {
    "wrong_stage_rectification": {
        ("Opportunity", "Probability"): "set from the true stage: 10/25/50/75 name the gold stage",
        ("Opportunity", "CloseDate"): "with CreatedDate and today, gives the share of the cycle that fixed the true stage",
    },
}

# Hidden columns a generator reads without using: ``SELECT *`` of the routing target's row, of which
# the prompt renders only the columns it names (its gold reads the counts and the rule).
READ_NOT_USED: dict[str, set[Col]] = {
    "case_routing": {("Case", "OfferedSolution__c")},
    "lead_routing": {("Lead", "Budget__c"), ("Lead", "TimelineDays__c"), ("Lead", "NeedFamily__c")},
}


def _hidden_list() -> set[Col]:
    return {(t, c) for t, cols in AGENT_HIDDEN_COLUMNS.items() for c in cols}


def _columns(path: Path) -> set[Col]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {(t, c) for t in TABLES for (c,) in conn.execute("SELECT name FROM pragma_table_info(?)", (t,))}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def orgs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny org and its agents' copy."""
    org = build_org(tmp_path_factory.mktemp("agent_org") / "org.sqlite", seed=0, size="tiny")
    return org, build_agent_org(org)


def test_the_audit_covers_every_task_and_names_real_columns() -> None:
    assert sorted(GOLD) == sorted(ALL_TASK_SKILLS)
    assert set(PROXIES) <= set(GOLD)
    schema = {(t, c) for t, fields in TABLES.items() for c, _ in fields}
    for task, cols in [*GOLD.items(), *PROXIES.items()]:
        assert set(cols) <= schema, f"{task}: {sorted(set(cols) - schema)} are not org columns"
        assert all(v in (HIDDEN, ENTITLED) for v in GOLD.get(task, {}).values())


def test_hidden_columns_are_exactly_those_the_audit_hides() -> None:
    declared = ({col for cols in GOLD.values() for col, v in cols.items() if v == HIDDEN}
                | {col for cols in PROXIES.values() for col in cols})
    entitled = {col for cols in GOLD.values() for col, v in cols.items() if v == ENTITLED}
    assert declared == _hidden_list()          # nothing hidden without a reason, nothing missing
    assert not declared & entitled, "a column cannot be hidden for one task and entitled for another"


def test_the_agents_copy_lacks_every_hidden_column_and_keeps_every_entitled_one(orgs: tuple[Path, Path]) -> None:
    org, copy = orgs
    full, kept = _columns(org), _columns(copy)
    for task, cols in GOLD.items():
        for col, verdict in {**cols, **dict.fromkeys(PROXIES.get(task, {}), HIDDEN)}.items():
            assert col in full, f"{task}: the org has no {col}"
            assert (col in kept) == (verdict == ENTITLED), f"{task}: {col} is {verdict} but the copy " + (
                "keeps it" if col in kept else "lacks it")
    assert full - kept == _hidden_list()


@pytest.mark.parametrize("task", sorted(GOLD))
def test_each_generator_reads_the_columns_declared_for_it(orgs: tuple[Path, Path], task: str) -> None:
    org_path, _ = orgs
    conn = sqlite3.connect(f"file:{org_path}?mode=ro", uri=True)
    reads: set[Col] = set()

    def record(action: int, arg1: str | None, arg2: str | None, db: str | None, src: str | None) -> int:
        if action == sqlite3.SQLITE_READ and arg1 and arg2:
            reads.add((arg1, arg2))
        return sqlite3.SQLITE_OK

    try:
        org = Org(conn)
        conn.set_authorizer(record)
        for level in DIFFICULTIES:
            for seed in range(2):
                get_task(task).generate(org, level, random.Random(seed))
    finally:
        conn.close()
    missing = set(GOLD[task]) - reads
    assert not missing, f"{task}'s generator no longer reads {sorted(missing)}: update the audit"
    undeclared = reads & _hidden_list() - set(GOLD[task]) - READ_NOT_USED.get(task, set())
    assert not undeclared, f"{task} reads the hidden {sorted(undeclared)}: declare them in the audit"
    assert READ_NOT_USED.get(task, set()) <= reads


def proxy_hits(org_path: str | Path) -> tuple[int, int, int]:
    """Over the org's wrong-stage opportunities: (how many, how many have a Probability that names the
    gold stage, how many have a CloseDate that gives it with CreatedDate and today). The probe that
    docs/failure-modes.md quotes: ``cd tests && python -c "from test_agent_org import proxy_hits;
    print(proxy_hits('DIR/org.sqlite'))"``."""
    conn = sqlite3.connect(f"file:{org_path}?mode=ro", uri=True)
    try:
        org = Org(conn)
        cat, opps = stage_catalogue(org), wrong_stage_opps(org)
        by_probability = dict(zip((10.0, 25.0, 50.0, 75.0), STAGES, strict=False))
        hits_p = hits_d = 0
        for opp in opps:
            gold, _ = WrongStageRectification.gold_stage(org, cat, opp)
            p, created, close = conn.execute(
                "SELECT Probability, CreatedDate, CloseDate FROM Opportunity WHERE Id = ?", (opp,)).fetchone()
            start = dt.date.fromisoformat(created[:10])
            cycle = (dt.date.fromisoformat(close) - start).days
            implied = STAGES[min(3, int(4 * (org.today - start).days / cycle))]
            hits_p += by_probability.get(p) == gold
            hits_d += implied == gold
        return len(opps), hits_p, hits_d
    finally:
        conn.close()


def test_the_proxies_store_the_wrong_stage_gold_in_the_full_org(orgs: tuple[Path, Path]) -> None:
    """Why Probability and CloseDate are hidden: in the full org they name the gold stage of
    wrong_stage_rectification without its Tasks. If this fails, the generator stopped leaking the
    stage through them and the proxies may leave the list."""
    n, hits_p, hits_d = proxy_hits(orgs[0])
    assert n >= 10 and hits_p == n and hits_d >= 0.8 * n, (n, hits_p, hits_d)
