"""Scripted analysts: for every task, the queries a careful analyst would write to answer an agentic
episode from the question and the schema alone, through the sandbox.

They show that the episodes are solvable: an oracle reads only the question's text (the user message
of a question-only instance, never its metadata or gold) and the results of its own queries, rendered
by :class:`~seccrm.world.sandbox.Sandbox` with the same row and character caps a model gets. Long text
(articles, transcripts, emails) is read in slices, as a model would have to. Columns the sandbox hides
(the JSON rules and the fields gold answers are computed from) are out of reach for it as for a model.

An oracle is a generator: it yields SQL, receives the observation text, and returns the answer::

    @oracle("handle_time")
    def handle_time(q: Question) -> Script:
        rows = yield from q.rows("SELECT ...")
        return rows[0]["OwnerId"]

:func:`oracle_policy` turns one into an episode policy (``seccrm play --oracle`` uses it) and
:func:`play_oracle` plays an instance to the end.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from seccrm.world.episode import Episode, EpisodeSettings, Policy, run_episode
from seccrm.world.protocol import get_protocol
from seccrm.world.references import NAMED, PEOPLE_BY_NAME, POLICY_BY_POINTER, name_pattern
from seccrm.world.sandbox import SandboxLimits
from seccrm.world.tasks.base import (
    MONTHS,
    SEASONS,
    Window,
    month_window,
    past_window,
    quarter_window,
    season_window,
)

Row = dict[str, str | None]
Script = Generator[str, str, str]
"""What an oracle is: yields SQL, is sent the observation, returns the answer text."""

ORACLE_SETTINGS = EpisodeSettings(max_turns=20, max_model_tokens=10**6, max_new_tokens_per_turn=10**6,
                                  sandbox=SandboxLimits())
"""CRMArena-Pro's 20 turns, with the CPU default caps on what one result shows."""

_ORACLES: dict[str, Callable[[Question], Script]] = {}


class OracleError(RuntimeError):
    """The oracle could not go on (an error or a cut result): a bug in the oracle or the episode."""


def oracle(task: str) -> Callable[[Callable[[Question], Script]], Callable[[Question], Script]]:
    """Register the decorated generator as the oracle of ``task``."""
    def register(fn: Callable[[Question], Script]) -> Callable[[Question], Script]:
        if task in _ORACLES:
            raise ValueError(f"two oracles for {task!r}")
        _ORACLES[task] = fn
        return fn
    return register


def oracles() -> dict[str, Callable[[Question], Script]]:
    """Task name -> its oracle, for every task that has one."""
    _load()
    return dict(_ORACLES)


# ----------------------------------------------------------------------------------------------
# Reading results
# ----------------------------------------------------------------------------------------------

def parse_result(observation: str) -> list[Row]:
    """The rows of a sandbox observation (a ``<result>`` table, or a ``tool`` message's bare table) as
    dicts; ``NULL`` cells are None.

    Raises :class:`OracleError` for an error, a result cut by the row or character cap, or a cell
    cut by the cell cap: an oracle must ask for what fits.
    """
    wrapped = observation.strip()
    body = (wrapped.removeprefix("<result>").removesuffix("</result>") if wrapped.startswith("<result>")
            else observation).strip("\n")
    if body.startswith("error:"):
        raise OracleError(f"the query failed: {body}")
    lines = body.split("\n")
    if lines[-1].startswith("... ") or lines[-1].startswith("[cut at"):
        raise OracleError(f"the result was cut ({lines[-1]}); the oracle must narrow its query")
    header = lines[0].split(" | ")
    if lines[1:] == ["(0 rows)"]:
        return []
    rows = []
    for line in lines[1:]:
        cells = line.split(" | ")
        if len(cells) != len(header):
            raise OracleError(f"cannot split the row {line!r} into {header}")
        if any(c.endswith("…") for c in cells):
            raise OracleError(f"a cell was cut in {line!r}; read long text with Question.read")
        rows.append({h: (None if c == "NULL" else c) for h, c in zip(header, cells, strict=True)})
    return rows


class Question:
    """What an oracle starts from: the question text of the episode, and helpers to query."""

    def __init__(self, text: str):
        self.text = text

    # --- queries (use with ``yield from``) ------------------------------------------------------
    def rows(self, sql: str) -> Generator[str, str, list[Row]]:
        observation = yield " ".join(sql.split())
        return parse_result(observation)

    def column(self, sql: str) -> Generator[str, str, list[str | None]]:
        rows = yield from self.rows(sql)
        return [next(iter(r.values())) for r in rows]

    def value(self, sql: str) -> Generator[str, str, str | None]:
        rows = yield from self.rows(sql)
        if len(rows) != 1 or len(rows[0]) != 1:
            raise OracleError(f"expected one value, got {rows}")
        return next(iter(rows[0].values()))

    def read(self, table: str, column: str, where: str, width: int = 190,
             per_query: int = 9) -> Generator[str, str, str]:
        """One text cell of one record, read in slices of ``width`` characters (several per query)."""
        length = yield from self.value(f'SELECT length({column}) FROM "{table}" WHERE {where}')
        total = int(length or 0)
        parts: list[str] = []
        start = 1
        while start <= total:
            cols = ", ".join(f"substr({column}, {start + i * width}, {width}) AS p{i}" for i in range(per_query)
                             if start + i * width <= total)
            rows = yield from self.rows(f'SELECT {cols} FROM "{table}" WHERE {where}')
            parts.extend(v or "" for v in rows[0].values())
            start += width * per_query
        return "".join(parts)

    # --- reading the question -------------------------------------------------------------------
    def ids(self, prefix: str) -> list[str]:
        """The 18-character record ids with ``prefix`` named in the question, in order, once each."""
        found = re.findall(rf"\b{re.escape(prefix)}[A-Za-z0-9]{{15}}\b", self.text)
        return list(dict.fromkeys(found))

    def id(self, prefix: str) -> str:
        ids = self.ids(prefix)
        if not ids:
            raise OracleError(f"the question names no id with prefix {prefix}")
        return ids[0]

    def question(self) -> str:
        """The sentence block after ``Question:`` (without the answer format)."""
        m = re.search(r"Question: (.*?)(?:\n\nAnswer format:|$)", self.text, re.S)
        return m.group(1) if m else self.text

    def paragraph(self, starts_with: str) -> str:
        """The paragraph of the user message that begins with ``starts_with`` ('' when none)."""
        for p in self.text.split("\n\n"):
            if p.startswith(starts_with):
                return p
        return ""

    def today(self) -> dt.date | None:
        m = re.search(r"Today's date: (\d{4}-\d{2}-\d{2})", self.text)
        return dt.date.fromisoformat(m.group(1)) if m else None

    def window(self) -> Window:
        """The period the question names, by the definitions the prompt gives."""
        q = self.question()
        if m := re.search(r"\bin the past (\d+) (month|quarter)s?\b", q):
            today = self.today()
            if today is None:
                raise OracleError("a relative period without today's date")
            return past_window(today, m.group(2) + "s", int(m.group(1)))
        months = "|".join(MONTHS)
        if m := re.search(rf"\bfrom ({months}) (\d{{4}}) to ({months}) (\d{{4}})\b", q):
            first = month_window(int(m.group(2)), MONTHS.index(m.group(1)) + 1)
            last = month_window(int(m.group(4)), MONTHS.index(m.group(3)) + 1)
            return Window(first.start, last.end, m.group(0))
        if m := re.search(r"\bin Q([1-4]) (\d{4})\b", q):
            return quarter_window(int(m.group(2)), int(m.group(1)))
        if m := re.search(rf"\bin ({'|'.join(SEASONS)}) (\d{{4}})\b", q):
            return season_window(int(m.group(2)), m.group(1))
        if m := re.search(rf"\bin ({months}) (\d{{4}})\b", q):
            return month_window(int(m.group(2)), MONTHS.index(m.group(1)) + 1)
        raise OracleError(f"no period in {q!r}")


# ----------------------------------------------------------------------------------------------
# Playing
# ----------------------------------------------------------------------------------------------

def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def resolve_references(q: Question) -> Script:
    """Undo an agentic level's rewrites (`seccrm.world.references`) by queries, as an analyst would
    before starting: look up the records named by name (one query per kind of record), the candidates'
    User Ids (one query), and read each policy given by its article. Returns the question with the ids
    and the policy text back in place, in the forms the single-turn prompt states them."""
    text = q.text
    for named in NAMED:
        pattern = name_pattern(named)
        wanted = list(dict.fromkeys(m.groups()[1:] for m in pattern.finditer(text)))
        if not wanted:
            continue
        cols = ", ".join(f"{expr} AS n{i}" for i, expr in enumerate(named.names))
        where = " OR ".join("(" + " AND ".join(f"{expr} = {_sql_str(v)}" for expr, v in zip(named.names, values,
                                                                                           strict=True)) + ")"
                            for values in wanted)
        rows = yield from q.rows(f'SELECT Id, {cols} FROM "{named.table}" WHERE {where}')
        ids = {tuple(r[f"n{i}"] or "" for i in range(len(named.names))): r["Id"] for r in rows}
        missing = [v for v in wanted if v not in ids]
        if missing or len(rows) != len(wanted):
            raise OracleError(f"{named.table}: {len(rows)} records for the names {wanted}")

        def restore(m: re.Match[str], named: Any = named, ids: dict[tuple[str, ...], str | None] = ids) -> str:
            values = m.groups()[1:]
            label = f"{named.label} " if named.label else ""
            return f"{m.group(1)} {' from '.join(values)} ({label}{ids[values]})"
        text = pattern.sub(restore, text)
    lists = list(PEOPLE_BY_NAME.finditer(text))
    if lists:
        names = list(dict.fromkeys(n for m in lists for n in re.findall(r'"([^"\n]+)"', m.group(2))))
        rows = yield from q.rows(f'SELECT Id, Name FROM "User" WHERE Name IN ({", ".join(map(_sql_str, names))})')
        user = {r["Name"]: r["Id"] for r in rows}
        if len(rows) != len(names) or set(user) != set(names):
            raise OracleError(f"User: {len(rows)} records for the names {names}")
        text = PEOPLE_BY_NAME.sub(lambda m: m.group(1) + ", ".join(
            str(user[n]) for n in re.findall(r'"([^"\n]+)"', m.group(2))), text)
    paragraphs = text.split("\n\n")
    for i, p in enumerate(paragraphs):
        if m := POLICY_BY_POINTER.match(p):
            body = yield from q.read("Knowledge__kav", "FAQ_Answer__c", f"Id = '{m.group('id')}'")
            paragraphs[i] = f"{m.group('title')} (knowledge article {m.group('id')}):\n{body}"
    return "\n\n".join(paragraphs)


def _analyst(task: str, text: str) -> Script:
    """The task's analyst, after the question's references are resolved."""
    resolved = yield from resolve_references(Question(text))
    return (yield from _ORACLES[task](Question(resolved)))


def question_text(instance: dict[str, Any]) -> str:
    """The episode's question: its (last) user message."""
    return next(m["content"] for m in reversed(instance["messages"]) if m["role"] == "user")


def oracle_policy(instance: dict[str, Any], protocol: str = "tags") -> Policy:
    """The scripted analyst of the instance's task as an episode policy: each turn one query, written
    as the ``protocol`` asks (``<execute>`` or a ``sql`` tool call), then ``<answer>``. Raises KeyError
    for a task without an oracle."""
    _load()
    write_call = get_protocol(protocol).call
    if instance["task"] not in _ORACLES:
        raise KeyError(f"no oracle for task {instance['task']!r}; known: {', '.join(sorted(_ORACLES))}")
    script = _analyst(instance["task"], question_text(instance))
    started = False

    def policy(messages: list[dict[str, str]]) -> tuple[str, int]:
        nonlocal started
        try:
            if not started:
                started = True
                sql = next(script)
            else:
                sql = script.send(messages[-1]["content"])
        except StopIteration as stop:
            text = f"<answer>{stop.value}</answer>"
        else:
            text = write_call(sql)
        return text, 0

    return policy


def play_oracle(instance: dict[str, Any], org: str | Path,
                settings: EpisodeSettings = ORACLE_SETTINGS) -> Episode:
    """Play ``instance`` (question-only) with its task's oracle; ``.score()`` says if it was right."""
    return run_episode(oracle_policy(instance, settings.protocol), instance, org, settings)


def _load() -> None:
    from seccrm.world.oracle import analytics, confidentiality, crud, knowledge, policy  # noqa: F401


__all__ = ["ORACLE_SETTINGS", "OracleError", "Question", "Script", "oracle", "oracle_policy", "oracles",
           "parse_result", "play_oracle", "question_text", "resolve_references"]


def oracle_table(instances: list[dict[str, Any]], org: str | Path,
                 settings: EpisodeSettings = ORACLE_SETTINGS) -> list[dict[str, Any]]:
    """Play every instance with its oracle; one row per instance: task, difficulty, correct, turns,
    queries, failed queries, the characters of SQL written, why it ended, and any oracle error."""
    rows = []
    for inst in instances:
        row: dict[str, Any] = {"id": inst.get("id"), "task": inst["task"], "difficulty": inst["difficulty"]}
        try:
            ep = play_oracle(inst, org, settings)
        except OracleError as e:
            rows.append({**row, "correct": False, "turns": 0, "queries": 0, "failed_queries": 0,
                         "sql_chars": 0, "end_reason": "oracle_error", "error": str(e)})
            continue
        d = ep.score()
        queries = [t.query for t in ep.turns if t.query]
        rows.append({**row, "correct": bool(d["correct"]), "turns": d["turns"], "queries": len(queries),
                     "failed_queries": d["failed_queries"], "sql_chars": sum(len(q) for q in queries),
                     "end_reason": d["end_reason"], "answer": ep.final_text, "gold": inst["answer"],
                     "error": None if d["correct"] else d.get("error")})
    return rows
