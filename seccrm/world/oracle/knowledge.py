"""Scripted analysts of the knowledge tasks (see seccrm.world.oracle).

The facts these tasks ask about live in text: FAQ articles, call transcripts, the stage policy the
question quotes. The analysts read that text and find the facts by the org's phrasing
(``seccrm.world.org.text``: an FAQ sentence per question, a customer's line per competitor or topic),
as a reader who knows how the org writes does. The levels only change which records a single-turn
prompt shows; the question-only episode is the same at every level, so the analyst's queries are too.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Generator

from seccrm.world.oracle import OracleError, Question, Script, oracle
from seccrm.world.org.text import GENERAL_FAQS, PRODUCT_FACTS
from seccrm.world.tasks.base import NONE_ANSWER

# (question template, sentence template) of every FAQ fact: the sentence states the answer ({a}).
FAQ_PHRASING: tuple[tuple[str, str], ...] = (
    *((q, s) for facts in PRODUCT_FACTS.values() for q, _, s in facts),
    *((q, s) for _, _, facts in GENERAL_FAQS for q, _, s in facts),
)

# What a customer says on a sales call when naming a competitor or raising a topic (one line each).
CALL_PHRASES = {
    "competitors": (r"To be transparent, we are also talking to (.+)\.", r"(.+) gave us a proposal last week\.",
                    r"We have used (.+) before and are comparing\."),
    "subtopics": (r"I also want to discuss (.+)\.", r"Can you tell me more about (.+)\?",
                  r"Another concern is (.+)\."),
}


def _sql(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _sentences(question: str) -> list[tuple[str, str]]:
    """The FAQ sentences that could answer ``question``, as (text before the answer, text after it)
    with the product named in the question filled in."""
    out = []
    for q_template, sentence in FAQ_PHRASING:
        pattern = re.escape(q_template).replace(re.escape("{p}"), "(?P<p>.+)")
        m = re.fullmatch(pattern, question)
        if m is not None:
            before, after = sentence.split("{a}")
            names = m.groupdict()
            out.append((before.format(**names), after.format(**names)))
    if not out:
        raise OracleError(f"no FAQ phrasing asks {question!r}")
    return out


def _fact(text: str, question: str) -> str:
    """The answer an article's text gives to ``question``: what its sentence states in the answer's
    place (sentences end with '. ' or the end of the text, so '1.5%' stays whole)."""
    found: set[str] = set()
    for before, after in _sentences(question):
        pattern = rf"(?:^|(?<=\. )){re.escape(before)}(.+?){re.escape(after)}(?= |$)"
        found.update(m.group(1) for m in re.finditer(pattern, text))
    if len(found) != 1:
        raise OracleError(f"the article answers {question!r} {len(found)} ways: {sorted(found)}")
    return found.pop()


@oracle("knowledge_qa")
def knowledge_qa(q: Question) -> Script:
    """Fact form: reads the named article (by title, or by Id when hard) and returns what its sentence
    for the question states. Article form: finds the FAQ article whose text holds the sentence that
    answers the customer's question (None when no article does)."""
    text = q.question()
    if m := re.match(r'A customer asks: "(.+?)" Which of the knowledge articles', text):
        return (yield from _answering_article(q, m.group(1)))
    m = re.match(r'According to (?:knowledge article (ka0\w{15})|the knowledge article "(.+?)"): (.+)$', text, re.S)
    if m is None:
        raise OracleError(f"cannot read the question {text!r}")
    art_id, title, question = m.groups()
    if art_id is None:
        ids = yield from q.column(f"SELECT Id FROM Knowledge__kav WHERE Title = {_sql(title)} ORDER BY Id")
        if len(ids) != 1:
            raise OracleError(f"{len(ids)} articles are titled {title!r}")
        art_id = ids[0]
    body = yield from q.read("Knowledge__kav", "FAQ_Answer__c", f"Id = '{art_id}'")
    return _fact(body, question.strip())


def _answering_article(q: Question, question: str) -> Generator[str, str, str]:
    """The FAQ article whose text states the answer to ``question``, by the sentence's fixed words."""
    likes = " OR ".join(f"FAQ_Answer__c LIKE {_sql(f'%{before}_%{after}%')}" for before, after in _sentences(question))
    ids = yield from q.column(f"SELECT Id FROM Knowledge__kav WHERE ArticleType__c = 'FAQ' AND ({likes}) ORDER BY Id")
    if len(ids) > 1:
        raise OracleError(f"several articles answer {question!r}: {ids}")
    return (ids[0] or NONE_ANSWER) if ids else NONE_ANSWER


@oracle("named_entity_disambiguation")
def named_entity_disambiguation(q: Question) -> Script:
    """Works out the purchase date (given, or today minus N days), then lists the products of the
    account's orders that day whose name is the customer's words or begins with them and a space."""
    account = q.id("001")
    m = re.search(r'I need help with the (.+?) I bought (?:on (\d{4}-\d{2}-\d{2})|(\d+) days ago)\."', q.text)
    if m is None:
        raise OracleError("the question names no product and purchase date")
    mention, date, days_ago = m.groups()
    if date is None:
        today = q.today()
        if today is None:
            raise OracleError("'N days ago' without today's date")
        date = (today - dt.timedelta(days=int(days_ago))).isoformat()
    words = _sql(mention.lower())
    ids = yield from q.column(f"""
        SELECT DISTINCT p.Id FROM "Order" o JOIN OrderItem oi ON oi.OrderId = o.Id
        JOIN Product2 p ON p.Id = oi.Product2Id
        WHERE o.AccountId = '{account}' AND substr(o.EffectiveDate, 1, 10) = '{date}'
        AND (lower(p.Name) = {words} OR substr(lower(p.Name), 1, length({words}) + 1) = {words} || ' ')
        ORDER BY p.Id""")
    if len(ids) > 1:
        raise OracleError(f"{mention!r} matches several products bought on {date}: {ids}")
    return (ids[0] or NONE_ANSWER) if ids else NONE_ANSWER


@oracle("sales_insight_mining")
def sales_insight_mining(q: Question) -> Script:
    """Reads every call transcript of the opportunity, oldest first, and collects the competitors or
    topics the customer names (one phrase per line), each once, in order of first mention."""
    opp = q.id("006")
    m = re.match(r"Which (competitors|subtopics) were raised", q.question())
    if m is None:
        raise OracleError("the question asks for neither competitors nor subtopics")
    phrases = [re.compile(p) for p in CALL_PHRASES[m.group(1)]]
    calls = yield from q.column(f"SELECT Id FROM VoiceCallTranscript__c WHERE OpportunityId__c = '{opp}' "
                                "ORDER BY CreatedDate, Id")
    found: list[str] = []
    for call in calls:
        body = yield from q.read("VoiceCallTranscript__c", "TranscriptBody__c", f"Id = '{call}'")
        # The sandbox shows line breaks as spaces: a turn runs to the next speaker's label.
        for turn in re.split(r"\s+(?=(?:Rep|Customer) \([^)]*\): )", body):
            said = re.fullmatch(r"Customer \([^)]*\): (.*)", turn)
            hit = next((h for p in phrases if said and (h := p.fullmatch(said.group(1)))), None)
            if hit is not None and hit.group(1) not in found:
                found.append(hit.group(1))
    if not found:
        raise OracleError(f"the calls of {opp} name no {m.group(1)}")
    return ", ".join(found)


@oracle("activity_priority")
def activity_priority(q: Question) -> Script:
    """Reads the stage catalogue from the quoted policy (stages in pipeline order, each with its
    activity subjects) and lists the opportunity's 'Not Started' tasks whose subject belongs neither
    to its stage (as the question states it) nor to the next one."""
    opp = q.id("006")
    m = re.search(r"do not fit its current stage \((.+?)\)", q.question())
    policy = q.paragraph("Stage activity policy").split("\n", 1)[-1]
    catalogue = re.findall(r"(?:^|(?<=\. ))([A-Z][\w ]*?): ([^:]+?)\.(?= |$)", policy)
    stages = [s for s, _ in catalogue]
    if m is None or m.group(1) not in stages:
        raise OracleError(f"the question's stage is not in the policy's catalogue {stages}")
    k = stages.index(m.group(1))
    fitting = [s.strip() for _, subjects in catalogue[k:k + 2] for s in subjects.split(",")]
    ids = yield from q.column(f"""
        SELECT Id FROM Task WHERE WhatId = '{opp}' AND Status = 'Not Started'
        AND COALESCE(Subject, '') NOT IN ({", ".join(_sql(s) for s in fitting)}) ORDER BY Id""")
    return ", ".join(i or "" for i in ids) or NONE_ANSWER
