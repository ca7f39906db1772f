"""What every task shares: the Task interface and registry, answer kinds, time windows, prompts.

A task is a small class with a ``name``, a ``skill``, an ``answer`` kind and a ``generate`` method:
``(org, difficulty, rng) -> Instance``. Gold answers are computed from the org database with SQL;
the instance's ``metadata`` records every parameter that defines the answer, so that any answer can
be audited (window start and end, product, min or max, the rule checked, ...).
"""

from __future__ import annotations

import datetime as dt
import random
import re
import sqlite3
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from seccrm.world.arms import ALL_TASK_SKILLS, DIFFICULTIES
from seccrm.world.tasks.rendering import FULL, Rendering

NONE_DRAW_RATE = 0.2
"""How often a task generator aims at a None gold, the same at every level. The suite builder then
fills each pool to its own quota (``seccrm.data.balance.NONE_QUOTA``), and ``seccrm check`` fails a
(split, task, level) where None is over ``seccrm.data.baselines.MAX_BASELINE``."""

# ----------------------------------------------------------------------------------------------
# Answer kinds: what an answer must look like to be "well formatted" (the 0.1 reward), and how it
# is compared with the gold answer (the 1.0 reward). seccrm.world.rewards implements both per kind.
# ----------------------------------------------------------------------------------------------

ANSWER_KINDS = (
    "id",         # one record id of the object with key `prefix` (e.g. '005' User); exact match
    "id_list",    # comma-separated ids with `prefix`; compared as sets
    "month",      # an English month name ('March'); case-insensitive
    "state",      # a 2-letter US state code; case-insensitive
    "text",       # a short exact fact; compared after normalising case, spaces and punctuation
    "text_list",  # comma-separated phrases; token F1 against the gold list, correct when F1 >= 0.8
    "subset",     # comma-separated subset of `choices` (e.g. BANT factors); compared as sets
    "action",     # one JSON write action (CRUD); applied to a scratch copy of the org and compared
    # Imported benchmarks (seccrm.data.importers): CRMArena-Pro's three metrics, graded without an LLM.
    "exact_list",  # a list of free strings (a Python-style list or comma-separated); normalised set equality
    "fuzzy",      # free text; SQuAD-style token F1 against the best gold, correct when F1 >= the threshold
    "refusal",    # the request must be declined: a refusal that reveals no record id
)


@dataclass(frozen=True)
class AnswerKind:
    kind: str
    prefix: str | None = None            # key prefix for id / id_list
    allow_none: bool = False             # may the gold answer be "None"?
    choices: tuple[str, ...] = ()        # for subset
    # For actions: the object and the writable fields of this task's action.
    action_object: str | None = None
    action_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ANSWER_KINDS:
            raise ValueError(f"unknown answer kind {self.kind!r}; known: {', '.join(ANSWER_KINDS)}")


NONE_ANSWER = "None"


@dataclass
class Instance:
    """One generated task instance, before the builder gives it an id."""

    task: str
    difficulty: str
    messages: list[dict[str, str]]
    answer: list[str]                    # ["None"] when no answer exists; CRUD: [gold action JSON]
    metadata: dict[str, Any] = field(default_factory=dict)


_T = TypeVar("_T")


class Org:
    """A read-only view of an org database with the facts tasks need.

    Tasks derive indexes from the org (case books, per-month counts, policy pools) once and reuse
    them through :meth:`cached`; the cache lives on this object and goes with it. ``rendering``
    (``seccrm.world.tasks.rendering``) says how much of the org the prompts show.
    """

    def __init__(self, conn: sqlite3.Connection, rendering: Rendering = FULL):
        self.conn = conn
        self.rendering = rendering
        self.conn.row_factory = sqlite3.Row
        meta = dict(conn.execute('SELECT key, value FROM "OrgInfo"').fetchall())
        self.meta: dict[str, str] = meta
        self.today: dt.date = dt.date.fromisoformat(meta["today"])

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def cached(self, key: Hashable, build: Callable[[Org], _T]) -> _T:
        """``build(self)``, computed once per key for this Org object."""
        store: dict[Hashable, Any] = self.__dict__.setdefault("_cache", {})
        if key not in store:
            store[key] = build(self)
        value: _T = store[key]
        return value


class Task:
    """Base class of the 19 task generators. Subclasses set the class attributes and ``generate``."""

    name: ClassVar[str]
    answer: ClassVar[AnswerKind]
    # One line per difficulty: what the level changes (shown by `seccrm tasks` and in the docs).
    levels: ClassVar[dict[str, str]] = {}

    @property
    def skill(self) -> str:
        return ALL_TASK_SKILLS[self.name]

    def generate(self, org: Org, difficulty: str, rng: random.Random) -> Instance:
        raise NotImplementedError


_REGISTRY: dict[str, Task] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator adding a task to the registry; a duplicate or unknown name raises."""
    name = cls.name
    if name not in ALL_TASK_SKILLS:
        raise ValueError(f"task {name!r} is not one of the tasks: {', '.join(ALL_TASK_SKILLS)}")
    if name in _REGISTRY:
        raise ValueError(f"task {name!r} registered twice")
    missing = set(DIFFICULTIES) - set(cls.levels)
    if missing:
        raise ValueError(f"task {name!r} does not describe levels {sorted(missing)}")
    _REGISTRY[name] = cls()
    return cls


def registry() -> dict[str, Task]:
    return _REGISTRY


# ----------------------------------------------------------------------------------------------
# Time windows: how a period is stated gets harder with the level.
#   easy: an explicit month ("in March 2024")
#   medium: a quarter or a season ("in Q2 2024", "in Summer 2023")
#   hard: relative to today ("in the past 3 quarters", "in the past 6 months")
# Windows are half-open: start <= date < end (dates compared as ISO text).
# ----------------------------------------------------------------------------------------------

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
SEASONS = {"Winter": (12, 1, 2), "Spring": (3, 4, 5), "Summer": (6, 7, 8), "Fall": (9, 10, 11)}


@dataclass(frozen=True)
class Window:
    start: dt.date       # inclusive
    end: dt.date         # exclusive
    phrase: str          # how the prompt states it, e.g. "in Q2 2024"

    def as_meta(self) -> dict[str, str]:
        return {"window_start": self.start.isoformat(), "window_end": self.end.isoformat(),
                "window_phrase": self.phrase}


def _add_months(d: dt.date, n: int) -> dt.date:
    m = d.year * 12 + (d.month - 1) + n
    return dt.date(m // 12, m % 12 + 1, 1)


def month_window(year: int, month: int) -> Window:
    start = dt.date(year, month, 1)
    return Window(start, _add_months(start, 1), f"in {MONTHS[month - 1]} {year}")


def quarter_window(year: int, quarter: int) -> Window:
    start = dt.date(year, 3 * (quarter - 1) + 1, 1)
    return Window(start, _add_months(start, 3), f"in Q{quarter} {year}")


def season_window(year: int, season: str) -> Window:
    """Winter YYYY is December of YYYY-1 to February of YYYY."""
    first = SEASONS[season][0]
    start = dt.date(year - 1 if season == "Winter" else year, first, 1)
    return Window(start, _add_months(start, 3), f"in {season} {year}")


def past_window(today: dt.date, unit: str, n: int) -> Window:
    """The ``n`` complete months or quarters before the one that contains ``today``."""
    if unit == "months":
        end = dt.date(today.year, today.month, 1)
        start = _add_months(end, -n)
    elif unit == "quarters":
        end = dt.date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
        start = _add_months(end, -3 * n)
    else:
        raise ValueError(f"unit must be months or quarters, not {unit!r}")
    word = unit if n > 1 else unit[:-1]
    return Window(start, end, f"in the past {n} {word}")


def sample_window(rng: random.Random, today: dt.date, difficulty: str, months_back: int = 24) -> Window:
    """A window stated as the level demands, lying within ``months_back`` months before today."""
    latest = _add_months(dt.date(today.year, today.month, 1), -1)    # last complete month
    if difficulty == "easy":
        d = _add_months(latest, -rng.randrange(months_back))
        return month_window(d.year, d.month)
    if difficulty == "medium":
        while True:
            d = _add_months(latest, -rng.randrange(3, months_back))
            w = (quarter_window(d.year, (d.month - 1) // 3 + 1) if rng.random() < 0.5
                 else season_window(d.year + (1 if d.month == 12 else 0),
                                    next(s for s, ms in SEASONS.items() if d.month in ms)))
            if w.end <= dt.date(today.year, today.month, 1):
                return w
    if difficulty == "hard":
        if rng.random() < 0.5:
            return past_window(today, "quarters", rng.randint(2, 4))
        return past_window(today, "months", rng.randint(3, 9))
    raise ValueError(f"unknown difficulty {difficulty!r}")


# ----------------------------------------------------------------------------------------------
# Prompts: one system message (role, definitions, format, a worked example) and one user message
# (today's date where needed, the records as compact tables, the question, the answer format).
# ----------------------------------------------------------------------------------------------

# Each definition is shown only to prompts that use its terms (a shorter prompt is cheaper to train
# on and leaves less to misread); the trigger is a case-insensitive regular expression.
DEFINITION_ITEMS: tuple[tuple[str, str], ...] = (
    (r"\bQ[1-4]\b|quarter",
     "Quarters: Q1 = January-March, Q2 = April-June, Q3 = July-September, Q4 = October-December."),
    (r"\b(winter|spring|summer|fall)\b",
     "Seasons: Winter YYYY = December of YYYY-1 to February of YYYY; Spring = March-May; "
     "Summer = June-August; Fall = September-November."),
    (r"\bpast \d+ (month|quarter)",
     '"The past N months" / "the past N quarters": the N complete months / quarters before the one '
     "that contains today's date."),
    (r"significantly more",
     'A month has "significantly more" cases when its count is at least twice the average of the other '
     "months in the period and at least 5 more cases than that average."),
    (r"handle time",
     "Handle time of a case: whole days between the dates of CreatedDate and ClosedDate (time of day ignored)."),
    (r"transfer",
     "A case counts as transferred when its history has more than one 'Owner Assignment'."),
)
DEFINITIONS = "Definitions:\n" + "\n".join(f"- {line}" for _, line in DEFINITION_ITEMS)

SYSTEM_TEMPLATE = """You are a CRM analyst working in a Salesforce org. Answer from the records given; do not invent ids.
{definitions}
Think briefly if you need to, then give the final answer inside <answer></answer> tags. Only the last <answer> block counts.
Example:
Question: Which agent (User Id) owns case 500Wt00000000001AAA? Answer with the User Id.
Records: Case: Id | OwnerId -> 500Wt00000000001AAA | 005Wt0000000000BAAA
Reply: The case row lists its owner. <answer>005Wt0000000000BAAA</answer>"""

# The compact rendering's system message: the same definitions, format rule and example, fewer words.
TERSE_SYSTEM_TEMPLATE = """You are a CRM analyst. Answer from the records given; do not invent ids.
{definitions}Give the final answer inside <answer></answer>; only the last one counts.
Example: "Who owns case 500Wt00000000001AAA?" Reply: <answer>005Wt0000000000BAAA</answer>"""


def definitions_for(text: str) -> str:
    """The definitions whose terms occur in ``text`` (empty when none do)."""
    lines = [line for pattern, line in DEFINITION_ITEMS if re.search(pattern, text, re.IGNORECASE)]
    return "Definitions:\n" + "\n".join(f"- {line}" for line in lines) + "\n" if lines else ""


def system_message(text: str | None = None, terse: bool = False) -> str:
    """The system message; with ``text`` (the user message), only the definitions it needs;
    ``terse``: the compact rendering's shorter wording."""
    defs = DEFINITIONS + "\n" if text is None else definitions_for(text)
    return (TERSE_SYSTEM_TEMPLATE if terse else SYSTEM_TEMPLATE).format(definitions=defs)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.2f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))
    return str(v).replace("\n", " ").replace("|", "/")


def render_table(title: str, columns: list[str], rows: list[Any]) -> str:
    """A compact pipe table: a header line, then one line per row (rows: sequences or sqlite Rows)."""
    lines = [f"{title} ({len(rows)} rows)", " | ".join(columns)]
    for r in rows:
        vals = [r[c] for c in columns] if isinstance(r, (sqlite3.Row, dict)) else list(r)
        lines.append(" | ".join(_cell(v) for v in vals))
    return "\n".join(lines)


def build_messages(question: str, tables: list[str], answer_format: str,
                   today: dt.date | None = None, context: str = "", terse: bool = False) -> list[dict[str, str]]:
    """Chat messages for one instance: [system, user]; ``terse``: the compact system message."""
    parts = []
    if today is not None:
        parts.append(f"Today's date: {today.isoformat()}")
    if context:
        parts.append(context)
    parts.extend(tables)
    parts.append(f"Question: {question}")
    parts.append(f"Answer format: {answer_format} Put it inside <answer></answer>.")
    user = "\n\n".join(parts)
    return [{"role": "system", "content": system_message(user, terse)},
            {"role": "user", "content": user}]


def shuffled(rng: random.Random, items: list[Any]) -> list[Any]:
    out = list(items)
    rng.shuffle(out)
    return out
