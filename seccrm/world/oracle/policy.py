"""Scripted analysts of the four POLICY tasks (see seccrm.world.oracle).

A question-only episode shows no article, so the analyst first finds the policy articles itself, by
the text they all share (a tier article says "The discount on a quote line for a <Family>
product", a configuration article names each product as "(product <Id>)", a resolution article its
issue as "(issue <Id>)", the BANT article is titled so), reads them in slices and parses the rule
they state. The facts the rule is checked against come from the records where they are visible (quote
lines, a lead's Title) and from text where they are hidden (a lead's budget, need and timeline from
its call transcripts, the offered solution from the case's chats and emails).

The gold of the quote tasks depends only on the articles about the quote's families and products,
and those are always shown in the single-turn prompt, so finding them in ``Knowledge__kav`` gives the
same answer as reading "the articles above".
"""

from __future__ import annotations

import re
from collections.abc import Generator

from seccrm.world.oracle import OracleError, Question, Script, oracle

EPS = 1e-9  # Quantity and Discount are REAL columns.
CONFIG_ORDER = ("quantity_limit", "bundle", "exclusion")  # the precedence the question states
RESULT_BUDGET = 1_900  # characters one result may take, under the sandbox's 2,000
SLICE = 190            # characters of text per cell, under the sandbox's 200


def _in(values: list[str]) -> str:
    return ", ".join(f"'{v}'" for v in sorted(values))


def _texts(q: Question, table: str, column: str, where: str) -> Generator[str, str, dict[str, str]]:
    """The ``column`` text of each record matching ``where`` by Id, read in slices, as many records
    per query as fit in one result."""
    rows = yield from q.rows(f'SELECT Id, length({column}) AS n FROM "{table}" WHERE {where} ORDER BY Id')
    lengths = {r["Id"] or "": int(r["n"] or 0) for r in rows}
    out: dict[str, str] = {}
    batch: list[str] = []
    for rid in sorted(lengths, key=lambda i: (lengths[i], i)):
        if batch and _cost(lengths, [*batch, rid]) > RESULT_BUDGET:
            out.update((yield from _read_batch(q, table, column, lengths, batch)))
            batch = []
        if _cost(lengths, [rid]) > RESULT_BUDGET:  # too long for one result: read it alone in pieces
            out[rid] = yield from q.read(table, column, f"Id = '{rid}'", width=SLICE)
        else:
            batch.append(rid)
    if batch:
        out.update((yield from _read_batch(q, table, column, lengths, batch)))
    return out


def _cost(lengths: dict[str, int], batch: list[str]) -> int:
    """Characters of the result that reads ``batch`` in ``SLICE``-character columns."""
    cols = max(1, max(-(-lengths[i] // SLICE) for i in batch))
    return (3 + 5 * cols) + sum(1 + 18 + 3 * cols + lengths[i] for i in batch)


def _read_batch(q: Question, table: str, column: str, lengths: dict[str, int],
                batch: list[str]) -> Generator[str, str, dict[str, str]]:
    cols = max(1, max(-(-lengths[i] // SLICE) for i in batch))
    parts = ", ".join(f"substr({column}, {1 + k * SLICE}, {SLICE}) AS p{k}" for k in range(cols))
    rows = yield from q.rows(f'SELECT Id, {parts} FROM "{table}" WHERE Id IN ({_in(batch)}) ORDER BY Id')
    return {r["Id"] or "": "".join(r[f"p{k}"] or "" for k in range(cols)) for r in rows}


def _one(found: list[str], what: str) -> str:
    if len(found) != 1:
        raise OracleError(f"expected one {what}, found {found}")
    return found[0]


# ----------------------------------------------------------------------------------------------
# lead_qualification
# ----------------------------------------------------------------------------------------------

@oracle("lead_qualification")
def lead_qualification(q: Question) -> Script:
    """Reads the BANT article's four criteria, the lead's Title from its record and its budget,
    needed product family and timeline from all its call transcripts (split over two calls for some
    leads), then lists the factors that fail: of the two the question names where it names two (easy)."""
    lead = q.id("00Q")
    pair = re.search(r"which of the BANT factors (\w+) and (\w+) does", q.text)
    articles = yield from _texts(q, "Knowledge__kav", "FAQ_Answer__c",
                                 "ArticleType__c = 'Policy' AND Title LIKE '%BANT%'")
    rule = articles[_one(list(articles), "BANT article")]
    budget_min = _money(_match(r"Budget: at least \$(\d[\d,]*)", rule))
    titles = _match(r"Authority: the contact's title is one of (.*?)\. Need:", rule).split(", ")
    needs = _match(r"Need: the need is for (.*?) products\.", rule).split(", ")
    max_days = int(_match(r"Timeline: the purchase happens within (\d+) days", rule))

    title = yield from q.value(f"SELECT Title FROM Lead WHERE Id = '{lead}'")
    calls = yield from _texts(q, "VoiceCallTranscript__c", "TranscriptBody__c", f"LeadId__c = '{lead}'")
    said = " ".join(calls.values())
    if not title:  # the record lacks it: the lead says it on the call
        title = _match(r"Lead \(\w+\): Sure, I am the (.*?) at ", said)
    budget = _money(_match(r"\$(\d[\d,]*)", said))
    need = _match(r"need new (\w+) products|main need is (\w+);|evaluating (\w+) vendors", said)
    days = int(_match(r"within (\d+) days", said))
    fails = {"Budget": budget < budget_min, "Authority": title not in titles, "Need": need not in needs,
             "Timeline": days > max_days}
    asked = pair.groups() if pair else tuple(fails)
    return ", ".join(f for f, failed in fails.items() if failed and f in asked) or "None"


def _match(pattern: str, text: str) -> str:
    """The first non-empty group of the first match of ``pattern`` in ``text``."""
    m = re.search(pattern, text)
    if m is None:
        raise OracleError(f"{pattern!r} not found in {text[:300]!r}")
    return next(g for g in m.groups() if g)


def _money(text: str) -> float:
    return float(text.replace(",", ""))


# ----------------------------------------------------------------------------------------------
# quote_approval
# ----------------------------------------------------------------------------------------------

@oracle("quote_approval")
def quote_approval(q: Question) -> Script:
    """Reads the quote's lines (or the one line asked about) with their products' families, then the
    discount-tier articles of those families; a line breaks its family's article when its Discount
    is above the maximum of the tier its Quantity falls in. Names the lowest broken article Id."""
    quote, line = q.id("0Q0"), q.ids("0QL")
    only = f"AND l.Id = '{line[0]}'" if line else ""
    lines = yield from q.rows(f"""
        SELECT l.Id, p.Family, l.Quantity, l.Discount FROM QuoteLineItem l
        LEFT JOIN Product2 p ON p.Id = l.Product2Id WHERE l.QuoteId = '{quote}' {only} ORDER BY l.Id""")
    families = {r["Family"] for r in lines if r["Family"]}
    if not families:
        return "None"
    mentions = " OR ".join(f"FAQ_Answer__c LIKE '%discount on a quote line for a {f} product%'"
                           for f in sorted(families))
    texts = yield from _texts(q, "Knowledge__kav", "FAQ_Answer__c", f"ArticleType__c = 'Policy' AND ({mentions})")
    tiers: dict[str, list[tuple[str, list[tuple[float, float]]]]] = {}
    for art, text in texts.items():
        family = _match(r"for a (\w+) product", text)
        steps = [(float(lo), float(pct)) for lo, pct in
                 re.findall(r"(\d+) (?:to \d+ units|units or more): at most (\d+(?:\.\d+)?)% discount", text)]
        if not steps:
            raise OracleError(f"no tiers in article {art}: {text!r}")
        tiers.setdefault(family, []).append((art, sorted(steps)))
    broken = set()
    for r in lines:
        quantity, discount = float(r["Quantity"] or 0), float(r["Discount"] or 0)
        for art, steps in tiers.get(r["Family"] or "", []):
            cap = next((pct for lo, pct in reversed(steps) if lo <= quantity + EPS), steps[0][1])
            if discount > cap + EPS:
                broken.add(art)
    return min(broken, default="None")


# ----------------------------------------------------------------------------------------------
# invalid_config
# ----------------------------------------------------------------------------------------------

@oracle("invalid_config")
def invalid_config(q: Question) -> Script:
    """Reads the quote's products (with the largest quantity of each), then every policy article that
    names one of them; parses each as a quantity limit, bundle or exclusion and checks the quote:
    quantity limits first, then bundles, then exclusions, the lowest Id within a type."""
    quote = q.id("0Q0")
    rows = yield from q.rows(f"SELECT Product2Id, MAX(Quantity) AS q FROM QuoteLineItem "
                             f"WHERE QuoteId = '{quote}' GROUP BY Product2Id")
    qty = {r["Product2Id"] or "": float(r["q"] or 0) for r in rows}
    mentions = " OR ".join(f"FAQ_Answer__c LIKE '%(product {p})%'" for p in sorted(qty))
    texts = yield from _texts(q, "Knowledge__kav", "FAQ_Answer__c", f"ArticleType__c = 'Policy' AND ({mentions})")
    broken: list[tuple[int, str]] = []
    for art, text in texts.items():
        if m := re.search(r"at most (\d+(?:\.\d+)?) units of .*?\(product (\w+)\)", text):
            if qty.get(m.group(2), 0) > float(m.group(1)) + EPS:
                broken.append((CONFIG_ORDER.index("quantity_limit"), art))
        elif m := re.search(r"\(product (\w+)\) must be quoted together with .*?\(product (\w+)\)", text):
            if m.group(1) in qty and m.group(2) not in qty:
                broken.append((CONFIG_ORDER.index("bundle"), art))
        elif m := re.search(r"\(product (\w+)\) and .*?\(product (\w+)\) cannot be sold on the same quote", text):
            if m.group(1) in qty and m.group(2) in qty:
                broken.append((CONFIG_ORDER.index("exclusion"), art))
        else:
            raise OracleError(f"article {art} states no configuration rule I know: {text!r}")
    return min(broken)[1] if broken else "None"


# ----------------------------------------------------------------------------------------------
# policy_violation_identification
# ----------------------------------------------------------------------------------------------

@oracle("policy_violation_identification")
def policy_violation_identification(q: Question) -> Script:
    """Finds the resolution article of the case's issue (the one naming "(issue <Id>)") and the
    solutions it allows, then the solution the agent offered in the case's chats or emails ("can
    offer: <solution>."); names the article when the offer is not among the allowed."""
    case = q.id("500")
    issue = q.ids("a03")
    if not issue:
        issue = [str((yield from q.value(f'SELECT IssueId__c FROM "Case" WHERE Id = \'{case}\'')))]
    articles = yield from _texts(q, "Knowledge__kav", "FAQ_Answer__c",
                                 f"ArticleType__c = 'Policy' AND FAQ_Answer__c LIKE '%(issue {issue[0]})%'")
    article = _one(list(articles), "resolution article")
    text = articles[article]
    allowed = _match(r"may offer only these solutions: (.*?)\. Offering", text).split("; ")
    offers = yield from q.column(f"""
        SELECT substr(Body, instr(Body, 'can offer: ') + 11, 80) FROM LiveChatTranscript
        WHERE CaseId = '{case}' AND instr(Body, 'can offer: ') > 0
        UNION
        SELECT substr(TextBody, instr(TextBody, 'can offer: ') + 11, 80) FROM EmailMessage
        WHERE ParentId = '{case}' AND instr(TextBody, 'can offer: ') > 0""")
    offered = {(o or "").split(".")[0] for o in offers}
    if len(offered) != 1:
        raise OracleError(f"expected one offered solution in case {case}'s messages, found {offered}")
    return "None" if offered.pop() in allowed else article
