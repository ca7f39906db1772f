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
    """The rows of a sandbox observation (``<result>`` table) as dicts; ``NULL`` cells are None.

    Raises :class:`OracleError` for an error, a result cut by the row or character cap, or a cell
    cut by the cell cap: an oracle must ask for what fits.
    """
    body = observation.strip().removeprefix("<result>").removesuffix("</result>").strip("\n")
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

def question_text(instance: dict[str, Any]) -> str:
    """The episode's question: its (last) user message."""
    return next(m["content"] for m in reversed(instance["messages"]) if m["role"] == "user")


def oracle_policy(instance: dict[str, Any]) -> Policy:
    """The scripted analyst of the instance's task as an episode policy: each turn one
    ``<execute>`` query, then ``<answer>``. Raises KeyError for a task without an oracle."""
    _load()
    if instance["task"] not in _ORACLES:
        raise KeyError(f"no oracle for task {instance['task']!r}; known: {', '.join(sorted(_ORACLES))}")
    script = _ORACLES[instance["task"]](Question(question_text(instance)))
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
            text = f"<execute>{sql}</execute>"
        return text, 0

    return policy


def play_oracle(instance: dict[str, Any], org: str | Path,
                settings: EpisodeSettings = ORACLE_SETTINGS) -> Episode:
    """Play ``instance`` (question-only) with its task's oracle; ``.score()`` says if it was right."""
    return run_episode(oracle_policy(instance), instance, org, settings)


def _load() -> None:
    from seccrm.world.oracle import analytics, confidentiality, crud, knowledge, policy  # noqa: F401


__all__ = ["ORACLE_SETTINGS", "OracleError", "Question", "Script", "oracle", "oracle_policy", "oracles",
           "parse_result", "play_oracle", "question_text"]


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
