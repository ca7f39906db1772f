"""Difficulty evidence (issue 2): what each level of each task puts in front of a model, and how
simple solvers that read only the prompt fare on it.

    python benchmarks/bench_difficulty.py                    # small org, 60 instances per task and level
    python benchmarks/bench_difficulty.py --per-level 20 --no-write

It builds an org (``--size``, ``--seed``) and generates ``--per-level`` instances of every task at
every level, exactly as ``seccrm build`` does (``seccrm.data.build.make_record``). Per task and level:

- ``tokens``: mean prompt length in SmolLM2 tokens, chat template included (the project's default
  model; ``seccrm.engine.models.load_tokenizer``);
- ``rows``: mean number of table rows shown (the sum of the tables' "(N rows)");
- ``choices``: mean number of things the answer is chosen among (agents, states, issues, months,
  articles, calls, tasks, purchase lines: ``CHOICES`` says which, per task);
- ``distr``: mean number of shown records or articles the answer does not depend on (``DISTRACTORS``);
- ``None``: share of gold answers that are None (= the accuracy of always answering None);
- ``distinct``: share of distinct questions (the "Question:" line) among the instances;
- ``first`` / ``freq``: accuracy of answering with the first / the most frequent well-formed
  candidate in the records (ids of the right object, states, months, phrases);
- ``careless``: accuracy of a rule-based solver that applies the task's rule to every row shown,
  ignoring the window, the filters, whose record a row is, tie-breaks and precedence (``CARELESS``).

Accuracies are ``seccrm.world.rewards.score == 1.0`` (CRUD actions are applied to a scratch copy of the
org). The table is printed and, unless ``--no-write``, written with the date, the machine and the
command to the "## Difficulty (issue 2)" section of BENCHMARKS.md (replacing the previous run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seccrm.data.build import make_record
from seccrm.world.arms import DIFFICULTIES
from seccrm.world.org import build_org, open_org
from seccrm.world.org import text as T
from seccrm.world.org.schema import STAGES as SCHEMA_STAGES
from seccrm.world.rewards import answer_kind, score
from seccrm.world.tasks import all_tasks
from seccrm.world.tasks.base import MONTHS, Org

SECTION = "## Difficulty (issue 2)"
Record = dict[str, Any]
Tables = dict[str, list[dict[str, str]]]
ID_RE = re.compile(r"\b[0-9A-Za-z]{18}\b")
STATES = {s for _, states in T.TERRITORIES for s in states}
STAGES = list(SCHEMA_STAGES)


# ----------------------------------------------------------------------------------------------
# Reading a prompt: its tables, its question, the records part
# ----------------------------------------------------------------------------------------------

def user_text(rec: Record) -> str:
    return rec["messages"][-1]["content"]


def question(rec: Record) -> str:
    return next((p for p in user_text(rec).split("\n\n") if p.startswith("Question:")), "")


def records_part(rec: Record) -> str:
    """The user message without its question and answer format: what a solver reads answers from."""
    return "\n\n".join(p for p in user_text(rec).split("\n\n")
                       if not p.startswith(("Question:", "Answer format:")))


def tables(rec: Record) -> Tables:
    """The pipe tables of the prompt, by title ("Case (to route)", "Knowledge__kav (articles)", ...)."""
    out: Tables = {}
    for block in user_text(rec).split("\n\n"):
        lines = block.split("\n")
        m = re.fullmatch(r"(.*) \((\d+) rows\)", lines[0])
        if m and len(lines) >= 2:
            cols = lines[1].split(" | ")
            out[m.group(1)] = [dict(zip(cols, ln.split(" | "), strict=False)) for ln in lines[2:]]
    return out


def table(t: Tables, prefix: str) -> list[dict[str, str]]:
    """The first table whose title starts with ``prefix`` (empty when there is none)."""
    return next((rows for title, rows in t.items() if title.startswith(prefix)), [])


def rows_shown(rec: Record) -> int:
    return sum(int(n) for n in re.findall(r"^.* \((\d+) rows\)$", user_text(rec), flags=re.M))


def days(a: str, b: str) -> int:
    return (dt.date.fromisoformat(b[:10]) - dt.date.fromisoformat(a[:10])).days


def wants_min(q: str) -> bool:
    return re.search(r"\b(lowest|fewest|fastest|shortest)\b", q) is not None


def answer(value: str | list[str] | None) -> str:
    if value is None or value == []:
        return "<answer>None</answer>"
    return f"<answer>{value if isinstance(value, str) else ', '.join(value)}</answer>"


def action(rec: Record, value: str) -> str:
    """A write action on the question's target record with the task's one field set to ``value``."""
    kind = answer_kind(rec["task"])
    obj, field = kind.action_object, kind.action_fields[0]
    return answer(json.dumps({"op": "update", "object": obj, "id": _target(rec, obj), "fields": {field: value}}))


def _target(rec: Record, obj: str | None) -> str:
    prefix = {"Case": "500", "Lead": "00Q", "Opportunity": "006"}[obj or ""]
    return next(i for i in ID_RE.findall(question(rec)) if i.startswith(prefix))


# ----------------------------------------------------------------------------------------------
# Solvers that pick a candidate without reasoning: the first one, the most frequent one
# ----------------------------------------------------------------------------------------------

VOCAB = {"competitors": T.COMPETITORS, "topics": T.TOPICS}
FACT_RE = re.compile(r"\b\d[\d,.]*(?: ?(?:%|[A-Za-z]+))?")


def candidates(rec: Record) -> list[str]:
    """Every well-formed answer of the task's kind in the records, in order of appearance."""
    kind, text = answer_kind(rec["task"]), records_part(rec)
    if kind.kind in ("id", "id_list"):
        return [i for i in ID_RE.findall(text) if i.startswith(kind.prefix or "")]
    if kind.kind == "action":
        return (re.findall(r"\b(" + "|".join(STAGES) + r")\b", text) if "StageName" in kind.action_fields
                else [i for i in ID_RE.findall(text) if i.startswith("005")])
    if kind.kind == "state":
        return [s for s in re.findall(r"\b[A-Z]{2}\b", text) if s in STATES]
    if kind.kind == "month":   # the months of the dates shown
        return [MONTHS[int(m) - 1] for m in re.findall(r"\b\d{4}-(\d{2})-\d{2}", text)]
    if kind.kind == "text":
        return [m.group(0) for m in FACT_RE.finditer(table_text(rec, "Knowledge__kav"))]
    if kind.kind == "text_list":
        vocab = VOCAB["competitors" if "competitors" in question(rec) else "topics"]
        return re.findall("|".join(map(re.escape, vocab)), text)
    return list(kind.choices)   # subset: the factors, in their listed order


def table_text(rec: Record, prefix: str) -> str:
    return " ".join(" ".join(r.values()) for r in table(tables(rec), prefix))


def first_solver(rec: Record) -> str:
    c = candidates(rec)
    value = c[0] if c else None
    return action(rec, value) if value and answer_kind(rec["task"]).kind == "action" else answer(value)


def frequent_solver(rec: Record) -> str:
    c = candidates(rec)
    value = Counter(c).most_common(1)[0][0] if c else None   # ties: the first seen
    return action(rec, value) if value and answer_kind(rec["task"]).kind == "action" else answer(value)


# ----------------------------------------------------------------------------------------------
# Careless rule-based solvers: the task's rule over every row shown, no window, no filter, no
# ownership, no tie-break, no precedence. One function per task; None when the task has none.
# ----------------------------------------------------------------------------------------------

def pick(values: dict[str, list[float]], among: list[str], q: str, agg: Callable[[list[float]], float]) -> str:
    """The candidate with the lowest / highest aggregate (ties: the first listed)."""
    scored = [(agg(values[c]), c) for c in among if values.get(c)]
    if not scored:
        return among[0]
    best = min(v for v, _ in scored) if wants_min(q) else max(v for v, _ in scored)
    return next(c for v, c in scored if v == best)


def careless_analytics(rec: Record) -> str:
    t, q, task = tables(rec), question(rec), rec["task"]
    agents = [i for i in ID_RE.findall(q) if i.startswith("005")]
    vals: dict[str, list[float]] = {}
    if task == "handle_time":
        for r in table(t, "Case"):
            if r.get("ClosedDate"):
                vals.setdefault(r["OwnerId"], []).append(days(r["CreatedDate"], r["ClosedDate"]))
    elif task == "transfer_count":
        for a in agents:
            vals[a] = [float(sum(r["OldValue__c"] == a for r in table(t, "CaseHistory__c")))]
    elif task == "best_region_identification":
        state = {r["Id"]: r["ShippingState"] for r in table(t, "Account")}
        for r in table(t, "Case"):
            if r.get("ClosedDate"):
                vals.setdefault(state.get(r["AccountId"], ""), []).append(days(r["CreatedDate"], r["ClosedDate"]))
        agents = re.findall(r"\b[A-Z]{2}\b", q.split("(the account")[0])
    elif task == "sales_amount_understanding":
        owner = {r["Id"]: r["OwnerId"] for r in table(t, "Order")}
        for r in table(t, "OrderItem"):
            vals.setdefault(owner.get(r["OrderId"], ""), []).append(float(r["Quantity"]) * float(r["UnitPrice"]))
        return answer(pick(vals, agents, q, sum))
    elif task == "sales_cycle_understanding":
        signed = {r["Id"]: r["CompanySignedDate"] for r in table(t, "Contract")}
        for r in table(t, "Opportunity"):
            if r.get("ContractID__c") in signed:
                vals.setdefault(r["OwnerId"], []).append(days(r["CreatedDate"], signed[r["ContractID__c"]]))
    elif task == "conversion_rate_comprehension":
        for r in table(t, "Lead"):
            vals.setdefault(r["OwnerId"], []).append(float(r["IsConverted"]))
    return answer(pick(vals, agents, q, statistics.fmean))


def careless_top_issue(rec: Record) -> str:
    top = Counter(r["IssueId__c"] for r in table(tables(rec), "Case")).most_common(2)
    return answer(None if not top or (len(top) > 1 and top[0][1] == top[1][1]) else top[0][0])


def careless_monthly_trend(rec: Record) -> str:
    counts = Counter(r["CreatedDate"][:7] for r in table(tables(rec), "Case"))
    hits = []
    for ym, n in counts.items():
        others = [v for k, v in counts.items() if k != ym]
        mean = statistics.fmean(others) if others else 0.0
        if n >= 2 * mean and n >= mean + 5:
            hits.append(MONTHS[int(ym[5:7]) - 1])
    return answer(hits[0] if len(hits) == 1 else None)


def careless_entity(rec: Record) -> str:
    m = re.search(r"help with the (.+?) I bought", question(rec))
    mention = m.group(1) if m else ""
    t = tables(rec)
    names = {r["Id"]: r["Name"] for r in table(t, "Product2")}    # hard: names in their own table
    for r in table(t, "Purchases"):     # any purchase date, not the one the customer gives
        name = r.get("Product") or names.get(r["Product2Id"], "")
        if name == mention or name.startswith(mention + " "):
            return answer(r["Product2Id"])
    return answer(None)


def careless_insight(rec: Record) -> str:
    vocab = VOCAB["competitors" if "competitors" in question(rec) else "topics"]
    text = table_text(rec, "VoiceCallTranscript__c")      # every call, whichever opportunity
    return answer([v for v in vocab if v in text])


def stage_catalogue(rec: Record) -> dict[str, int]:
    """Task subject -> stage index, from the stage activity policy's text."""
    out = {}
    for i, st in enumerate(STAGES):
        m = re.search(rf"{st}: (.+?)\.(?: |$)", user_text(rec))
        for subj in (m.group(1).split(", ") if m else []):
            out[subj] = i
    return out


def careless_activity(rec: Record) -> str:
    cat, m = stage_catalogue(rec), re.search(r"current stage \((\w+)\)", question(rec))
    stage = STAGES.index(m.group(1)) if m else 0
    return answer([r["Id"] for r in table(tables(rec), "Task")     # every opportunity's tasks
                   if r["Status"] == "Not Started" and cat.get(r["Subject"], -9) not in (stage, stage + 1)])


def careless_wrong_stage(rec: Record) -> str:
    cat = stage_catalogue(rec)
    done = [cat[r["Subject"]] for r in table(tables(rec), "Task") if r["Status"] == "Completed" and r["Subject"] in cat]
    return action(rec, STAGES[max(done)] if done else STAGES[0])


def careless_case_routing(rec: Record) -> str:
    t = tables(rec)
    counts = table(t, "Cases per agent")
    if counts:   # easy: the counts are given; no tie-break
        return action(rec, max(counts, key=lambda r: int(r["ClosedWithIssue"]))["OwnerId"])
    users = [r["Id"] for r in table(t, "User")]
    closed = Counter(r["OwnerId"] for title, rows in t.items() if title.startswith("Case (closed)") or title == "Case"
                     for r in rows if r["Status"] == "Closed")   # any issue, any date, any territory
    return action(rec, max(users, key=lambda u: closed[u]))


def careless_lead_routing(rec: Record) -> str:
    t = tables(rec)
    owned: Counter[str] = Counter()
    conv: Counter[str] = Counter()
    for r in table(t, "Leads per rep"):
        owned[r["OwnerId"]], conv[r["OwnerId"]] = int(r["LeadsOwned"]), int(r["LeadsConverted"])
    for r in table(t, "Lead counts"):
        owned[r["OwnerId"]] += int(r["Leads"])
        conv[r["OwnerId"]] += int(r["Leads"]) * int(r["IsConverted"])
    reps = [u for u in owned if owned[u]]                      # every rep shown, any territory
    return action(rec, max(reps, key=lambda u: conv[u] / owned[u]))


def _pattern(template: str, with_answer: bool) -> str:
    """A regex for an org text template: ``{p}`` matches any product name, ``{a}`` is captured."""
    def esc(x: str) -> str:
        return re.escape(x).replace(re.escape("{p}"), ".+?")
    if not with_answer:
        return esc(template)
    before, after = template.split("{a}")
    tail = esc(after)
    if after.startswith("."):    # a full stop ends the sentence (answers like "1.2 kg" hold dots)
        tail = r"\.(?=\s|$)" + esc(after[1:])
    return esc(before) + "(?P<a>.+?)" + tail


FAQ_FACTS = [f for _, _, facts in T.GENERAL_FAQS for f in facts] + [f for fs in T.PRODUCT_FACTS.values() for f in fs]


def careless_qa(rec: Record) -> str:
    """Finds the asked kind of fact in the first article listed that states one, whichever it is."""
    q = question(rec)
    for ask, _, sentence in FAQ_FACTS:
        if re.search(_pattern(ask, False), q):
            for art in table(tables(rec), "Knowledge__kav"):
                m = re.search(_pattern(sentence, True), art["FAQ_Answer__c"])
                if m:
                    return answer(m.group("a"))
    return answer(None)


def quote_lines(rec: Record) -> list[dict[str, str]]:
    return table(tables(rec), "QuoteLineItem")


def careless_quote_approval(rec: Record) -> str:
    """The first listed tier article that a line breaks (listing order, not the lowest Id), misreading
    a tier's lower bound: a quantity equal to a tier's minimum still gets the tier below."""
    for art in table(tables(rec), "Knowledge__kav"):
        m = re.match(r"Discount policy: (\w+) products", art["Title"])
        tiers = [(int(lo), int(pct)) for lo, pct in
                 re.findall(r"(\d+)(?: to \d+)? units(?: or more)?: at most (\d+)% discount", art["FAQ_Answer__c"])]
        for ln in quote_lines(rec):
            if m and tiers and ln["Family"] == m.group(1):
                cap = max((p for lo, p in tiers if lo < float(ln["Quantity"])), default=tiers[0][1])
                if float(ln["Discount"]) > cap:
                    return answer(art["Id"])
    return answer(None)


def careless_invalid_config(rec: Record) -> str:
    """The first listed configuration article the quote breaks (no type precedence)."""
    lines = quote_lines(rec)
    qty = {ln["Product2Id"]: float(ln["Quantity"]) for ln in lines}
    for art in table(tables(rec), "Knowledge__kav"):
        body, ids = art["FAQ_Answer__c"], re.findall(r"\(product (\w{18})\)", art["FAQ_Answer__c"])
        limit = re.search(r"at most (\d+) units", body)
        broken = ((art["Title"].startswith("Quantity limit") and limit and ids and qty.get(ids[0], 0) > int(limit[1]))
                  or (art["Title"].startswith("Bundle") and len(ids) == 2 and ids[0] in qty and ids[1] not in qty)
                  or (art["Title"].startswith("Product exclusion") and len(ids) == 2 and all(i in qty for i in ids)))
        if broken:
            return answer(art["Id"])
    return answer(None)


def careless_lead(rec: Record) -> str:
    """Reads the BANT article and only the first call listed (whoever's lead it is, whatever it covers);
    a fact the call does not state is taken as met."""
    t = tables(rec)
    bant = next((a["FAQ_Answer__c"] for a in table(t, "Knowledge__kav") if "BANT" in a["Title"]), "")
    calls = table(t, "VoiceCallTranscript__c")
    call = calls[0]["TranscriptBody__c"] if calls else ""
    fails = []
    budget, cap = re.search(r"\$([\d,]+)", call), re.search(r"at least \$([\d,]+)", bant)
    if budget and cap and int(budget[1].replace(",", "")) < int(cap[1].replace(",", "")):
        fails.append("Budget")
    title, titles = re.search(r"I am the (.+?) at ", call), re.search(r"title is one of (.+?)\. Need", bant)
    if title and titles and title[1] not in titles[1].split(", "):
        fails.append("Authority")
    needs = re.search(r"need is for (.+?) products", bant)
    need = next((f for f in T.FAMILIES if f in call), None)
    if need and needs and need not in needs[1].split(", "):
        fails.append("Need")
    within, limit = re.search(r"within (\d+) days", call), re.search(r"within (\d+) days", bant)
    if within and limit and int(within[1]) > int(limit[1]):
        fails.append("Timeline")
    return answer(fails or None)


def careless_solution(rec: Record) -> str:
    """Checks the offered solution against the first allowed-solutions article listed, whatever its issue."""
    t = tables(rec)
    text = table_text(rec, "LiveChatTranscript") + " " + table_text(rec, "EmailMessage")
    offered = re.search(r"offer: (.+?)\.(?: |$)", text)
    art = next((a for a in table(t, "Knowledge__kav") if "may offer only" in a["FAQ_Answer__c"]), None)
    allowed = re.search(r"only these solutions: (.+?)\. Offering", art["FAQ_Answer__c"]) if art else None
    if not (offered and art and allowed):
        return answer(None)
    return answer(None if offered[1] in allowed[1].split("; ") else art["Id"])


CARELESS: dict[str, Callable[[Record], str]] = {
    **{t: careless_analytics for t in ("handle_time", "transfer_count", "best_region_identification",
                                       "sales_amount_understanding", "sales_cycle_understanding",
                                       "conversion_rate_comprehension")},
    "top_issue_identification": careless_top_issue, "monthly_trend_analysis": careless_monthly_trend,
    "knowledge_qa": careless_qa, "named_entity_disambiguation": careless_entity, "sales_insight_mining": careless_insight,
    "activity_priority": careless_activity, "case_routing": careless_case_routing,
    "lead_routing": careless_lead_routing, "wrong_stage_rectification": careless_wrong_stage,
    "quote_approval": careless_quote_approval, "invalid_config": careless_invalid_config,
    "lead_qualification": careless_lead, "policy_violation_identification": careless_solution,
}


# ----------------------------------------------------------------------------------------------
# What each task's instances hold, read from their metadata (the generator's own record)
# ----------------------------------------------------------------------------------------------

def _n(key: str) -> Callable[[dict[str, Any]], float]:
    return lambda m: float(m[key] if isinstance(m[key], (int, float)) else len(m[key]))


_AGENTS = ("agents", _n("candidates"))
_ARTICLES = ("articles", _n("articles_shown"))
CHOICES: dict[str, tuple[str, Callable[[dict[str, Any]], float]]] = {
    "handle_time": _AGENTS, "transfer_count": _AGENTS, "best_region_identification": ("states", _n("candidates")),
    "sales_amount_understanding": ("reps", _n("candidates")), "sales_cycle_understanding": ("reps", _n("candidates")),
    "conversion_rate_comprehension": ("reps", _n("candidates")), "top_issue_identification": ("issues", _n("issue_counts")),
    "monthly_trend_analysis": ("months", _n("month_counts")), "knowledge_qa": ("articles", _n("n_articles")),
    "named_entity_disambiguation": ("purchase lines", _n("n_lines")), "sales_insight_mining": ("calls", _n("n_calls")),
    "activity_priority": ("tasks", _n("n_tasks")), "case_routing": ("users", _n("shown_user_ids")),
    "lead_routing": ("users", _n("shown_user_ids")), "wrong_stage_rectification": ("tasks", _n("n_tasks")),
    "quote_approval": _ARTICLES, "invalid_config": _ARTICLES, "lead_qualification": ("calls", _n("transcripts_shown")),
    "policy_violation_identification": _ARTICLES,
}


def distractors(task: str, m: dict[str, Any]) -> float:
    """Shown records or articles the gold does not depend on."""
    if "n_distractors" in m:
        return m["n_distractors"]
    if task in ("knowledge_qa", "sales_insight_mining"):
        return len(m["distractor_ids"])
    if task in ("activity_priority", "wrong_stage_rectification"):
        return len(m["other_opportunity_ids"])            # other opportunities' tasks
    if task == "named_entity_disambiguation":
        return m["n_purchase_dates"] - 1                   # purchases of other days
    if task in ("case_routing", "lead_routing"):
        return len(m["shown_user_ids"]) - len(m["candidates"])   # users of other territories
    if task == "lead_qualification":
        return len(m["articles_shown"]) - 1 + len(m["transcripts_shown"]) - len(m["transcripts"])
    if task == "policy_violation_identification":
        return len(m["articles_shown"]) - 1
    return len(m["articles_shown"]) - len(m["relevant_articles"])


def _top_tie(values: list[int]) -> bool:
    """Do the two largest values tie (so the tie-break decides)?"""
    top = sorted(values)[-2:]
    return len(top) == 2 and top[0] == top[1]


def _broken(m: dict[str, Any]) -> int:
    return len(m["broken_articles"]) if "broken_articles" in m else len(m["broken_rules"])


# One feature per task that its hard level is meant to bring: (label, share of instances with it).
FEATURES: dict[str, tuple[str, Callable[[dict[str, Any]], bool]]] = {
    "top_issue_identification": ("tie gives None", lambda m: m["none_reason"] == "tie"),
    "knowledge_qa": ("article named by Id", lambda m: m["referenced_by"] == "Id"),
    "named_entity_disambiguation": ("date as 'N days ago'", lambda m: "ago" in m["date_phrase"]),
    "quote_approval": ("2+ articles broken", lambda m: _broken(m) >= 2),
    "invalid_config": ("2+ rules broken", lambda m: _broken(m) >= 2),
    "lead_qualification": ("facts over 2 calls", lambda m: len(m["transcripts"]) >= 2),
    "policy_violation_identification": ("trap article shown",
                                        lambda m: bool(set(m["trap_articles"]) & set(m["articles_shown"]))),
    "case_routing": ("tie on closed count", lambda m: _top_tie([c["closed"] for c in m["candidates"]])),
    "wrong_stage_rectification": ("other opps' tasks", lambda m: bool(m["other_opportunity_ids"])),
    "activity_priority": ("other opps' tasks", lambda m: bool(m["other_opportunity_ids"])),
    "sales_insight_mining": ("other opps' calls", lambda m: bool(m["distractor_ids"])),
}


def feature(task: str, m: dict[str, Any]) -> tuple[str, bool] | None:
    if task in FEATURES:
        label, test = FEATURES[task]
        try:
            return label, test(m)
        except KeyError:         # a field the task's generator no longer records: no feature to show
            return None
    if "window_phrase" in m:    # ANALYTICS: how the window is stated
        return "window 'past N'", "past" in m["window_phrase"]
    return None


# ----------------------------------------------------------------------------------------------
# Generating, measuring, scoring
# ----------------------------------------------------------------------------------------------

def generate(org_file: Path, seed: int, per_level: int) -> list[Record]:
    """``per_level`` instances of every task at every level, as ``seccrm build`` writes them."""
    org = Org(open_org(org_file))
    out = []
    for task in all_tasks():
        if task not in CHOICES:          # the optional confidentiality tasks show no records to count
            continue
        for level in DIFFICULTIES:
            for index in range(per_level):
                rec = make_record(org, task, level, index, seed)
                rec["metadata"]["org_path"] = str(org_file)
                out.append(rec)
    org.conn.close()
    return out


def prompt_tokens(records: list[Record]) -> list[int]:
    """Prompt length of each record in SmolLM2 tokens, chat template and generation prompt included."""
    from seccrm.engine.models import load_tokenizer

    tok = load_tokenizer("smollm2")
    texts = [tok.apply_chat_template(r["messages"], tokenize=False, add_generation_prompt=True) for r in records]
    return [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]


CONTEXT = 8192   # SmolLM2-135M's context length (max_position_embeddings), the project's default model
SOLVERS: dict[str, Callable[[Record], str]] = {"first": first_solver, "freq": frequent_solver}


def accuracy(records: list[Record], solver: Callable[[Record], str]) -> float:
    return statistics.fmean(score(r, solver(r)) == 1.0 for r in records)


def measure(group: list[Record], tokens: list[int]) -> dict[str, Any]:
    """One row of the table: a (task, level) group of records and their prompt lengths."""
    task, metas = group[0]["task"], [r["metadata"] for r in group]
    label, count = CHOICES[task]
    feats = [f for f in (feature(task, m) for m in metas) if f is not None]
    row = {"task": task, "level": group[0]["difficulty"], "n": len(group),
           "tokens": statistics.fmean(tokens), "max_tokens": max(tokens),
           "over_context": statistics.fmean(n > CONTEXT for n in tokens),
           "rows": statistics.fmean(map(rows_shown, group)),
           "choices": statistics.fmean(count(m) for m in metas), "choices_of": label,
           "distractors": statistics.fmean(distractors(task, m) for m in metas),
           "none": statistics.fmean(r["answer"] == ["None"] for r in group),
           "distinct": len({question(r) for r in group}) / len(group),
           "feature": feats[0][0] if feats else "", "feature_share": statistics.fmean(f for _, f in feats) if feats else None}
    for name, solver in SOLVERS.items():
        row[name] = accuracy(group, solver)
    row["careless"] = accuracy(group, CARELESS[task]) if task in CARELESS else None
    return row


def run(size: str, seed: int, per_level: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
    timing: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        org_file = build_org(Path(tmp) / "org.sqlite", seed=seed, size=size)
        records = generate(org_file, seed, per_level)
        timing["generate"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        tokens = prompt_tokens(records)
        timing["tokenize"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows = [measure(records[k:k + per_level], tokens[k:k + per_level])
                for k in range(0, len(records), per_level)]
        timing["solve"] = time.perf_counter() - t0
    return rows, timing


# ----------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------

def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def table_markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| task | level | tokens (max) | rows | choices | distr. | None | distinct | first | freq | careless "
            "| feature: share |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        feat = f"{r['feature']}: {pct(r['feature_share'])}" if r["feature"] else ""
        lines.append(f"| {r['task'] if r['level'] == 'easy' else ''} | {r['level']} | {r['tokens']:,.0f} "
                     f"({r['max_tokens']:,}) | {r['rows']:.1f} | {r['choices']:.1f} {r['choices_of']} | "
                     f"{r['distractors']:.1f} | {pct(r['none'])} | {pct(r['distinct'])} | {pct(r['first'])} | "
                     f"{pct(r['freq'])} | {pct(r['careless'])} | {feat} |")
    return "\n".join(lines)


def best_baseline(r: dict[str, Any]) -> float:
    """The best prompt-only baseline on a group: first, most frequent, always None, careless."""
    return max(v for v in (r["first"], r["freq"], r["none"], r["careless"]) if v is not None)


def summary_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| level | mean tokens | mean rows | mean distractors | None | best baseline (mean over tasks) "
             "| careless (mean over tasks) | tasks where hard's best baseline <= easy's |",
             "|---|---|---|---|---|---|---|---|"]
    by_task = {(r["task"], r["level"]): r for r in rows}
    for level in DIFFICULTIES:
        rs = [r for r in rows if r["level"] == level]
        easier = sum(best_baseline(by_task[(r["task"], "hard")]) <= best_baseline(by_task[(r["task"], "easy")])
                     for r in rs)
        careless = [r["careless"] for r in rs if r["careless"] is not None]
        lines.append(f"| {level} | {statistics.fmean(r['tokens'] for r in rs):,.0f} | "
                     f"{statistics.fmean(r['rows'] for r in rs):.1f} | {statistics.fmean(r['distractors'] for r in rs):.1f} | "
                     f"{pct(statistics.fmean(r['none'] for r in rs))} | {pct(statistics.fmean(map(best_baseline, rs)))} | "
                     f"{pct(statistics.fmean(careless))} | {easier if level == 'hard' else ''}{' / ' + str(len(rs)) if level == 'hard' else ''} |")
    return "\n".join(lines)


def flags(rows: list[dict[str, Any]]) -> str:
    """What the numbers say needs a look, computed so that it always matches the table."""
    def names(test: Callable[[dict[str, Any]], bool], share: str = "") -> str:
        hits = [f"{r['task']} ({r['level']}{', ' + pct(r[share]) if share else ''})" for r in rows if test(r)]
        return ", ".join(hits) if hits else "none"
    return "\n".join([
        f"- Prompts longer than SmolLM2's {CONTEXT:,}-token context (share of the level's prompts): "
        + names(lambda r: r["over_context"] > 0, "over_context") + ".",
        "- Fewer than 80% distinct questions: " + names(lambda r: r["distinct"] < 0.8) + ".",
        "- Careless solver still right on 80% or more at hard: "
        + names(lambda r: r["level"] == "hard" and (r["careless"] or 0) >= 0.8) + ".",
        "- Best baseline higher at hard than at easy: " + names(
            lambda r: r["level"] == "hard" and best_baseline(r) > best_baseline(
                next(e for e in rows if e["task"] == r["task"] and e["level"] == "easy"))) + "."])


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        model = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                     if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"load average {os.getloadavg()[0]:.1f} at the end (a shared machine)")


def report(rows: list[dict[str, Any]], timing: dict[str, float], args: argparse.Namespace) -> str:
    cmd = "python benchmarks/bench_difficulty.py" + "".join(
        f" {a}" for a in map(shlex.quote, sys.argv[1:]))
    return "\n".join([
        f"### {dt.date.today().isoformat()}: {machine()}", "",
        f"`{cmd}`: {args.size} org (seed {args.seed}), {args.per_level} instances per task and level, "
        f"{len(rows) * args.per_level:,} in all; generation {timing['generate']:.1f} s, tokenizing "
        f"{timing['tokenize']:.1f} s, solvers and scoring {timing['solve']:.1f} s.", "",
        "Columns: mean prompt tokens (SmolLM2 tokenizer, chat template included; max in brackets), mean table "
        "rows shown, mean number of things the answer is chosen among, mean distractors (shown records or "
        "articles the gold does not depend on), share of None golds (= accuracy of always answering None), "
        "share of distinct questions, then the accuracy (reward 1.0) of three prompt-only solvers: the first "
        "well-formed candidate in the records, the most frequent one, and a careless rule-based solver (the "
        "task's rule over every row shown, ignoring the window, filters, whose record a row is, tie-breaks "
        "and precedence); last, the share of instances with the feature the task's hard level is meant to bring.",
        "", summary_markdown(rows), "", "Flags:", flags(rows), "", table_markdown(rows), ""])


def write_section(path: Path, body: str) -> None:
    """Replace the "## Difficulty (issue 2)" section of BENCHMARKS.md (or add it), leaving others as they are."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + SECTION + "\n\n" + body
    else:
        nxt = text.find("\n## ", start + len(SECTION))
        text = text[:start] + SECTION + "\n\n" + body + (text[nxt:] if nxt >= 0 else "")
    path.write_text(text)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="small", choices=("tiny", "small", "full"), help="org preset")
    ap.add_argument("--seed", type=int, default=0, help="org and suite seed")
    ap.add_argument("--per-level", type=int, default=60, help="instances per task and level")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args(argv)
    rows, timing = run(args.size, args.seed, args.per_level)
    body = report(rows, timing, args)
    print(body)
    if not args.no_write:
        write_section(Path(__file__).resolve().parent.parent / "BENCHMARKS.md", body)


if __name__ == "__main__":
    main()
