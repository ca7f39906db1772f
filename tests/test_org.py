"""The org generator keeps docs/org-contract.md: determinism, ids, references, latent structure, rules.

The checks recompute every property from the rows with plain Python, independently of the
generator's own bookkeeping (the quote rules are re-read from the PolicyRule__c JSON).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sqlite3
import statistics
from collections import Counter, defaultdict
from datetime import date, datetime
from pathlib import Path

import pytest

from seccrm.world.org import SIZES, Rules, build_org, open_org
from seccrm.world.org.ids import is_valid_id, make_id
from seccrm.world.org.rules import draw_quote_lines
from seccrm.world.org.schema import ID_PREFIXES, TABLES, qi

STAGES = ["Qualification", "Discovery", "Quote", "Negotiation", "Closed"]

# (table, column, referenced table): every non-NULL value must be an Id of the referenced table.
REFERENCES = [
    ("UserTerritory2Association", "UserId", "User"), ("UserTerritory2Association", "Territory2Id", "Territory2"),
    ("Account", "OwnerId", "User"), ("Contact", "AccountId", "Account"),
    ("Product2", "ProductCategoryId__c", "ProductCategory"), ("PricebookEntry", "Pricebook2Id", "Pricebook2"),
    ("PricebookEntry", "Product2Id", "Product2"), ("Order", "AccountId", "Account"), ("Order", "OwnerId", "User"),
    ("Order", "Pricebook2Id", "Pricebook2"), ("OrderItem", "OrderId", "Order"), ("OrderItem", "Product2Id", "Product2"),
    ("OrderItem", "PricebookEntryId", "PricebookEntry"), ("Case", "OwnerId", "User"), ("Case", "AccountId", "Account"),
    ("Case", "ContactId", "Contact"), ("Case", "IssueId__c", "Issue__c"), ("Case", "OrderItemId__c", "OrderItem"),
    ("CaseHistory__c", "CaseId__c", "Case"), ("EmailMessage", "ParentId", "Case"),
    ("LiveChatTranscript", "CaseId", "Case"), ("LiveChatTranscript", "AccountId", "Account"),
    ("LiveChatTranscript", "ContactId", "Contact"), ("LiveChatTranscript", "OwnerId", "User"),
    ("Opportunity", "AccountId", "Account"), ("Opportunity", "OwnerId", "User"),
    ("Opportunity", "ContractID__c", "Contract"), ("OpportunityLineItem", "OpportunityId", "Opportunity"),
    ("OpportunityLineItem", "Product2Id", "Product2"), ("Quote", "OpportunityId", "Opportunity"),
    ("Quote", "AccountId", "Account"), ("QuoteLineItem", "QuoteId", "Quote"),
    ("QuoteLineItem", "Product2Id", "Product2"), ("QuoteLineItem", "PricebookEntryId", "PricebookEntry"),
    ("Contract", "AccountId", "Account"), ("Lead", "OwnerId", "User"), ("Task", "WhatId", "Opportunity"),
    ("Task", "OwnerId", "User"), ("VoiceCallTranscript__c", "LeadId__c", "Lead"),
    ("VoiceCallTranscript__c", "OpportunityId__c", "Opportunity"), ("VoiceCallTranscript__c", "OwnerId__c", "User"),
]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def org_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_org(tmp_path_factory.mktemp("org") / "org.sqlite", seed=0, size="tiny")


@pytest.fixture(scope="module")
def db(org_path: Path) -> sqlite3.Connection:
    conn = open_org(org_path)
    conn.row_factory = sqlite3.Row
    return conn


def rows(db: sqlite3.Connection, table: str, where: str = "") -> list[sqlite3.Row]:
    return db.execute(f"SELECT * FROM {qi(table)} {where}").fetchall()


def rules_of(db: sqlite3.Connection) -> list[tuple[str, dict]]:
    return [(r["Id"], json.loads(r["PolicyRule__c"]))
            for r in rows(db, "Knowledge__kav", "WHERE ArticleType__c = 'Policy' ORDER BY Id")]


# ------------------------------------------------------------------------------------------------
# Determinism, files, opening
# ------------------------------------------------------------------------------------------------
def test_same_seed_same_bytes_other_seed_other_data(org_path: Path, tmp_path: Path) -> None:
    again = build_org(tmp_path / "again.sqlite", seed=0, size="tiny")
    assert sha(again) == sha(org_path)
    other = build_org(tmp_path / "other.sqlite", seed=1, size="tiny")
    assert sha(other) != sha(org_path)
    a, b = open_org(org_path), open_org(other)
    q = 'SELECT OwnerId, CreatedDate, Subject FROM "Case" ORDER BY Id LIMIT 50'
    assert a.execute(q).fetchall() != b.execute(q).fetchall()
    assert not list(tmp_path.glob(".*.tmp")), "temporary files must not be left behind"


def test_rebuild_replaces_file_and_meta(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "org.sqlite"
    build_org(p, seed=7, size="tiny")
    build_org(p, seed=8, size="tiny")
    meta = dict(open_org(p).execute('SELECT key, value FROM "OrgInfo"').fetchall())
    assert meta["seed"] == "8" and meta["size"] == "tiny" and meta["today"] == "2025-06-30"
    assert meta["version"]


def test_open_org_is_read_only_and_rejects_non_orgs(org_path: Path, tmp_path: Path) -> None:
    conn = open_org(org_path)
    with pytest.raises(sqlite3.OperationalError):
        conn.execute('DELETE FROM "Case"')
    with pytest.raises(FileNotFoundError):
        open_org(tmp_path / "missing.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ValueError, match="not an org"):
        open_org(junk)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(ValueError, match="missing table"):
        open_org(other)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="tiny"):
        build_org("/tmp/never.sqlite", size="huge")
    with pytest.raises(TypeError):
        build_org("/tmp/never.sqlite", seed="0")  # type: ignore[arg-type]
    assert set(SIZES) == {"tiny", "small", "full"}


# ------------------------------------------------------------------------------------------------
# Ids and references
# ------------------------------------------------------------------------------------------------
def test_every_table_populated_and_every_id_valid(db: sqlite3.Connection) -> None:
    for table in TABLES:
        ids = [r[0] for r in db.execute(f"SELECT Id FROM {qi(table)}")]
        assert ids, f"{table} is empty"
        bad = [i for i in ids if not is_valid_id(i, ID_PREFIXES[table])]
        assert not bad, f"{table}: invalid ids {bad[:3]}"


def reference_id(prefix: str, number: int, pod: str = "Wt") -> str:
    """Salesforce's 18-character id written out plainly: ten base-62 digits, then one suffix
    character per 5-character block whose bits mark the upper-case letters."""
    b62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    digits = ""
    for _ in range(10):
        number, r = divmod(number, 62)
        digits = b62[r] + digits
    id15 = prefix + pod + digits
    suffix = ""
    for k in range(0, 15, 5):
        bits = sum(1 << i for i, ch in enumerate(id15[k:k + 5]) if ch.isupper())
        suffix += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits]
    return id15 + suffix


def test_make_id_matches_the_plain_algorithm() -> None:
    """The cached block implementation gives the same ids as the algorithm written out, and refuses
    what cannot be an id."""
    rng = random.Random(0)
    numbers = [0, 1, 61, 62, 62**5 - 1, 62**5, 62**5 + 1, 62**10 - 1] + [rng.randrange(62**10) for _ in range(2000)]
    for prefix in ("500", "0Q0", "a03", "00Q"):
        for n in numbers + list(range(1, 300)):
            assert make_id(prefix, n) == reference_id(prefix, n), (prefix, n)
            assert is_valid_id(make_id(prefix, n), prefix)
    assert make_id("500", 12345) == "500Wt00000003D7IAI"
    for bad in [("50", 1), ("500", -1), ("500", 62**10)]:
        with pytest.raises(ValueError):
            make_id(*bad)
    with pytest.raises(ValueError):
        make_id("500", 1, pod="W")


def test_references_resolve(db: sqlite3.Connection) -> None:
    for table, col, target in REFERENCES:
        n = db.execute(f"SELECT COUNT(*) FROM {qi(table)} x WHERE x.{qi(col)} IS NOT NULL AND NOT EXISTS "
                       f"(SELECT 1 FROM {qi(target)} t WHERE t.Id = x.{qi(col)})").fetchone()[0]
        assert n == 0, f"{table}.{col}: {n} values are not {target} ids"


def test_case_points_to_an_earlier_purchase_of_its_account(db: sqlite3.Connection) -> None:
    q = ('SELECT c.CreatedDate, c.AccountId, c.ContactId, o.EffectiveDate, o.AccountId AS OA, ct.AccountId AS CA, '
         'c.Description, p.Name FROM "Case" c JOIN OrderItem oi ON oi.Id = c.OrderItemId__c '
         'JOIN "Order" o ON o.Id = oi.OrderId JOIN Contact ct ON ct.Id = c.ContactId '
         'JOIN Product2 p ON p.Id = oi.Product2Id')
    for r in db.execute(q):
        assert r["EffectiveDate"] < r["CreatedDate"][:10]
        assert r["OA"] == r["AccountId"] == r["CA"]
        assert f"the {r['Name']} on {r['EffectiveDate']}" in r["Description"]


# ------------------------------------------------------------------------------------------------
# Users, territories
# ------------------------------------------------------------------------------------------------
def test_territories_partition_states_and_staff_them(db: sqlite3.Connection) -> None:
    states = [s for r in rows(db, "Territory2") for s in r["Description"].split(",")]
    assert len(states) == len(set(states)) and all(re.fullmatch(r"[A-Z]{2}", s) for s in states)
    used = {r[0] for r in db.execute("SELECT ShippingState FROM Account UNION SELECT State FROM Lead")}
    assert used <= set(states)
    roles = {r["Id"]: r["UserRole"] for r in rows(db, "User")}
    assert set(roles.values()) == {"Support Agent", "Sales Rep"}
    assoc = rows(db, "UserTerritory2Association")
    assert {a["UserId"] for a in assoc} == set(roles)
    per = Counter((a["Territory2Id"], roles[a["UserId"]]) for a in assoc)
    for t in rows(db, "Territory2"):
        assert per[(t["Id"], "Support Agent")] >= 2 and per[(t["Id"], "Sales Rep")] >= 2


# ------------------------------------------------------------------------------------------------
# Cases: history semantics, latent structure, solutions
# ------------------------------------------------------------------------------------------------
def test_case_history_semantics(db: sqlite3.Connection) -> None:
    hist = defaultdict(list)
    for h in rows(db, "CaseHistory__c", "ORDER BY CreatedDate, Id"):
        hist[h["CaseId__c"]].append(h)
    today = "2025-06-30"
    for c in rows(db, "Case"):
        h = hist[c["Id"]]
        assert [x["Field__c"] for x in h].count("Case Creation") == 1 and h[0]["CreatedDate"] == c["CreatedDate"]
        assign = [x for x in h if x["Field__c"] == "Owner Assignment"]
        closed = [x for x in h if x["Field__c"] == "Case Closed"]
        assert all(x["CreatedDate"] < today for x in h)
        if c["Status"] == "New":
            assert c["OwnerId"] is None and not assign and not closed and c["ClosedDate"] is None
            continue
        assert assign and assign[0]["OldValue__c"] is None
        for prev, nxt in zip(assign, assign[1:], strict=False):
            assert nxt["OldValue__c"] == prev["NewValue__c"] != nxt["NewValue__c"]
        assert c["OwnerId"] == assign[-1]["NewValue__c"]
        if c["Status"] == "Closed":
            assert len(closed) == 1 and closed[0]["CreatedDate"] == c["ClosedDate"] > c["CreatedDate"]
            assert assign[-1]["CreatedDate"] <= c["ClosedDate"]
        else:
            assert c["Status"] in ("Working", "Escalated") and not closed and c["ClosedDate"] is None


def test_routing_pools(db: sqlite3.Connection, size: str = "tiny") -> None:
    new_cases = rows(db, "Case", "WHERE Status = 'New'")
    assert len(new_cases) == SIZES[size].new_cases and all(c["OwnerId"] is None for c in new_cases)
    assert db.execute('SELECT COUNT(*) FROM "Case" WHERE OwnerId IS NULL AND Status != \'New\'').fetchone()[0] == 0
    new_leads = rows(db, "Lead", "WHERE OwnerId IS NULL")
    assert len(new_leads) == SIZES[size].new_leads
    assert all(ld["Status"] == "Open - Not Contacted" and ld["IsConverted"] == 0 for ld in new_leads)
    assert all(ld["CreatedDate"] >= "2025-06-27" for ld in new_leads)
    assert all(c["CreatedDate"] >= "2025-06-27" for c in new_cases)


def handle_days(c: sqlite3.Row) -> float:
    return (datetime.fromisoformat(c["ClosedDate"]) - datetime.fromisoformat(c["CreatedDate"])).total_seconds() / 86400


def test_agents_differ_in_speed_and_transfers(db: sqlite3.Connection) -> None:
    n_assign = Counter(r[0] for r in db.execute(
        "SELECT CaseId__c FROM CaseHistory__c WHERE Field__c = 'Owner Assignment'"))
    by_agent = defaultdict(list)
    for c in rows(db, "Case", "WHERE Status = 'Closed'"):
        if n_assign[c["Id"]] == 1:
            by_agent[c["OwnerId"]].append(handle_days(c))
    means = [statistics.mean(v) for v in by_agent.values()]
    assert len(means) == 8 and 2.0 <= max(means) / min(means) <= 5.0
    out = Counter(r[0] for r in db.execute(
        "SELECT OldValue__c FROM CaseHistory__c WHERE Field__c = 'Owner Assignment' AND OldValue__c IS NOT NULL"))
    assert max(out.values()) >= 3 * min(out.values())


def test_states_differ_in_closure_time(db: sqlite3.Connection) -> None:
    by_state = defaultdict(list)
    for r in db.execute('SELECT c.CreatedDate, c.ClosedDate, a.ShippingState FROM "Case" c '
                        "JOIN Account a ON a.Id = c.AccountId WHERE c.Status = 'Closed'"):
        by_state[r["ShippingState"]].append(handle_days(r))
    means = sorted(statistics.mean(v) for v in by_state.values() if len(v) >= 10)
    assert means[-1] / means[0] > 1.8


def test_products_have_issue_propensities_and_spikes(db: sqlite3.Connection) -> None:
    q = ('SELECT oi.Product2Id AS p, c.IssueId__c AS i, substr(c.CreatedDate, 1, 7) AS ym FROM "Case" c '
         "JOIN OrderItem oi ON oi.Id = c.OrderItemId__c WHERE c.Status != 'New'")
    data = db.execute(q).fetchall()
    issues = defaultdict(Counter)
    months = defaultdict(Counter)
    for r in data:
        issues[r["p"]][r["i"]] += 1
        months[r["p"]][r["ym"]] += 1
    clear = sum(1 for c in issues.values() if (lambda m: m[0][1] >= 1.5 * m[1][1])(c.most_common(2)))
    assert clear >= len(issues) // 2, "most products should have a clear top issue"
    spiky = 0
    for per_month in months.values():
        for year in ("2023", "2024"):
            counts = {ym: n for ym, n in per_month.items() if ym.startswith(year)}
            full = [counts.get(f"{year}-{m:02d}", 0) for m in range(1, 13)]
            top = max(full)
            rest = (sum(full) - top) / 11
            if top >= 2 * rest and top >= rest + 5:
                spiky += 1
                break
    assert 2 <= spiky <= len(months) // 2


def allowed_by_issue(db: sqlite3.Connection) -> dict[str, set[str]]:
    return {r["issue_id"]: set(r["solutions"]) for _, r in rules_of(db) if r["type"] == "allowed_solutions"}


def test_offered_solutions_stated_verbatim_and_breaches(db: sqlite3.Connection) -> None:
    allowed = allowed_by_issue(db)
    texts = defaultdict(str)
    for r in db.execute("SELECT ParentId, TextBody FROM EmailMessage"):
        texts[r[0]] += r[1]
    for r in db.execute("SELECT CaseId, Body FROM LiveChatTranscript"):
        texts[r[0]] += r[1]
    closed = rows(db, "Case", "WHERE Status = 'Closed'")
    breach = Counter()
    total = Counter()
    for c in closed:
        s = c["OfferedSolution__c"]
        assert s and f"offer: {s}." in texts[c["Id"]]
        total[c["OwnerId"]] += 1
        breach[c["OwnerId"]] += s not in allowed[c["IssueId__c"]]
    assert all(c["OfferedSolution__c"] is None for c in rows(db, "Case", "WHERE Status != 'Closed'"))
    share = sum(breach.values()) / len(closed)
    assert 0.2 <= share <= 0.4
    rates = sorted(breach[a] / total[a] for a in total)
    assert rates[-1] > 2 * rates[0], "some agents breach far more than others"


# ------------------------------------------------------------------------------------------------
# Knowledge articles and quotes
# ------------------------------------------------------------------------------------------------
def numbers_in(rule: dict) -> list[int]:
    out: list[int] = []

    def walk(x: object) -> None:
        if isinstance(x, bool):
            return
        if isinstance(x, int):
            out.append(x)
        elif isinstance(x, (list, tuple)):
            for y in x:
                walk(y)
        elif isinstance(x, dict):
            for y in x.values():
                walk(y)

    walk(rule)
    return out


def test_articles_parse_and_state_their_rule(db: sqlite3.Connection) -> None:
    arts = rows(db, "Knowledge__kav")
    assert len({a["UrlName"] for a in arts}) == len(arts)
    kinds = Counter()
    for a in arts:
        rule = json.loads(a["PolicyRule__c"])
        kinds[rule["type"]] += 1
        body = a["FAQ_Answer__c"]
        if a["ArticleType__c"] == "FAQ":
            assert rule["type"] == "faq" and rule["facts"]
            assert all(f["answer"] in body and f["question"].endswith("?") for f in rule["facts"])
            continue
        for n in numbers_in(rule):
            assert str(n) in body or f"{n:,}" in body, f"{a['Title']}: {n} not stated"
        for key in ("product_id", "requires_product_id", "issue_id"):
            if key in rule:
                assert rule[key] in body
    families = {r[0] for r in db.execute("SELECT DISTINCT Family FROM Product2")}
    for t in ("stage_activities", "bant", "case_routing", "lead_routing"):
        assert kinds[t] == 1, t
    assert kinds["discount_tiers"] == len(families)
    assert kinds["allowed_solutions"] == db.execute("SELECT COUNT(*) FROM Issue__c").fetchone()[0]
    assert min(kinds["quantity_limit"], kinds["bundle"], kinds["exclusion"]) >= 2


def test_discount_tiers_well_formed(db: sqlite3.Connection) -> None:
    for _, r in rules_of(db):
        if r["type"] == "discount_tiers":
            mins = [t[0] for t in r["tiers"]]
            assert mins[0] == 1 and mins == sorted(set(mins))


def quote_breaks(db: sqlite3.Connection) -> dict[str, tuple[int, int]]:
    """Per quote: (discount tier articles broken, configuration rules broken), from the articles' JSON."""
    fam = dict(db.execute("SELECT Id, Family FROM Product2").fetchall())
    tiers, limits, bundles, excl = {}, {}, [], []
    for _, r in rules_of(db):
        if r["type"] == "discount_tiers":
            tiers[r["family"]] = r["tiers"]
        elif r["type"] == "quantity_limit":
            limits[r["product_id"]] = r["max_quantity"]
        elif r["type"] == "bundle":
            bundles.append((r["product_id"], r["requires_product_id"]))
        elif r["type"] == "exclusion":
            excl.append(tuple(r["product_ids"]))
    lines = defaultdict(list)
    for li in rows(db, "QuoteLineItem"):
        lines[li["QuoteId"]].append(li)
    out = {}
    for qid, ls in lines.items():
        disc = {fam[li["Product2Id"]] for li in ls
                if li["Discount"] > max(m for q, m in tiers[fam[li["Product2Id"]]] if q <= li["Quantity"])}
        have = {li["Product2Id"] for li in ls}
        cfg = (sum(li["Quantity"] > limits.get(li["Product2Id"], float("inf")) for li in ls)
               + sum(p in have and r not in have for p, r in bundles)
               + sum(p in have and q in have for p, q in excl))
        out[qid] = (len(disc), cfg)
    return out


def test_quote_lines_total_price_and_rule_shares(db: sqlite3.Connection) -> None:
    per_quote = Counter()
    for li in rows(db, "QuoteLineItem"):
        per_quote[li["QuoteId"]] += 1
        assert li["TotalPrice"] == pytest.approx(round(li["Quantity"] * li["UnitPrice"] * (1 - li["Discount"] / 100), 2))
        assert 0 <= li["Discount"] <= 100 and li["Quantity"] >= 1
    quotes = [r[0] for r in db.execute("SELECT Id FROM Quote")]
    assert all(1 <= per_quote[q] <= 6 for q in quotes)
    breaks = quote_breaks(db)
    n = len(quotes)
    disc = sum(d > 0 for d, _ in breaks.values()) / n
    cfg = sum(c > 0 for _, c in breaks.values()) / n
    clean = sum(not d and not c for d, c in breaks.values()) / n
    assert 0.3 <= disc <= 0.5 and 0.3 <= cfg <= 0.5 and clean > 0.2
    several = sum(c >= 2 for _, c in breaks.values()) / n
    assert several >= 0.05, "some quotes must break several configuration rules (precedence order)"
    check_precedence_shares(breaks)


def check_precedence_shares(breaks: dict[str, tuple[int, int]]) -> None:
    """Among the quotes breaking a discount tier, about a quarter break two Families' articles; among
    those breaking a configuration rule, about a third break two or more: precedence decides there."""
    disc = [d for d, _ in breaks.values() if d]
    cfg = [c for _, c in breaks.values() if c]
    assert 0.15 <= sum(d >= 2 for d in disc) / len(disc) <= 0.4
    assert 0.2 <= sum(c >= 2 for c in cfg) / len(cfg) <= 0.45


def test_near_duplicate_product_names(db: sqlite3.Connection) -> None:
    names = [r[0] for r in db.execute("SELECT Name FROM Product2")]
    assert any(a != b and b.startswith(a + " ") for a in names for b in names)


# ------------------------------------------------------------------------------------------------
# Sales: reps, leads, opportunities, tasks, transcripts
# ------------------------------------------------------------------------------------------------
def test_reps_differ_in_conversion_and_leads_bant_stated(db: sqlite3.Connection) -> None:
    rate = defaultdict(list)
    for ld in rows(db, "Lead", "WHERE OwnerId IS NOT NULL"):
        rate[ld["OwnerId"]].append(ld["IsConverted"])
        assert (ld["ConvertedDate"] is not None) == bool(ld["IsConverted"])
    rates = sorted(statistics.mean(v) for v in rate.values())
    assert rates[-1] - rates[0] > 0.2
    calls = rows(db, "VoiceCallTranscript__c", "WHERE LeadId__c IS NOT NULL ORDER BY CreatedDate, Id")
    assert len(calls) > 50
    leads = {ld["Id"]: ld for ld in rows(db, "Lead")}
    bodies = defaultdict(list)
    for c in calls:
        assert c["OpportunityId__c"] is None
        bodies[c["LeadId__c"]].append(c["TranscriptBody__c"])
    for lid, texts in bodies.items():
        ld, body = leads[lid], "\n".join(texts)
        assert ld["OwnerId"] is not None and len(texts) <= 2
        # Each fact is stated exactly once over the lead's calls (split between them when there are two).
        facts = [f"I am the {ld['Title']} at {ld['Company']}.", f"${ld['Budget__c']:,.0f}",
                 f"within {ld['TimelineDays__c']} days", ld["NeedFamily__c"]]
        assert all(sum(f in t for t in texts) == 1 for f in facts), (lid, texts)
        assert body.count("$") == 1 and body.count(" days") == 1
    assert sum(len(t) == 2 for t in bodies.values()) >= 0.15 * len(bodies), "some leads need two calls"
    lengths = [len(c["TranscriptBody__c"]) for c in calls]
    assert max(lengths) > 1.8 * min(lengths), "call length should vary"


def test_a_third_of_leads_pass_bant(db: sqlite3.Connection) -> None:
    """About 30% of the leads with a call pass all four factors, so None answers have many leads."""
    rule = next(r for _, r in rules_of(db) if r["type"] == "bant")
    called = {r[0] for r in db.execute("SELECT LeadId__c FROM VoiceCallTranscript__c WHERE LeadId__c IS NOT NULL")}
    leads = [ld for ld in rows(db, "Lead") if ld["Id"] in called]
    passing = [ld for ld in leads if ld["Budget__c"] >= rule["budget_min"]
               and ld["Title"] in rule["authority_titles"] and ld["NeedFamily__c"] in rule["need_families"]
               and ld["TimelineDays__c"] <= rule["timeline_max_days"]]
    assert 0.22 <= len(passing) / len(leads) <= 0.4


def test_opportunity_calls_mention_competitors_and_topics(db: sqlite3.Connection) -> None:
    calls = rows(db, "VoiceCallTranscript__c", "WHERE OpportunityId__c IS NOT NULL")
    assert len(calls) > 30
    for c in calls:
        assert c["LeadId__c"] is None
        for item in c["Competitors__c"].split(", ") + c["Topics__c"].split(", "):
            assert item in c["TranscriptBody__c"]


def test_stage_activities_and_wrong_stages(db: sqlite3.Connection, size: str = "tiny") -> None:
    catalogue = next(r for _, r in rules_of(db) if r["type"] == "stage_activities")["stages"]
    assert list(catalogue) == STAGES
    stage_of = {s: i for i, st in enumerate(STAGES) for s in catalogue[st]}
    assert len(stage_of) == sum(len(v) for v in catalogue.values()), "catalogues must be disjoint"
    tasks = defaultdict(list)
    for t in rows(db, "Task"):
        tasks[t["WhatId"]].append(t)
    wrong = misfit = 0
    for o in rows(db, "Opportunity"):
        ts = tasks[o["Id"]]
        done = [stage_of[t["Subject"]] for t in ts if t["Status"] == "Completed"]
        assert done, f"opportunity {o['Id']} has no completed task"
        true, shown = max(done), STAGES.index(o["StageName"])
        if true != shown:
            wrong += 1
            assert true < 4 and shown < 4 and all(t["Status"] == "Completed" for t in ts)
        for t in ts:
            if t["Status"] == "In Progress":
                assert stage_of[t["Subject"]] in (shown, shown + 1)
            if t["Status"] == "Not Started" and stage_of[t["Subject"]] not in (shown, shown + 1):
                misfit += 1
        if o["StageName"] == "Closed" and o["Probability"] == 100:
            ct = db.execute("SELECT CompanySignedDate FROM Contract WHERE Id = ?", (o["ContractID__c"],)).fetchone()
            assert ct[0] == o["CloseDate"] and ct[0] > o["CreatedDate"][:10]
        else:
            assert o["ContractID__c"] is None
    assert wrong >= SIZES[size].wrong_stages and misfit >= 3


def test_sales_volume_differs_across_reps(db: sqlite3.Connection) -> None:
    q = ('SELECT o.OwnerId, SUM(oi.Quantity * oi.UnitPrice) FROM "Order" o JOIN OrderItem oi ON oi.OrderId = o.Id '
         "GROUP BY o.OwnerId")
    totals = sorted(r[1] for r in db.execute(q))
    assert len(totals) == 6 and totals[-1] > 2 * totals[0]


def test_nothing_happens_after_today(db: sqlite3.Connection) -> None:
    today = date(2025, 6, 30).isoformat()
    for table, col in [("Case", "CreatedDate"), ("Case", "ClosedDate"), ("Lead", "CreatedDate"),
                       ("Lead", "ConvertedDate"), ("Opportunity", "CreatedDate"), ("Order", "EffectiveDate"),
                       ("EmailMessage", "MessageDate"), ("VoiceCallTranscript__c", "CreatedDate"),
                       ("Contract", "CompanySignedDate"), ("Quote", "CreatedDate")]:
        latest = db.execute(f"SELECT MAX({qi(col)}) FROM {qi(table)}").fetchone()[0]
        assert latest < today, f"{table}.{col} = {latest}"
    assert db.execute('SELECT MIN(CreatedDate) FROM "Case"').fetchone()[0] >= "2023-01-01"


@pytest.mark.parametrize("size", ["small", pytest.param("full", marks=pytest.mark.slow)])
def test_larger_preset_keeps_the_key_invariants(size: str, tmp_path: Path) -> None:
    conn = open_org(build_org(tmp_path / "o.sqlite", seed=3, size=size))
    conn.row_factory = sqlite3.Row
    s = SIZES[size]
    assert conn.execute("SELECT COUNT(*) FROM User WHERE UserRole = 'Support Agent'").fetchone()[0] == s.support_agents
    assert conn.execute("SELECT COUNT(*) FROM Product2").fetchone()[0] == s.products
    breaks = quote_breaks(conn)
    assert 0.3 <= sum(d > 0 for d, _ in breaks.values()) / len(breaks) <= 0.5
    check_precedence_shares(breaks)
    # CRUD targets: enough that the default suite rarely repeats one (200+ on small, 800+ on full).
    test_routing_pools(conn, size)
    test_stage_activities_and_wrong_stages(conn, size)
    assert s.new_cases >= {"small": 200, "full": 800}[size] and s.wrong_stages >= {"small": 180, "full": 650}[size]
    test_a_third_of_leads_pass_bant(conn)
    test_case_history_semantics(conn)
    test_references_resolve(conn)


# ------------------------------------------------------------------------------------------------
# The quote rules as pure functions
# ------------------------------------------------------------------------------------------------
def toy_rules() -> Rules:
    fam = {"A": "Hardware", "B": "Hardware", "C": "Services", "D": "Services", "E": "Hardware", "F": "Services"}
    return Rules(tiers={"Hardware": [(1, 5), (10, 10), (50, 20)], "Services": [(1, 0), (5, 5)]},
                 qty_limit={"A": 20}, bundles=[("C", "B")], exclusions=[("D", "E")], family=fam)


def test_rules_broken_follows_the_contract() -> None:
    r = toy_rules()
    assert r.max_discount("A", 9) == 5 and r.max_discount("A", 10) == 10 and r.max_discount("A", 500) == 20
    assert r.broken([("A", 10, 10.0), ("B", 1, 5.0)]) == []
    assert r.broken([("A", 9, 6.0)]) == [("discount_tiers", "Hardware")]
    assert r.broken([("A", 21, 0.0)]) == [("quantity_limit", "A")]
    assert r.broken([("C", 1, 0.0)]) == [("bundle", ("C", "B"))]
    assert r.broken([("C", 1, 0.0), ("B", 1, 0.0)]) == []
    assert r.broken([("D", 1, 0.0), ("E", 1, 0.0)]) == [("exclusion", ("D", "E"))]
    assert r.breaks([("D", 4, 1.0), ("E", 1, 0.0)]) == (True, True)


@pytest.mark.parametrize("bad_discount,bad_config", [(False, False), (True, False), (False, True), (True, True)])
def test_draw_quote_lines_breaks_exactly_what_is_asked(bad_discount: bool, bad_config: bool) -> None:
    r = toy_rules()
    several = 0
    for seed in range(60):
        lines = draw_quote_lines(random.Random(seed), r, list(r.family), bad_discount, bad_config)
        assert 1 <= len(lines) <= 6 and len({p for p, _, _ in lines}) == len(lines)
        assert r.breaks([tuple(x) for x in lines]) == (bad_discount, bad_config)
        several += sum(k != "discount_tiers" for k, _ in r.broken([tuple(x) for x in lines])) >= 2
    assert (several > 0) == bad_config


def test_two_line_discount_breaks_span_two_families() -> None:
    """When a quote gets two lines over their tiers, they come from two Families where the quote has
    two, so that two discount articles break (the precedence case of quote_approval)."""
    r = toy_rules()
    two = 0
    for seed in range(300):
        lines = draw_quote_lines(random.Random(seed), r, list(r.family), True, False)
        fams = [f for k, f in r.broken([tuple(x) for x in lines]) if k == "discount_tiers"]
        two += len(fams) == 2
    assert 0.1 <= two / 300 <= 0.45, two


def test_lead_call_states_exactly_the_asked_facts() -> None:
    from seccrm.world.org import text as T
    rng = random.Random(0)
    full = T.lead_call(rng, "Ann", "Bo", "CFO", "Acme Labs", 75000.0, "Networking", 45, small_talk=3)
    assert all(x in full for x in ("I am the CFO at Acme Labs.", "$75,000", "Networking", "within 45 days"))
    part = T.lead_call(rng, "Ann", "Bo", "CFO", "Acme Labs", 75000.0, "Networking", 45,
                       facts=("budget",), follow_up=True)
    assert "$75,000" in part and "CFO" not in part and "within" not in part and "follow-up" in part
    assert len(full.splitlines()) == len(part.splitlines()) + 3 * 2 + 3 * 2
    with pytest.raises(ValueError, match="unknown BANT fact"):
        T.lead_call(rng, "Ann", "Bo", "CFO", "Acme Labs", 75000.0, "Networking", 45, facts=("price",))
