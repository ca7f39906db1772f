"""The org's activity: cases (with history, emails, chats), leads (with calls) and opportunities
(with line items, contracts, stage tasks, calls and quotes).

These sections run after the people, catalogue, accounts, orders and knowledge sections of
``seccrm.world.org.generate``, whose results they read (the attributes declared below).
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from seccrm.world.org import text as T
from seccrm.world.org.common import DATA_START, TODAY, OrgSize, Person, at, day_between, slug, ts
from seccrm.world.org.rules import Rules, draw_quote_lines
from seccrm.world.org.schema import STAGES

# Share of leads drawn as a good BANT fit (the rest pass all four factors only by chance, ~5%).
QUALIFIED_SHARE = 0.29
# Share of leads with calls whose BANT facts are split over two calls instead of one.
TWO_CALL_SHARE = 0.3


class ActivitySections:
    """Mixin of the generator: the sections that write cases, leads and opportunities."""

    # Set by the earlier sections (seccrm.world.org.generate._Generator).
    size: OrgSize
    products: list[dict[str, Any]]
    account_list: list[dict[str, Any]]
    agents: list[Person]
    terr_agents: list[list[Person]]
    state_terr: dict[str, int]
    state_factor: dict[str, float]
    states: list[str]
    issue_ids: list[str]
    allowed: list[tuple[str, ...]]
    all_solutions: list[str]
    rules: Rules
    bant: dict[str, Any]

    def rng(self, section: str) -> random.Random:
        raise NotImplementedError

    def add(self, table: str, **fields: Any) -> str:
        raise NotImplementedError

    def _pick_rep(self, rng: random.Random, state: str) -> Person:
        raise NotImplementedError

    def _purchase_before(self, rng: random.Random, product: int, when: dt.datetime) -> tuple[str, str, int]:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------
    # Cases, their history, emails and chats
    # ------------------------------------------------------------------------------------------
    def _case_times(self, rng: random.Random) -> list[tuple[dt.datetime, int, bool]]:
        """(created, product index, is in the new unassigned pool), sorted by creation time.

        Spiky products get extra cases in their spike month of every complete year-month in range,
        at least 8 and about 3x their usual monthly count, so the month stands out."""
        s, n_months = self.size, 30
        pop = [p["popularity"] for p in self.products]
        out: list[tuple[dt.datetime, int, bool]] = []
        for i, p in enumerate(self.products):
            if p["spike"] is None:
                continue
            extra = max(8, round(3 * s.cases * pop[i] / sum(pop) / n_months))
            for year in range(DATA_START.year, TODAY.year + 1):
                start = dt.date(year, p["spike"], 1)
                end = dt.date(year + start.month // 12, start.month % 12 + 1, 1)
                if start >= DATA_START and end <= TODAY:
                    out += [(at(rng, day_between(rng, start, end)), i, False) for _ in range(extra)]
        n_base = max(s.cases // 2, s.cases - len(out))
        for i in rng.choices(range(len(pop)), weights=pop, k=n_base):
            out.append((at(rng, day_between(rng, DATA_START, TODAY)), i, False))
        for i in rng.choices(range(len(pop)), weights=pop, k=s.new_cases):
            out.append((at(rng, TODAY - dt.timedelta(days=rng.randint(1, 3))), i, True))
        out.sort()
        return out

    def cases(self) -> None:
        rng = self.rng("cases")
        for created, product, new in self._case_times(rng):
            self._case(rng, created, product, new)

    def _pick_agent(self, rng: random.Random, agents: list[Person], issue: int) -> Person:
        """Agents get more cases of the issues they know (routing by expertise)."""
        return rng.choices(agents, weights=[6.0 if issue in a.traits["expertise"] else 1.0 for a in agents])[0]

    def _case(self, rng: random.Random, created: dt.datetime, pi: int, new: bool) -> None:
        p = self.products[pi]
        bought, item, a = self._purchase_before(rng, pi, created)
        acc = self.account_list[a]
        contact, cfirst, cemail = rng.choice(acc["contacts"])
        issues, weights = p["issues"]
        ii = rng.choices(issues, weights=weights)[0]
        iname, symptoms = T.ISSUES[ii][0], T.ISSUES[ii][4]
        symptom = rng.choice(symptoms)
        origin = rng.choices(("Email", "Phone", "Web", "Chat"), weights=(4, 2, 2, 2))[0]
        common = dict(AccountId=acc["id"], ContactId=contact, IssueId__c=self.issue_ids[ii], OrderItemId__c=item,
                      Priority=rng.choices(("Low", "Medium", "High"), weights=(3, 5, 2))[0], Origin=origin,
                      Subject=T.case_subject(rng, p["name"], iname),
                      Description=T.case_description(rng, p["name"], symptom, bought), CreatedDate=ts(created))
        if new:   # the routing pool: nobody owns it yet, so no assignment history
            cid = self.add("Case", OwnerId=None, Status="New", **common)
            self.add("CaseHistory__c", CaseId__c=cid, Field__c="Case Creation", NewValue__c="New",
                     CreatedDate=ts(created))
            self.add("EmailMessage", ParentId=cid, Subject=common["Subject"], FromAddress=cemail,
                     ToAddress="support@seccrm-demo.com", MessageDate=ts(created),
                     TextBody=T.customer_email(rng, cfirst, p["name"], symptom))
            return
        agents = self.terr_agents[self.state_terr[acc["state"]]]
        owners = [self._pick_agent(rng, agents, ii)]
        days = owners[0].traits["speed"] * self.state_factor[acc["state"]] * rng.lognormvariate(0, 0.45)
        while len(owners) < 3 and rng.random() < owners[-1].traits["transfer"]:
            others = [x for x in agents if x is not owners[-1]] or [x for x in self.agents if x is not owners[-1]]
            owners.append(self._pick_agent(rng, others, ii))
            days *= 1.5                                    # a hand-over costs time
        closed = (created + dt.timedelta(days=max(days, 0.1))).replace(microsecond=0)
        now = dt.datetime(TODAY.year, TODAY.month, TODAY.day)
        # A backlog: a quarter of the last 45 days' cases are still being worked on.
        stalled = (now - created).days < 45 and rng.random() < 0.25
        is_closed = closed < now and not stalled
        solution = None
        if is_closed:
            allowed = self.allowed[ii]
            breach = rng.random() < owners[-1].traits["breach"]
            solution = rng.choice([x for x in self.all_solutions if x not in allowed] if breach else allowed)
        status = "Closed" if is_closed else ("Escalated" if len(owners) > 1 or rng.random() < 0.2 else "Working")
        cid = self.add("Case", OwnerId=owners[-1].id, Status=status, ClosedDate=ts(closed) if is_closed else None,
                       OfferedSolution__c=solution, **common)
        self._case_history(rng, cid, created, min(closed, now), owners, is_closed)
        agent = owners[-1]
        if origin == "Chat":
            self.add("LiveChatTranscript", CaseId=cid, AccountId=acc["id"], ContactId=contact, OwnerId=agent.id,
                     Body=T.chat_body(rng, cfirst, agent.first, p["name"], symptom, solution),
                     EndTime=ts(created + dt.timedelta(minutes=rng.randint(8, 40))))
            return
        self.add("EmailMessage", ParentId=cid, Subject=common["Subject"], FromAddress=cemail,
                 ToAddress="support@seccrm-demo.com", MessageDate=ts(created),
                 TextBody=T.customer_email(rng, cfirst, p["name"], symptom))
        if solution is not None:
            self.add("EmailMessage", ParentId=cid, Subject="RE: " + common["Subject"], FromAddress=agent.email,
                     ToAddress=cemail, MessageDate=ts(created + (closed - created) * 0.8),
                     TextBody=T.agent_email(rng, cfirst, agent.first, iname, solution))

    def _case_history(self, rng: random.Random, cid: str, created: dt.datetime, end: dt.datetime,
                      owners: list[Person], is_closed: bool) -> None:
        """Creation, the first assignment a few minutes later, transfers spread over the case's life
        (before ``end``, never in the future), then the closing row at ClosedDate."""
        rows: list[tuple[str, str | None, str, dt.datetime]] = [
                ("Case Creation", None, "New", created),
                ("Owner Assignment", None, owners[0].id, created + dt.timedelta(seconds=rng.randint(60, 900)))]
        for k in range(1, len(owners)):
            rows.append(("Owner Assignment", owners[k - 1].id, owners[k].id,
                         (created + (end - created) * (k / len(owners))).replace(microsecond=0)))
        if is_closed:
            rows.append(("Case Closed", "Working", "Closed", end))
        for field_, old, new, when in rows:
            self.add("CaseHistory__c", CaseId__c=cid, Field__c=field_, OldValue__c=old, NewValue__c=new,
                     CreatedDate=ts(when))

    # ------------------------------------------------------------------------------------------
    # Leads and their discovery calls
    # ------------------------------------------------------------------------------------------
    def leads(self) -> None:
        rng, s = self.rng("leads"), self.size
        days = [(day_between(rng, DATA_START, TODAY), False) for _ in range(s.leads)]
        days += [(TODAY - dt.timedelta(days=rng.randint(1, 3)), True) for _ in range(s.new_leads)]
        days.sort()
        for day, new in days:
            self._lead(rng, day, new)

    def _bant_facts(self, rng: random.Random) -> tuple[str, float, int, str]:
        """(Title, Budget__c, TimelineDays__c, NeedFamily__c) of a new lead.

        A share ``QUALIFIED_SHARE`` of leads are a good fit: all four facts are drawn from the values
        the BANT article accepts. The others are drawn freely, and pass all four only by chance
        (about 5%), so that about 30% of leads qualify and a 'None' answer has many leads to come from."""
        rule = self.bant
        timelines = (30, 45, 60, 75, 90, 120, 150, 180, 270)
        if rng.random() < QUALIFIED_SHARE:
            return (rng.choice(rule["authority_titles"]),
                    float(rng.randrange(-(-rule["budget_min"] // 5000), 41) * 5000),
                    rng.choice([t for t in timelines if t <= rule["timeline_max_days"]]),
                    rng.choice(rule["need_families"]))
        title = rng.choice(T.AUTHORITY_TITLES if rng.random() < 0.55 else T.OTHER_TITLES)
        return title, float(rng.randrange(2, 41) * 5000), rng.choice(timelines), rng.choice(T.FAMILIES)

    def _lead(self, rng: random.Random, day: dt.date, new: bool) -> None:
        first, last = rng.choice(T.FIRST_NAMES), rng.choice(T.LAST_NAMES)
        company = f"{rng.choice(T.COMPANY_WORDS)} {rng.choice(T.COMPANY_SUFFIXES)}"
        title, budget, timeline, need = self._bant_facts(rng)
        state = rng.choice(self.states)
        fields = dict(FirstName=first, LastName=last, Company=company, Title=title, State=state,
                      Email=f"{first}.{last}@{slug(company)}.com".lower(), Industry=rng.choice(T.INDUSTRIES),
                      LeadSource=rng.choice(T.LEAD_SOURCES), CreatedDate=ts(at(rng, day)),
                      Budget__c=budget, TimelineDays__c=timeline, NeedFamily__c=need)
        if new:   # the routing pool
            self.add("Lead", Status="Open - Not Contacted", OwnerId=None, IsConverted=0, **fields)
            return
        rep = self._pick_rep(rng, state)
        converted_on = day + dt.timedelta(days=rng.randint(7, 60))
        age = (TODAY - day).days
        if rng.random() < rep.traits["conversion"] and converted_on < TODAY:
            status, conv = "Closed - Converted", converted_on.isoformat()
        else:
            conv = None
            status = ("Closed - Not Converted" if age > 60 and rng.random() < 0.7
                      else "Working - Contacted" if age > 7 else "Open - Not Contacted")
        lid = self.add("Lead", Status=status, OwnerId=rep.id, IsConverted=int(conv is not None),
                       ConvertedDate=conv, **fields)
        if rng.random() < 0.65:
            self._lead_calls(rng, lid, rep, first, title, company, budget, need, timeline, day)

    def _lead_calls(self, rng: random.Random, lid: str, rep: Person, first: str, title: str, company: str,
                    budget: float, need: str, timeline: int, day: dt.date) -> None:
        """One discovery call stating all four BANT facts, or (``TWO_CALL_SHARE`` of leads, when there
        is time before today) two calls that split the facts between them. Calls carry 0-3 exchanges
        of small talk, so their length varies."""
        last = TODAY - dt.timedelta(days=1)
        first_day = min(day + dt.timedelta(days=rng.randint(1, 10)), last)
        split = first_day + dt.timedelta(days=2) <= last and rng.random() < TWO_CALL_SHARE
        if split:
            order = rng.sample(T.BANT_FACTS, len(T.BANT_FACTS))
            cut = rng.randint(1, len(order) - 1)
            second_day = min(first_day + dt.timedelta(days=rng.randint(2, 14)), last)
            calls = [(first_day, tuple(order[:cut])), (second_day, tuple(order[cut:]))]
        else:
            calls = [(first_day, T.BANT_FACTS)]
        for k, (when, facts) in enumerate(calls):
            body = T.lead_call(rng, rep.first, first, title, company, budget, need, timeline, facts=facts,
                               small_talk=rng.choice((0, 0, 1, 2, 3)), follow_up=k > 0)
            self.add("VoiceCallTranscript__c", LeadId__c=lid, OwnerId__c=rep.id, CreatedDate=ts(at(rng, when)),
                     TranscriptBody__c=body)

    # ------------------------------------------------------------------------------------------
    # Opportunities: line items, contracts, stage tasks, sales calls, quotes
    # ------------------------------------------------------------------------------------------
    def opportunities(self) -> None:
        rng = self.rng("opportunities")
        quotes: list[str] = []
        # A live pipeline: 40% of opportunities were created in the last 4 months, so many are still
        # open (activity_priority and wrong_stage_rectification need open ones).
        # Beside them, `wrong_stages` recent open opportunities whose StageName is wrong: the pool of
        # wrong_stage_rectification (the ~20% of open ones that are wrong by chance are too few).
        n = self.size.opportunities
        recent = round(0.4 * n)
        window = (TODAY - dt.timedelta(days=120), TODAY)
        days = [(day_between(rng, DATA_START, TODAY), False) for _ in range(n - recent)]
        days += [(day_between(rng, *window), False) for _ in range(recent)]
        days += [(day_between(rng, *window), True) for _ in range(self.size.wrong_stages)]
        for day, force_wrong in sorted(days):
            self._opportunity(rng, day, quotes, force_wrong)
        self._quote_lines(self.rng("quote_lines"), quotes)

    def _opportunity(self, rng: random.Random, day: dt.date, quotes: list[str], force_wrong: bool) -> None:
        acc = rng.choice(self.account_list)
        rep = self._pick_rep(rng, acc["state"])
        cycle = max(7.0, rep.traits["cycle"] * rng.lognormvariate(0, 0.35))
        if force_wrong:   # kept open: its expected close lies after today
            cycle = max(cycle, (TODAY - day).days + rng.randint(7, 60))
        close_day = day + dt.timedelta(days=round(cycle))
        won = False
        if close_day < TODAY:
            stage, won = 4, rng.random() < 0.6
        else:   # still open: how far along it is follows the elapsed share of its cycle
            stage = min(3, int(4 * (TODAY - day).days / cycle))
        shown, wrong = stage, False
        if stage < 4 and (force_wrong or rng.random() < 0.2):    # wrong_stage_rectification targets
            shown, wrong = rng.choice([x for x in range(4) if x != stage]), True
        pop = [p["popularity"] for p in self.products]
        items = list(dict.fromkeys(rng.choices(range(len(self.products)), weights=pop, k=rng.randint(1, 3))))
        qty = [float(rng.choice((1, 2, 5, 10, 20, 50))) for _ in items]
        amount = round(sum(q * self.products[i]["price"] for q, i in zip(qty, items, strict=True)), 2)
        contract = None
        if won:
            contract = self.add(
                "Contract", AccountId=acc["id"], Status="Activated",
                StartDate=(close_day + dt.timedelta(days=rng.randint(1, 14))).isoformat(),
                ContractTerm=rng.choice((12, 24, 36)), CompanySignedDate=close_day.isoformat(),
                CustomerSignedDate=(close_day - dt.timedelta(days=rng.randint(0, 5))).isoformat(),
                CreatedDate=ts(at(rng, max(day, close_day - dt.timedelta(days=5)))))
        name = f"{acc['name']} - {self.products[items[0]]['name']}"
        oid = self.add("Opportunity", Name=name, AccountId=acc["id"], OwnerId=rep.id, StageName=STAGES[shown],
                       Amount=amount, Probability=(10.0, 25.0, 50.0, 75.0, 100.0 if won else 0.0)[stage],
                       CloseDate=close_day.isoformat(), ContractID__c=contract, CreatedDate=ts(at(rng, day)))
        for i, q in zip(items, qty, strict=True):
            p = self.products[i]
            self.add("OpportunityLineItem", OpportunityId=oid, Product2Id=p["id"], PricebookEntryId=p["pbe"],
                     Quantity=q, UnitPrice=p["price"], TotalPrice=round(q * p["price"], 2))
        last = min(close_day, TODAY - dt.timedelta(days=1))
        self._stage_tasks(rng, oid, rep, name, day, last, stage, wrong)
        self._sales_calls(rng, oid, rep, acc, day, last)
        if stage >= 2:
            for _ in range(2 if rng.random() < 0.15 else 1):
                qday = day_between(rng, day, last + dt.timedelta(days=1))
                quotes.append(self.add(
                    "Quote", Name=f"Q-{len(quotes) + 1:05d} {acc['name']}", OpportunityId=oid, AccountId=acc["id"],
                    Status=rng.choices(("Draft", "Needs Review", "Approved", "Rejected"), weights=(3, 3, 3, 1))[0],
                    Description=f"Quote for {name}.", CreatedDate=ts(at(rng, qday)),
                    ExpirationDate=(qday + dt.timedelta(days=30)).isoformat()))

    def _stage_tasks(self, rng: random.Random, oid: str, rep: Person, name: str, start: dt.date,
                     last: dt.date, stage: int, wrong: bool) -> None:
        """Completed tasks up to the true stage (at least one in it); open tasks that fit the stage
        (its subjects or the next stage's); for ~30% of correctly staged opportunities, 'Not Started'
        tasks that do not fit. Wrongly staged ones get no open tasks, so activity_priority stays
        unambiguous on them."""
        used: set[str] = set()

        def task(subject: str, status: str, when: dt.date) -> None:
            used.add(subject)
            self.add("Task", WhatId=oid, OwnerId=rep.id, Subject=subject, Status=status,
                     Priority=rng.choices(("Low", "Normal", "High"), weights=(2, 5, 2))[0],
                     ActivityDate=when.isoformat(), Description=f"{subject} for {name}.")

        span = max(1, (last - start).days)
        for st in range(stage + 1):
            subjects = T.STAGE_ACTIVITIES[STAGES[st]]
            for subj in rng.sample(subjects, 1 if st < stage else rng.randint(1, 2)):
                task(subj, "Completed", start + dt.timedelta(days=int(span * (st + rng.random()) / (stage + 1))))
        if wrong:
            return
        ahead = max(last, TODAY)
        fits = [s for st in (stage, stage + 1) if st < len(STAGES)
                for s in T.STAGE_ACTIVITIES[STAGES[st]] if s not in used]
        for subj in rng.sample(fits, min(len(fits), rng.randint(0, 2))):
            task(subj, rng.choice(("Not Started", "In Progress")), ahead + dt.timedelta(days=rng.randint(1, 30)))
        if rng.random() < 0.3:
            misfits = [s for st, stg in enumerate(STAGES) if st not in (stage, stage + 1)
                       for s in T.STAGE_ACTIVITIES[stg] if s not in used]
            for subj in rng.sample(misfits, rng.randint(1, 2)):
                task(subj, "Not Started", ahead + dt.timedelta(days=rng.randint(1, 30)))

    def _sales_calls(self, rng: random.Random, oid: str, rep: Person, acc: dict[str, Any], start: dt.date,
                     last: dt.date) -> None:
        n = rng.choices((0, 1, 2), weights=(45, 40, 15))[0]
        for _ in range(n):
            comps = rng.sample(T.COMPETITORS, rng.choice((1, 1, 2)))
            topics = rng.sample(T.TOPICS, rng.randint(1, 3))
            _, cfirst, _ = rng.choice(acc["contacts"])
            self.add("VoiceCallTranscript__c", OpportunityId__c=oid, OwnerId__c=rep.id,
                     CreatedDate=ts(at(rng, day_between(rng, start, last + dt.timedelta(days=1)))),
                     TranscriptBody__c=T.opportunity_call(rng, rep.first, cfirst, comps, topics),
                     Competitors__c=", ".join(comps), Topics__c=", ".join(topics))

    # ------------------------------------------------------------------------------------------
    # Quote lines: a fixed share of quotes breaks a discount tier, another a configuration rule
    # ------------------------------------------------------------------------------------------
    def _quote_lines(self, rng: random.Random, quotes: list[str]) -> None:
        n = len(quotes)
        bad_discount = set(rng.sample(range(n), round(rng.uniform(0.35, 0.45) * n)))
        bad_config = set(rng.sample(range(n), round(rng.uniform(0.35, 0.45) * n)))
        price = {p["id"]: (p["price"], p["pbe"]) for p in self.products}
        ids = [p["id"] for p in self.products]
        for k, qid in enumerate(quotes):
            for pid, q, d in draw_quote_lines(rng, self.rules, ids, k in bad_discount, k in bad_config):
                unit, pbe = price[pid]
                self.add("QuoteLineItem", QuoteId=qid, Product2Id=pid, PricebookEntryId=pbe, Quantity=q,
                         UnitPrice=unit, Discount=d, TotalPrice=round(q * unit * (1 - d / 100), 2))
