"""Machinery shared by the ANALYTICS generators: per-org caches, level knobs, scope picking,
ranking with ties, distractor sampling and prompt fitting.

Every ANALYTICS question is asked about a *scope* small enough to show in full: a time window, an
optional filter (one product, one issue, one lead source...) and an explicit list of candidates
(agents or states). The prompt shows every record of the scope (so the answer can be computed from
the prompt alone) plus distractors that miss the scope on exactly one count: outside the window, of
another candidate, or of another filter value. Scopes are picked from cached per-month counts so
that generation stays at a few milliseconds per instance on the full org. Gold answers are computed
with SQL over the org; the values recomputed from the records the prompt shows must agree with them
exactly, or generation stops with an error (the prompt must hold what the SQL counts).
"""

from __future__ import annotations

import bisect
import datetime as dt
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, ClassVar, NamedTuple

from seccrm.world.tasks.base import Instance, Org, Task, Window, build_messages, sample_window

# The user message of a hard prompt stays under this many characters (about 3,000 tokens).
MAX_USER_CHARS = 11_500

# The sentence every hard ranking question carries; easy and medium instances never have a tie.
TIE_RULE_ID = "If several tie, answer the one whose Id comes first in plain text (ASCII) order."


def days_between(start: str, end: str) -> int:
    """Whole days from the date ``start`` to the date ``end`` (ISO, time part ignored)."""
    return (dt.date.fromisoformat(end[:10]) - dt.date.fromisoformat(start[:10])).days


def mean_by(pairs: Iterable[tuple[str, int]]) -> dict[str, Fraction]:
    """key -> exact mean of its values."""
    sums: dict[str, list[int]] = {}
    for k, v in pairs:
        acc = sums.setdefault(k, [0, 0])
        acc[0] += v
        acc[1] += 1
    return {k: Fraction(s, n) for k, (s, n) in sums.items()}


def add_months(d: dt.date, n: int) -> dt.date:
    """The first day of the month ``n`` months after the month of ``d``."""
    m = d.year * 12 + (d.month - 1) + n
    return dt.date(m // 12, m % 12 + 1, 1)


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    """``'2024-03'`` -> (2024-03-01, 2024-04-01)."""
    start = dt.date(int(month[:4]), int(month[5:]), 1)
    return start, add_months(start, 1)


def month_keys(w: Window) -> list[str]:
    """The ``YYYY-MM`` months a window covers, in order."""
    out, y, m = [], w.start.year, w.start.month
    while (y, m) < (w.end.year, w.end.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


# ----------------------------------------------------------------------------------------------
# Level knobs
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Knobs:
    """What a difficulty level sets for a ranking task."""

    n_candidates: tuple[int, int]     # how many agents / states the question lists (inclusive range)
    scope_rows: tuple[int, int]       # how many in-scope records the prompt shows (inclusive range)
    distractor_ratio: float           # distractor records per in-scope record
    min_gap: float                    # smallest allowed gap between the best and the runner-up
    shuffle_rows: bool                # False: rows sorted by date (easier to scan)
    pad_days: int                     # date near-misses lie up to this many days outside the window


# How many candidates a ranking question lists, per level. Every level lists at least
# MIN_CANDIDATES, so that no fixed position among the candidates can be a good guess; the levels
# differ in how many records, distractors and near-ties surround them.
CANDIDATES: dict[str, tuple[int, int]] = {"easy": (5, 6), "medium": (5, 7), "hard": (6, 8)}
MIN_CANDIDATES = 5


def knobs_for(difficulty: str, gaps: tuple[float, float], rows: tuple[tuple[int, int], ...] = (
        (5, 14), (10, 30), (18, 55))) -> Knobs:
    """Default knobs; ``gaps`` = the easy and medium minimal gaps (hard accepts near-ties and ties)."""
    if difficulty == "easy":
        return Knobs(CANDIDATES["easy"], rows[0], 0.0, gaps[0], False, 0)
    if difficulty == "medium":
        return Knobs(CANDIDATES["medium"], rows[1], 0.5, gaps[1], True, 62)
    return Knobs(CANDIDATES["hard"], rows[2], 1.0, 0.0, True, 92)


def relaxed_knobs(knobs: Knobs) -> Knobs:
    """For orgs too small to fill a level (the ``tiny`` test org): fewer candidates may be listed
    (down to 2) and the in-scope records may number up to twice the level's maximum."""
    lo, hi = knobs.scope_rows
    return replace(knobs, n_candidates=(2, knobs.n_candidates[1]), scope_rows=(1, 2 * hi))


# ----------------------------------------------------------------------------------------------
# Fact index: one record family, sorted by the date its window applies to
# ----------------------------------------------------------------------------------------------

Option = tuple[str, str] | None       # (filter kind, value), or None for "no filter"


class FactIndex:
    """Records of one family sorted by date, grouped by candidate and by filter option, with
    per-month counts: month -> option -> candidate -> [records, qualifying records].

    ``keys(row)`` gives the candidates a record belongs to (an owner, a state, or every agent in a
    case's assignment chain); ``options(row)`` the (kind, value) filters it matches; ``qualifies(row)``
    whether it counts towards a candidate's value (a closed, non-transferred case...).
    """

    def __init__(self, rows: Iterable[Any], date: Callable[[Any], str],
                 keys: Callable[[Any], Sequence[str]], options: Callable[[Any], Iterable[Option]],
                 qualifies: Callable[[Any], bool]):
        self.date, self.keys, self.options, self.qualifies = date, keys, options, qualifies
        self.rows = sorted(rows, key=lambda r: (date(r), r[0]))
        self._dates = [date(r) for r in self.rows]
        # ("k", candidate) or ("o", option) -> (rows, dates), both in date order.
        self._groups: dict[tuple[str, Any], tuple[list[Any], list[str]]] = {}
        for r, d in zip(self.rows, self._dates, strict=True):
            for g in [("k", k) for k in keys(r)] + [("o", o) for o in options(r)]:
                rs, ds = self._groups.setdefault(g, ([], []))
                rs.append(r)
                ds.append(d)
        self.options_seen: list[Option] = [None] + [g[1] for g in self._groups if g[0] == "o"]
        self._months: dict[str, dict[Option, dict[str, list[int]]]] = {}

    def between(self, start: str, end: str, group: tuple[str, Any] | None = None) -> list[Any]:
        """Rows with ``start <= date < end`` (ISO text), of one candidate or option if ``group``."""
        rows, dates = (self.rows, self._dates) if group is None else self._groups.get(group, ([], []))
        return rows[bisect.bisect_left(dates, start):bisect.bisect_left(dates, end)]

    def _month(self, month: str) -> dict[Option, dict[str, list[int]]]:
        if month not in self._months:
            stats: dict[Option, dict[str, list[int]]] = {}
            for r in self.between(month, month_bounds(month)[1].isoformat()[:7]):
                q = int(self.qualifies(r))
                for opt in (None, *self.options(r)):
                    per = stats.setdefault(opt, {})
                    for k in self.keys(r):
                        c = per.setdefault(k, [0, 0])
                        c[0] += 1
                        c[1] += q
            self._months[month] = stats
        return self._months[month]

    def counts(self, w: Window, option: Option) -> dict[str, list[int]]:
        """candidate -> [records, qualifying records] in the window under the filter."""
        out: dict[str, list[int]] = {}
        for m in month_keys(w):
            for k, (n, q) in self._month(m).get(option, {}).items():
                c = out.setdefault(k, [0, 0])
                c[0] += n
                c[1] += q
        return out

    def of_candidates(self, cands: Iterable[str], start: str, end: str) -> list[Any]:
        """Rows of any of ``cands`` in [start, end), each once, in (date, Id) order."""
        seen: dict[int, Any] = {}
        for c in sorted(cands):
            for r in self.between(start, end, ("k", c)):
                seen[id(r)] = r
        return sorted(seen.values(), key=lambda r: (self.date(r), r[0]))


@dataclass
class Scope:
    window: Window
    option: Option
    candidates: list[str]
    rows: list[Any] = field(default_factory=list)        # every in-scope record


def pick_scope(rng: random.Random, index: FactIndex, w: Window, knobs: Knobs, min_qual: int = 1,
               max_options: int = 40) -> Scope | None:
    """A filter option and candidate list whose in-scope records number within ``knobs.scope_rows``.

    Candidates are drawn among those with at least ``min_qual`` qualifying records, so every listed
    candidate has a value. Returns None when no option fits (the caller draws another window).
    """
    options = index.options_seen
    lo, hi = knobs.scope_rows
    for option in rng.sample(options, min(max_options, len(options))):
        counts = index.counts(w, option)
        eligible = sorted(k for k, (_, q) in counts.items() if q >= min_qual and k is not None)
        if len(eligible) < knobs.n_candidates[0]:
            continue
        for _ in range(3):
            k = rng.randint(knobs.n_candidates[0], min(knobs.n_candidates[1], len(eligible)))
            cands = rng.sample(eligible, k)
            if lo <= sum(counts[c][0] for c in cands) <= hi:
                return Scope(w, option, cands)
    return None


def _iso(w: Window, pad_days: int = 0) -> tuple[str, str]:
    pad = dt.timedelta(days=pad_days)
    return (w.start - pad).isoformat(), (w.end + pad).isoformat()


def scope_rows(index: FactIndex, scope: Scope) -> list[Any]:
    """Every record of the scope: in the window, matching the filter, of a listed candidate."""
    start, end = _iso(scope.window)
    cands = set(scope.candidates)
    if scope.option is None:
        return index.of_candidates(cands, start, end)
    return [r for r in index.between(start, end, ("o", scope.option)) if cands.intersection(index.keys(r))]


def _liked_first(rng: random.Random, rows: list[Any], prefer: Callable[[Any], bool] | None) -> list[Any]:
    """Rows shuffled, those ``prefer`` likes first (a stable sort keeps both parts shuffled)."""
    rows = list(rows)
    rng.shuffle(rows)
    if prefer is not None:
        rows.sort(key=lambda r: not prefer(r))
    return rows


def distractors(rng: random.Random, index: FactIndex, scope: Scope, n: int, pad_days: int = 62,
                prefer_keys: Sequence[str] = (), prefer: Callable[[Any], bool] | None = None) -> list[Any]:
    """Up to ``n`` records that miss the scope on one count: just outside the window (same candidate
    and filter), or inside it but of another candidate or another filter value.

    About half are the date near-misses (up to ``pad_days`` outside) when there are enough; among
    the others, the records of ``prefer_keys`` come first (for example the cases of a product with
    a near-duplicate name). In both groups the records ``prefer`` likes come first: those that
    would change the answer if counted by mistake."""
    if n <= 0:
        return []
    (start, end), (p_start, p_end) = _iso(scope.window), _iso(scope.window, pad_days)
    cands, opt = set(scope.candidates), scope.option

    def matches(r: Any) -> bool:
        return opt is None or opt in index.options(r)

    def mine(r: Any) -> bool:
        return bool(cands.intersection(index.keys(r)))

    # Same candidate and filter, only the date puts it out of scope (read from the filter's group
    # when there is one: a product's cases are far fewer than a state's).
    if opt is None:
        outside = index.of_candidates(cands, p_start, start) + index.of_candidates(cands, end, p_end)
    else:
        outside = [r for r in index.between(p_start, start, ("o", opt)) + index.between(end, p_end, ("o", opt))
                   if mine(r)]
    picked = _liked_first(rng, outside, prefer)[:(n + 1) // 2]
    want = 3 * (n - len(picked)) + 10
    # In the window: preferred candidates, then a listed candidate with another filter value or any
    # other candidate. Those pools can hold thousands of records: sample before filtering.
    preferred = [r for r in index.of_candidates(prefer_keys, start, end) if matches(r) and not mine(r)]
    own = [] if opt is None else index.of_candidates(cands, start, end)
    window = index.between(start, end, None if opt is None else ("o", opt))
    mixed = ([r for r in rng.sample(own, min(len(own), want)) if not matches(r)]
             + [r for r in rng.sample(window, min(len(window), want)) if not mine(r)])
    seen = {id(r) for r in picked}
    for r in _liked_first(rng, preferred, None) + _liked_first(rng, mixed, prefer):
        if len(picked) >= n:
            break
        if id(r) not in seen:
            seen.add(id(r))
            picked.append(r)
    return picked


# ----------------------------------------------------------------------------------------------
# Ranking
# ----------------------------------------------------------------------------------------------

class Ranking(NamedTuple):
    winner: str
    tied: list[str]            # candidates sharing the best value (length 1 when unique)
    gap: float                 # best vs runner-up, absolute or relative to |best| (inf: one candidate)
    runner_up: str | None      # the best candidate with a worse value than the winner


def rank(values: dict[str, Fraction], mode: str, relative: bool = False) -> Ranking:
    """The best candidate for ``mode`` ('min' or 'max'); ties go to the lowest Id (ASCII order)."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be min or max, not {mode!r}")
    sign = 1 if mode == "min" else -1
    order = sorted(values, key=lambda k: (sign * values[k], k))
    best = values[order[0]]
    tied = [k for k in order if values[k] == best]
    rest = [values[k] for k in order if values[k] != best]
    if not rest:
        return Ranking(order[0], tied, float("inf"), None)
    gap = abs(rest[0] - best)
    if relative:
        gap = gap / max(abs(best), abs(rest[0]))
    runner = next(k for k in order if values[k] != best)
    return Ranking(order[0], tied, float(gap), runner)


def acceptable(r: Ranking, knobs: Knobs, rng: random.Random, near_gap: float) -> bool:
    """Easy and medium: a unique winner at least ``knobs.min_gap`` ahead. Hard: anything, but
    wins by ``near_gap`` or more (what easy demands) are kept only a third of the time, so that
    near-ties and ties are common."""
    if knobs.min_gap > 0:
        return len(r.tied) == 1 and r.gap >= knobs.min_gap
    return r.gap < near_gap or rng.random() < 0.35


class PromptTooLong(Exception):
    """The in-scope records alone do not fit the prompt budget; the generator draws another scope."""


def fit_prompt(render: Callable[[int], list[dict[str, str]]], n_extra: int,
               limit: int = MAX_USER_CHARS, trim_only: bool = False) -> tuple[list[dict[str, str]], int]:
    """Messages holding as many of the ``n_extra`` distractors as fit under ``limit`` characters
    of user message; ``render(k)`` renders the in-scope records plus the first k distractors.
    The in-scope records are never dropped: raises PromptTooLong when they alone do not fit, unless
    ``trim_only`` (then they are shown without distractors)."""
    keep = n_extra
    while True:
        msgs = render(keep)
        if len(msgs[-1]["content"]) <= limit:
            return msgs, keep
        if keep == 0:
            if trim_only:
                return msgs, 0
            raise PromptTooLong(f"{len(msgs[-1]['content'])} characters without distractors")
        keep = int(keep * 0.75)


def user_chars(org: Org, difficulty: str) -> int:
    """The user message's character limit at this level under the org's rendering."""
    return org.rendering.count("analytics.user_chars", difficulty, MAX_USER_CHARS)


def listed(org: Org, ids: Sequence[str]) -> str:
    """The candidates as a question names them: every id, or (compact rendering, where the prompt's
    first line lists them) "listed above"."""
    return "listed above" if org.rendering.terse else id_list(ids)


def frac_meta(values: dict[str, Fraction], ndigits: int = 4) -> dict[str, float]:
    """Per-candidate values for the metadata, rounded for reading (ranking used exact fractions)."""
    return {k: round(float(v), ndigits) for k, v in sorted(values.items())}


def id_list(ids: Sequence[str]) -> str:
    return ", ".join(ids)


def order_rows(rng: random.Random, rows: list[Any], date: Callable[[Any], str], shuffle: bool) -> list[Any]:
    """Rows by date (easy: a sorted listing is easier to scan) or in a random order."""
    if not shuffle:
        return sorted(rows, key=lambda r: (date(r), r[0]))
    keys = {id(r): rng.random() for r in rows}
    return sorted(rows, key=lambda r: keys[id(r)])


# ----------------------------------------------------------------------------------------------
# The ranking task: "which candidate has the min / max value in this scope?"
# ----------------------------------------------------------------------------------------------

class RankingTask(Task):
    """Shared ``generate`` of the six ranking tasks (agents or states ranked by a value).

    A subclass provides the record index (``index``), the values recomputed from the shown
    in-scope records (``from_rows``), the gold values by SQL (``gold``) and the prompt (``render``).
    This class draws the window, the scope and min/max, rejects ties and near-ties where the level
    forbids them (on ``from_rows``, which costs no query), then computes the gold by SQL once and
    refuses to go on if the two disagree: the prompt must hold exactly the records the SQL counts.
    """

    modes: ClassVar[tuple[str, ...]] = ("min", "max")
    gaps: ClassVar[tuple[float, float]] = (1.0, 0.34)        # easy, medium minimal gaps
    relative_gap: ClassVar[bool] = False
    row_ranges: ClassVar[tuple[tuple[int, int], ...]] = ((5, 14), (10, 30), (18, 55))
    candidate_noun: ClassVar[str] = "support agents"         # what the candidates are, in the prompt
    min_qual: ClassVar[int] = 1
    value_key: ClassVar[str]                                 # metadata key of per-candidate values
    tie_rule: ClassVar[str] = TIE_RULE_ID
    max_attempts: ClassVar[int] = 120

    def index(self, org: Org) -> FactIndex:
        raise NotImplementedError

    def gold(self, org: Org, scope: Scope) -> tuple[dict[str, Fraction], dict[str, Any]]:
        """Per-candidate values computed with SQL, and extra metadata (counts...)."""
        raise NotImplementedError

    def from_rows(self, scope: Scope) -> dict[str, Fraction]:
        """The same values from the in-scope records the prompt shows (candidates with none left out)."""
        raise NotImplementedError

    def render(self, org: Org, scope: Scope, mode: str, shown: list[Any],
               tie_rule: bool) -> tuple[list[str], str, str]:
        """(tables, question, answer format) for the shown records."""
        raise NotImplementedError

    def generate(self, org: Org, difficulty: str, rng: random.Random) -> Instance:
        knobs = knobs_for(difficulty, self.gaps, self.row_ranges)
        knobs = replace(knobs, scope_rows=org.rendering.scale_rows(knobs.scope_rows, difficulty,
                                                                   MIN_CANDIDATES * self.min_qual))
        index = self.index(org)
        for attempt in range(self.max_attempts):
            # After a third of the attempts, accept any gap and state the tie rule; after half,
            # list fewer candidates too (tiny orgs; the small and full orgs rarely get there).
            relaxed = attempt >= self.max_attempts // 3
            few = attempt >= self.max_attempts // 2
            w = sample_window(rng, org.today, difficulty)
            scope = pick_scope(rng, index, w, relaxed_knobs(knobs) if few else knobs, self.min_qual)
            if scope is None:
                continue
            scope.rows = scope_rows(index, scope)
            shown_values = self.from_rows(scope)
            if sorted(shown_values) != sorted(scope.candidates):
                continue                         # a listed candidate has no value
            mode = rng.choice(self.modes)
            r = rank(shown_values, mode, self.relative_gap)
            state_rule = difficulty == "hard" or relaxed
            if (len(r.tied) > 1 and not state_rule) or (
                    not relaxed and not acceptable(r, knobs, rng, self.gaps[0])):
                continue
            values, extra = self.gold(org, scope)
            if values != shown_values:
                raise RuntimeError(f"{self.name}: the SQL gold {frac_meta(values)} differs from the values "
                                   f"of the records shown {frac_meta(shown_values)} ({scope.window.phrase}, filter "
                                   f"{scope.option}, candidates {scope.candidates})")
            try:
                return self._instance(org, difficulty, rng, knobs, index, scope, mode, values, extra, r,
                                      state_rule)
            except PromptTooLong:
                continue
        raise RuntimeError(f"{self.name}: no {difficulty} instance in {self.max_attempts} attempts; "
                           "the org has too few records in its windows for this level")

    def _instance(self, org: Org, difficulty: str, rng: random.Random, knobs: Knobs, index: FactIndex,
                  scope: Scope, mode: str, values: dict[str, Fraction], extra: dict[str, Any],
                  r: Ranking, state_rule: bool) -> Instance:
        # Records of the winner and the runner-up are the ones that flip the answer when a
        # careless reader counts them: they come first among the distractors.
        top2 = {r.winner, r.runner_up} if r.runner_up else {r.winner}
        pool = distractors(rng, index, scope, round(knobs.distractor_ratio * len(scope.rows)),
                           pad_days=knobs.pad_days, prefer=lambda x: bool(top2.intersection(index.keys(x))))
        ordered = order_rows(rng, scope.rows + pool, index.date, knobs.shuffle_rows)
        in_scope = {id(x) for x in scope.rows}

        def messages(k: int) -> list[dict[str, str]]:
            keep = {id(x) for x in pool[:k]} | in_scope
            tables, question, fmt = self.render(org, scope, mode, [x for x in ordered if id(x) in keep],
                                                state_rule)
            return build_messages(question, tables, fmt, today=org.today if difficulty == "hard" else None,
                                  context=context, terse=org.rendering.terse)

        # The candidates are listed first, in the random order they were drawn in: the order in
        # which the prompt first mentions them says nothing about which one wins.
        context = f"Candidates ({self.candidate_noun}): {id_list(scope.candidates)}."
        msgs, n_shown = fit_prompt(messages, len(pool), user_chars(org, difficulty), org.rendering.trim_only)
        meta = {**scope.window.as_meta(), "min_or_max": mode, "candidates": sorted(scope.candidates),
                "filter": None if scope.option is None else {"kind": scope.option[0],
                                                            "value": scope.option[1]},
                self.value_key: frac_meta(values), **extra,
                "tie_break": self.tie_rule if state_rule else "none (unique winner required)",
                "tied": r.tied if len(r.tied) > 1 else [],
                "gap": None if r.gap == float("inf") else round(r.gap, 4),
                "n_scope_records": len(scope.rows), "n_distractors": n_shown}
        return Instance(task=self.name, difficulty=difficulty, messages=msgs, answer=[r.winner],
                        metadata=meta)
