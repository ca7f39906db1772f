"""Agentic difficulty: how an episode's question refers to the org's records.

A single-turn level is mostly how many distractor records the prompt shows; an agent that filters by
the question's ids never sees them, so question-only episodes would take the same queries at every
level. An agentic build therefore also changes, by level, what the agent must look up before it can
answer. Three kinds of reference, each costing at least one more query when rewritten:

- ``names``: a record named with its id (``product Titan Workstation (Product2Id 01t...)``,
  ``opportunity 006...``, ``lead 00Q...``, ``quote 0Q0...``) is named by its name only
  (``product "Titan Workstation"``, ``lead "Ana Ruiz" from "Acme"``): the agent resolves the id;
- ``people``: the candidate agents or reps are given by their names instead of their User Ids, while
  the answer stays a User Id;
- ``policy``: a policy given in prose (``Case routing policy (knowledge article ka0...):`` and its
  text) is given by its article only: the agent reads the article.

``easy`` keeps the question as the single-turn prompt states it; ``medium`` rewrites the first kind,
in that order, that the question has; ``hard`` rewrites every kind it has. A rewrite is made only when
it can be undone from the org (the name is unique in its table, the article's text is the prose), so
the gold is unchanged; the scripted analysts (`seccrm.world.oracle`) undo each rewrite by queries and
solve every episode. Tasks whose questions have none of the three (knowledge_qa, the CONFIDENTIALITY
tasks) keep the same question at every level.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KINDS: tuple[str, ...] = ("names", "people", "policy")
"""The kinds of reference, in the order ``medium`` picks from."""

LEVEL_KINDS = {"easy": 0, "medium": 1, "hard": len(KINDS)}
"""How many of the question's kinds each level rewrites."""

POLICY_POINTER = "its text is in the org; read the article."
"""What replaces a policy's prose."""


@dataclass(frozen=True)
class Named:
    """A kind of record a question may name: the word before it, its table and id prefix, and the SQL
    expressions that name it (one, or two for a lead: the person and the company)."""

    word: str
    table: str
    prefix: str
    names: tuple[str, ...]
    label: str = ""
    """How the id is labelled when it follows the name: ``(Product2Id <id>)``; '' for ``(<id>)``."""


NAMED: tuple[Named, ...] = (
    Named("product", "Product2", "01t", ("Name",), "Product2Id"),
    Named("issue", "Issue__c", "a03", ("Name",), "IssueId__c"),
    Named("account", "Account", "001", ("Name",)),
    Named("opportunity", "Opportunity", "006", ("Name",)),
    Named("quote", "Quote", "0Q0", ("Name",)),
    Named("lead", "Lead", "00Q", ("FirstName || ' ' || LastName", "Company")),
)
_USER = Named("user", "User", "005", ("Name",))

_ID = r"[A-Za-z0-9]{15}"
_PEOPLE_LIST = re.compile(r"((?:Candidates \((?:support agents|sales reps)\): |Consider the (?:support agents|sales reps) ))"
                          rf"((?:005{_ID}(?:, )?)+)")
PEOPLE_BY_NAME = re.compile(r"((?:Candidates \((?:support agents|sales reps)\): |Consider the (?:support agents|sales reps) ))"
                            r'((?:"[^"\n]+"(?:, )?)+)')
"""A rewritten candidate list: the lead-in, then the quoted names."""
POLICY_BY_POINTER = re.compile(rf"^(?P<title>[^\n]+) \(knowledge article (?P<id>ka0{_ID})\): {re.escape(POLICY_POINTER)}$")
"""A rewritten policy paragraph."""
_POLICY = re.compile(rf"^(?P<title>[^\n]+) \(knowledge article (?P<id>ka0{_ID})\):\n(?P<body>.+)$", re.S)


def rendered_name(named: Named, values: tuple[str, ...]) -> str:
    """``"Titan Workstation"``, or a lead's ``"Ana Ruiz" from "Acme"``."""
    return " from ".join(f'"{v}"' for v in values)


def name_pattern(named: Named) -> re.Pattern[str]:
    """A rewritten reference of this kind in a question: the word, then the quoted name(s)."""
    quoted = ' from '.join(['"([^"\n]+)"'] * len(named.names))
    return re.compile(rf"\b({named.word}) {quoted}", re.I)


class _Org:
    """The lookups a rewrite needs, over a read-only connection to the org."""

    def __init__(self, path: str | Path):
        self.conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
        self._unique: dict[tuple[str, str], dict[tuple[str, ...], int]] = {}

    def names_of(self, named: Named, record_id: str) -> tuple[str, ...] | None:
        """The record's name(s) when they name it alone in its table, else None."""
        cols = ", ".join(named.names)
        row = self.conn.execute(f'SELECT {cols} FROM "{named.table}" WHERE Id = ?', (record_id,)).fetchone()
        if row is None or any(v is None or '"' in str(v) or "\n" in str(v) for v in row):
            return None
        key = (named.table, cols)
        if key not in self._unique:
            counts: dict[tuple[str, ...], int] = {}
            for r in self.conn.execute(f'SELECT {cols} FROM "{named.table}"'):
                counts[tuple(map(str, r))] = counts.get(tuple(map(str, r)), 0) + 1
            self._unique[key] = counts
        values = tuple(map(str, row))
        return values if self._unique[key].get(values) == 1 else None

    def user_name(self, user_id: str) -> str | None:
        values = self.names_of(_USER, user_id)
        return values[0] if values else None

    def article_text(self, article_id: str) -> str | None:
        row = self.conn.execute('SELECT FAQ_Answer__c FROM "Knowledge__kav" WHERE Id = ?', (article_id,)).fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        self.conn.close()


def _rewrite_names(text: str, org: _Org) -> str:
    """Each named record's reference, in the forms the generators write, replaced literally (so that
    nothing but the reference changes): ``word Name (Label id)``, ``word id (Name)``, ``word id``."""
    for named in NAMED:
        label = f"{named.label} " if named.label else ""
        for record_id in dict.fromkeys(re.findall(rf"\b{named.prefix}{_ID}\b", text)):
            values = org.names_of(named, record_id)
            if values is None:
                continue
            for word in (named.word, named.word.capitalize()):
                new = f"{word} {rendered_name(named, values)}"
                if len(values) == 1:
                    text = text.replace(f"{word} {values[0]} ({label}{record_id})", new)
                    text = text.replace(f"{word} {record_id} ({values[0]})", new)
                text = re.sub(rf"\b{word} {record_id}\b", new.replace("\\", r"\\"), text)
    return text


def _rewrite_people(text: str, org: _Org) -> str:
    def sub(m: re.Match[str]) -> str:
        ids = m.group(2).split(", ")
        names = [org.user_name(i) for i in ids]
        if any(n is None for n in names):
            return m.group(0)
        return m.group(1) + ", ".join(f'"{n}"' for n in names)
    return _PEOPLE_LIST.sub(sub, text)


def _rewrite_policy(text: str, org: _Org) -> str:
    paragraphs = text.split("\n\n")
    for i, p in enumerate(paragraphs):
        m = _POLICY.match(p)
        if m and org.article_text(m.group("id")) == m.group("body"):
            paragraphs[i] = f"{m.group('title')} (knowledge article {m.group('id')}): {POLICY_POINTER}"
    return "\n\n".join(paragraphs)


_REWRITES = {"names": _rewrite_names, "people": _rewrite_people, "policy": _rewrite_policy}


def rewrite_question(text: str, difficulty: str, org: _Org) -> tuple[str, list[str]]:
    """``text`` as the episode of that level states it, and the kinds rewritten."""
    if difficulty not in LEVEL_KINDS:
        raise ValueError(f"unknown difficulty {difficulty!r}; known: {', '.join(LEVEL_KINDS)}")
    done: list[str] = []
    for kind in KINDS:
        if len(done) >= LEVEL_KINDS[difficulty]:
            break
        rewritten = _REWRITES[kind](text, org)
        if rewritten != text:
            text = rewritten
            done.append(kind)
    return text, done


def rewrite_levels(instances: list[dict[str, Any]], org_path: str | Path) -> list[dict[str, Any]]:
    """Question-only ``instances`` with their user message rewritten for their level; each records the
    kinds rewritten in ``metadata["references"]``. Golds are unchanged."""
    org = _Org(org_path)
    try:
        out = []
        for inst in instances:
            messages = [dict(m) for m in inst["messages"]]
            user = next(i for i in range(len(messages) - 1, -1, -1) if messages[i]["role"] == "user")
            messages[user]["content"], kinds = rewrite_question(messages[user]["content"], inst["difficulty"], org)
            out.append({**inst, "messages": messages,
                        "metadata": {**inst.get("metadata", {}), "references": kinds}})
        return out
    finally:
        org.close()
