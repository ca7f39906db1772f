"""How much of the org a prompt shows: the ``full`` rendering (the report's suite) or ``compact``.

A rendering changes only what a prompt *shows*: how many in-scope records a level asks about, how
many distractors and look-alike articles surround them, the prompt's character budget, and how
wordy the system message and the questions are. It never changes how a gold answer is computed:
every task still draws its target from the org, computes the gold with the same SQL, and the
ANALYTICS self-check (the values recomputed from the records shown equal the SQL gold) still runs.

``full`` overrides nothing: every generator then uses its own constants, so the full suite is
byte-for-byte the one built before renderings existed. ``compact`` is for small machines (a 135M
model on 2 CPU cores), where prompt length is the main cost of every training and evaluation
stage: fewer records per level and shorter texts, with the levels still ordered (easy shows the
fewest records and no distractors, hard the most, with near-misses). Record ids take most of a
prompt's tokens (SmolLM2's tokenizer spends about 14 tokens on an 18-character Salesforce id), so
compact removes repeated id lists and columns a question does not need rather than cutting texts
that hold facts a gold rests on (transcripts and articles are shown whole; fewer of them are).

The renderings are a small registry (``RENDERINGS``); an Org view carries one
(``Org(conn, rendering=COMPACT)``) and every generator reads its knobs from ``org.rendering``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from seccrm.world.arms import DIFFICULTIES

Levels = tuple[int, int, int]
"""One value per difficulty: easy, medium, hard."""


@dataclass(frozen=True, eq=False)
class Rendering:
    """What a rendering overrides; a knob it does not name keeps the generator's own value."""

    name: str
    counts: Mapping[str, Levels] = field(default_factory=dict)
    """Knob -> its value per level (record counts, distractor counts, character budgets). The knob
    names are ``<task or family>.<what>``, e.g. ``"analytics.user_chars"`` (see ``COMPACT``)."""
    row_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """ANALYTICS: factor on each level's range of in-scope records (``scale_rows``)."""
    terse: bool = False
    """A short system message and questions that state each id list once."""
    trim_only: bool = False
    """ANALYTICS: the character limit only drops distractors; in-scope records over it are shown anyway
    (the row ranges bound them). Otherwise a scope over the limit is redrawn, and with a tight limit
    the redraws end in the relaxed fallback of fewer candidates, which a positional guess games."""

    def count(self, knob: str, difficulty: str, full: int) -> int:
        """The knob's value at ``difficulty``: this rendering's, or ``full`` when it names none."""
        values = self.counts.get(knob)
        return full if values is None else values[DIFFICULTIES.index(difficulty)]

    def scale_rows(self, rows: tuple[int, int], difficulty: str, floor: int) -> tuple[int, int]:
        """A level's (min, max) in-scope records scaled by ``row_scale``; the minimum stays at least
        ``floor`` (what the level's candidates need) and the maximum at least the minimum + 2."""
        f = self.row_scale[DIFFICULTIES.index(difficulty)]
        if f == 1.0:
            return rows
        lo = max(floor, min(rows[0], math.ceil(rows[0] * f)))
        return lo, max(lo + 2, round(rows[1] * f))


FULL = Rendering("full")

COMPACT = Rendering(
    "compact",
    counts={
        # ANALYTICS: the user message's character limit (fit_prompt drops distractors beyond it).
        "analytics.user_chars": (950, 1_150, 1_450),
        # top_issue_identification / monthly_trend_analysis: in-scope cases (min and max) per level.
        "top_issue.rows_min": (3, 5, 8),
        "top_issue.rows_max": (8, 12, 20),
        "top_issue.issues": (5, 5, 6),
        "monthly_trend.rows_min": (4, 6, 8),
        "monthly_trend.rows_max": (14, 20, 28),
        # KNOWLEDGE and CRUD: the character budget distractors are added within.
        "knowledge.char_budget": (1_200, 2_200, 3_200),
        "knowledge_qa.distractors": (0, 1, 3),
        "knowledge_qa.article_others": (4, 4, 5),
        "knowledge_qa.article_similar": (0, 2, 5),
        "sales_insight.distractors": (0, 1, 2),
        "activity_priority.other_opps": (0, 1, 2),
        "named_entity.dates": (2, 3, 5),
        "named_entity.products": (5, 5, 6),
        "crud.prompt_limit": (1_800, 2_600, 3_400),
        "case_routing.other_agents": (0, 1, 2),
        "lead_routing.other_reps": (0, 1, 2),
        "wrong_stage.other_opps": (0, 1, 2),
        # POLICY: distractor articles and other leads' calls.
        "lead_qualification.other_articles": (0, 1, 2),
        "lead_qualification.other_calls": (0, 0, 1),
    },
    row_scale=(0.5, 0.4, 0.3),
    terse=True,
    trim_only=True,
)

RENDERINGS: dict[str, Rendering] = {r.name: r for r in (FULL, COMPACT)}


def get_rendering(name: str) -> Rendering:
    """The rendering called ``name``; an unknown name lists the known ones."""
    if name not in RENDERINGS:
        raise ValueError(f"unknown rendering {name!r}; known: {', '.join(RENDERINGS)}")
    return RENDERINGS[name]
