"""The two POLICY tasks whose facts are only in transcripts: ``lead_qualification`` (the BANT
factors a lead fails, from its call transcripts) and ``policy_violation_identification`` (the
allowed-solutions article a case breaks, from its chats and emails).

The fields the gold is computed from (``Lead.Budget__c``, ``Case.OfferedSolution__c``, ...) are
never shown: those facts reach the model through the transcripts, and the rule through the
article's text (``LEAD_RULES`` states how the BANT article applies).
"""

from __future__ import annotations

import random

from seccrm.world.org.schema import qi
from seccrm.world.tasks._policy_data import (
    MIN_ARTICLES,
    CaseRec,
    articles_table,
    id_messages,
    make_instance,
    org_data,
    sample_ids,
)
from seccrm.world.tasks._policy_rules import BANT_FACTORS
from seccrm.world.tasks.base import (
    NONE_ANSWER,
    NONE_DRAW_RATE,
    AnswerKind,
    Instance,
    Org,
    Task,
    build_messages,
    register,
    render_table,
    shuffled,
)

LEAD_RULES = """How the BANT article applies to a lead: Budget fails when the lead's budget is below the minimum; Authority fails when the lead's title is not one of the listed decision-maker titles; Need fails when the product family the lead needs is not one of the listed families; Timeline fails when the lead's purchase timeline is longer than the maximum number of days."""


@register
class LeadQualification(Task):
    name = "lead_qualification"
    answer = AnswerKind("subset", choices=BANT_FACTORS, allow_none=True)
    levels = {
        "easy": "One short call transcript, two of the four factors asked about, the BANT article alone, the "
                "lead's Title in its record.",
        "medium": "All the lead's calls, the BANT article among distractor policy articles.",
        "hard": "Values near the thresholds and several failing factors, Title only in the transcript, other "
                "leads' calls in the same table, more distractor articles.",
    }

    def generate(self, org: Org, difficulty: str, rng: random.Random) -> Instance:
        data = org_data(org)
        if data.bant is None:
            raise ValueError("lead_qualification: the org has no BANT article")
        want_none = rng.random() < NONE_DRAW_RATE
        filters = {"easy": [lambda r: len(r.transcripts) == 1], "medium": [],
                   "hard": [lambda r: len(r.fails) != 1]}[difficulty]
        hardness = None if difficulty == "easy" else (lambda r: (r.hardness, r.text_len))
        leads = data.lead_pairs() if difficulty == "easy" else data.leads()
        lead = data.draw(rng, self.name, difficulty, want_none, leads, lambda r: not r.fails, filters, hardness)
        others = [a.id for a in data.articles if a.type != "bant"]
        n_articles = org.rendering.count("lead_qualification.other_articles", difficulty,
                                         {"easy": 0, "medium": 1, "hard": 3}[difficulty])
        shown = [data.bant.id] + sample_ids(rng, others, n_articles)
        calls = list(lead.transcripts)
        if difficulty == "hard":  # other leads' first calls: the model must keep to this lead's
            pool = data.leads()
            n_calls = org.rendering.count("lead_qualification.other_calls", difficulty, 2)
            calls = sorted({*calls, *(pool[rng.randrange(len(pool))].transcripts[0] for _ in range(n_calls))})
        cols = ["Id", "FirstName", "LastName", "Company", *(["Title"] if difficulty != "hard" else []),
                "Industry", "State", "LeadSource", "Status"]
        if org.rendering.terse:     # compact: only what identifies the lead and what a factor reads
            cols = ["Id", "Company", *(["Title"] if difficulty != "hard" else [])]
        row = org.query(f"SELECT {', '.join(cols)} FROM Lead WHERE Id = ?", (lead.id,))
        bodies = org.query("SELECT Id, LeadId__c, CreatedDate, TranscriptBody__c FROM VoiceCallTranscript__c "
                           f"WHERE Id IN ({','.join('?' * len(calls))}) ORDER BY CreatedDate, Id", tuple(calls))
        tables = [articles_table(data, shuffled(rng, shown)), render_table("Lead", cols, row),
                  render_table("VoiceCallTranscript__c", ["Id", "LeadId__c", "CreatedDate", "TranscriptBody__c"],
                               bodies)]
        which = "BANT factors" if len(lead.asked) == 4 else f"of the BANT factors {' and '.join(lead.asked)}"
        question = (f"Using the BANT qualification article and lead {lead.id}'s call transcripts, which {which} "
                    "does the lead fail?")
        fmt = (f"the failing factors as a comma-separated list drawn from {', '.join(lead.asked)}, or None if the "
               f"lead meets {'all four' if len(lead.asked) == 4 else 'both'}.")
        messages = build_messages(question, tables, fmt, context=LEAD_RULES, terse=org.rendering.terse)
        lead_row = org.query("SELECT Title, Budget__c, TimelineDays__c, NeedFamily__c FROM Lead WHERE Id = ?",
                             (lead.id,))[0]
        meta = {"lead_id": lead.id, "rule_checked": "bant", "bant_article": data.bant.id, "bant_rule": data.bant.rule,
                "lead_facts": dict(lead_row), **({"factors_asked": list(lead.asked)} if len(lead.asked) < 4 else {}),
                "failed_factors": list(lead.fails), "transcripts": list(lead.transcripts), "transcripts_shown": calls,
                "articles_shown": sorted(shown), "hardness": lead.hardness, "wanted_none": want_none}
        return make_instance(self.name, difficulty, messages, list(lead.fails) or [NONE_ANSWER], meta)


@register
class PolicyViolationIdentification(Task):
    name = "policy_violation_identification"
    answer = AnswerKind("id", prefix="ka0", allow_none=True)
    levels = {
        "easy": "One short chat transcript, the case's issue named, its allowed-solutions article among 4 other "
                "issues' articles (none of which allows the offered solution).",
        "medium": "Chat or email thread, its issue's article among 5 other issues' articles (those that allow the "
                  "offered solution first).",
        "hard": "The issue given only by its Id (no subject, no issue names), 7-9 other issues' articles, those "
                "that allow the offered solution first.",
    }

    def generate(self, org: Org, difficulty: str, rng: random.Random) -> Instance:
        data = org_data(org)
        want_none = rng.random() < NONE_DRAW_RATE
        filters = [lambda c: len(c.chats) + len(c.emails) == 1] if difficulty == "easy" else []
        hardness = {"easy": lambda c: (c.text_len, len(c.traps))}.get(
            difficulty, lambda c: (len(c.traps) > 0, c.text_len))
        case = data.draw(rng, self.name, difficulty, want_none, data.cases(), lambda c: not c.violating,
                         filters, hardness)
        k = {"easy": MIN_ARTICLES - 1, "medium": MIN_ARTICLES, "hard": rng.randint(7, 9)}[difficulty]
        all_ids = [a.id for a in data.solutions_of.values()]
        # Easy distractors are other issues' articles that do not allow the offered solution (where
        # the org has enough); from medium on those that allow it come first.
        shown = [case.article] + ([] if difficulty == "easy" else sample_ids(rng, case.traps, k))
        shown += sample_ids(rng, all_ids, k - len(shown) + 1,
                            exclude=shown + (list(case.traps) if difficulty == "easy" else []))
        shown += sample_ids(rng, all_ids, k - len(shown) + 1, exclude=shown)
        issues = sorted({data.by_id[a].rule["issue_id"] for a in shown})
        issue_rows = org.query(f"SELECT Id, Name FROM Issue__c WHERE Id IN ({','.join('?' * len(issues))}) "
                               "ORDER BY Id", tuple(issues))
        # Hard gives the issue only as IssueId__c: the model must find the article naming that Id.
        cols = ["Id", "Status", "Priority", "Origin", "CreatedDate", "ClosedDate", "IssueId__c"]
        if difficulty != "hard":
            cols.insert(1, "Subject")
        tables = [articles_table(data, shuffled(rng, shown)),
                  render_table("Case", cols, org.query(f"SELECT {', '.join(map(qi, cols))} FROM \"Case\" "
                                                       "WHERE Id = ?", (case.id,)))]
        if difficulty != "hard":
            tables.append(render_table("Issue__c", ["Id", "Name"], issue_rows))
        tables += _case_messages(org, case)
        issue_name = next(r["Name"] for r in issue_rows if r["Id"] == case.issue)
        about = f"about issue {case.issue} ({issue_name})" if difficulty == "easy" else f"about issue {case.issue}"
        question = (f"Case {case.id} {about} is closed. Did the agent offer the customer a solution that the "
                    "allowed-solutions article of the case's issue does not allow? If so, which article does "
                    "the case break?")
        messages = id_messages(question, tables, "", "the offered solution is allowed", terse=org.rendering.terse)
        meta = {"case_id": case.id, "issue_id": case.issue, "rule_checked": "allowed_solutions",
                "issue_article": case.article, "offered_solution": case.offered,
                "allowed_solutions": data.by_id[case.article].rule["solutions"], "violating": case.violating,
                "trap_articles": list(case.traps), "articles_shown": sorted(shown),
                "chats": list(case.chats), "emails": list(case.emails), "wanted_none": want_none}
        return make_instance(self.name, difficulty, messages, [case.article if case.violating else NONE_ANSWER], meta)


def _case_messages(org: Org, case: CaseRec) -> list[str]:
    """The case's chat transcripts and emails, the only place the offered solution is stated."""
    out = []
    if case.chats:
        rows = org.query(f"SELECT Id, EndTime, Body FROM LiveChatTranscript WHERE Id IN "
                         f"({','.join('?' * len(case.chats))}) ORDER BY EndTime, Id", case.chats)
        out.append(render_table("LiveChatTranscript", ["Id", "EndTime", "Body"], rows))
    if case.emails:
        rows = org.query(f"SELECT Id, MessageDate, FromAddress, Subject, TextBody FROM EmailMessage WHERE Id IN "
                         f"({','.join('?' * len(case.emails))}) ORDER BY MessageDate, Id", case.emails)
        out.append(render_table("EmailMessage", ["Id", "MessageDate", "FromAddress", "Subject", "TextBody"], rows))
    return out
