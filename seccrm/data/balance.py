"""Answer balance and the validation split of a (task, difficulty) pool, as pure functions.

A pool's slot ``i`` wants a None gold when ``floor((i + 1) * NONE_QUOTA)`` exceeds
``floor(i * NONE_QUOTA)`` (``wants_none``: an exact 15% of the pool, spread evenly), and no answer may
take more than ``answer_cap(pool size)`` slots; ``seccrm.data.build.make_pool`` redraws the instances
that break either rule. Validation takes ``n_val`` (25%, rounded half up) of each training pool by a
seeded walk (``val_indices``) that keeps copies of a prompt together and, given the golds, keeps
every answer's share of the pool (``stratified_order``). Every seed here comes from ``stable_seed``,
so the same build seed gives the same split on every machine.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from typing import Any

from seccrm.seeding import SUITE, derive_seed
from seccrm.world.arms import DIFFICULTIES

VAL_FRACTION = 0.25
# Answer balance (``shared/specs/crm-tasks.md``): in every pool, about NONE_QUOTA of the golds are None
# (for tasks whose answer may be None) and no single answer holds more than ANSWER_CAP of the golds, so
# that no constant answer games a task; the same share at every level, so difficulty does not change
# the answer distribution.
NONE_QUOTA = 0.15
ANSWER_CAP = 0.20


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from its parts, the same on every machine and Python (unlike ``hash()``).

    >>> stable_seed(0, "handle_time", "easy", 42) == stable_seed(0, "handle_time", "easy", 42)
    True
    """
    return derive_seed(*parts, fmt=SUITE)


def per_difficulty(n: int) -> dict[str, int]:
    """An equal share of ``n`` per level; the remainder goes to the easier levels (10 -> 4, 3, 3)."""
    q, r = divmod(n, len(DIFFICULTIES))
    return {d: q + (i < r) for i, d in enumerate(DIFFICULTIES)}


def n_val(pool: int) -> int:
    """Validation share of a (task, difficulty) pool: 25%, rounded half up (250 -> 63, 2 -> 1, 1 -> 0)."""
    return int(pool * VAL_FRACTION + 0.5)



def prompt_key(messages: list[dict[str, str]]) -> str:
    """A digest of a prompt: equal for identical messages, the same in every process and run."""
    text = json.dumps(messages, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def stratified_order(seed: int, task: str, difficulty: str, answers: list[str],
                     fraction: float = VAL_FRACTION) -> list[int]:
    """Indices ``0..len(answers)-1`` whose first ``n_val`` keep every answer's share of the pool.

    Proportional allocation by largest remainder: an answer held by ``m`` of ``n`` instances gets
    ``floor(m * k / n)`` or one more of the first ``k = n_val(n)`` places (the remainders, then a
    seeded draw, decide who gets one more); its instances are taken in a seeded order. The rest
    follow in a seeded order. So validation and training each hold every answer's share of the
    pool to within one instance, and a capped answer stays within the cap in both.
    """
    rng = random.Random(stable_seed(seed, "val", task, difficulty))
    n, k = len(answers), n_val(len(answers))
    perm = rng.sample(range(n), n)
    groups: dict[str, list[int]] = defaultdict(list)
    for i in perm:
        groups[answers[i]].append(i)
    names = sorted(groups)
    quota = {a: len(groups[a]) * k // n if n else 0 for a in names}
    tiebreak = {a: rng.random() for a in names}
    extra = sorted(names, key=lambda a: (-(len(groups[a]) * k / n - quota[a]) if n else 0.0, tiebreak[a]))
    for a in extra[:k - sum(quota.values())]:
        quota[a] += 1
    first = [i for i in perm if groups[answers[i]].index(i) < quota[answers[i]]]
    chosen = set(first)
    return first + [i for i in perm if i not in chosen]


def val_indices(seed: int, task: str, difficulty: str, keys: list[str],
                assigned: dict[str, str] | None = None, answers: list[str] | None = None) -> set[int]:
    """The indices of a training pool that go to validation; ``keys[i]`` is instance i's prompt key.

    A seeded walk over the pool takes each prompt's whole group of copies while it fits in
    ``n_val(len(keys))``, so copies never straddle train and val. A prompt that ``assigned``
    (prompt key -> split, from earlier pools) already placed keeps its split. Without repeats this
    is a plain seeded 25% sample; with ``answers`` (each instance's gold, see ``answer_key``) the walk
    is stratified by gold answer (``stratified_order``).
    """
    assigned = assigned or {}
    groups: dict[str, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        groups[k].append(i)
    val = {i for k, members in groups.items() if assigned.get(k) == "val" for i in members}
    room = n_val(len(keys)) - len(val)
    order = (stratified_order(seed, task, difficulty, answers) if answers is not None
             else random.Random(stable_seed(seed, "val", task, difficulty)).sample(range(len(keys)), len(keys)))
    for i in order:
        if room <= 0:
            break
        group = groups[keys[i]]
        if keys[i] not in assigned and i not in val and len(group) <= room:
            val.update(group)
            room -= len(group)
    return val



def answer_key(record: dict[str, Any]) -> str:
    """The gold answer as one canonical string (list answers sorted), for counting answer shares."""
    answer = [str(a) for a in record["answer"]]
    return ", ".join(sorted(answer)) if len(answer) > 1 else answer[0]


def answer_cap(size: int) -> int:
    """Most instances one answer may hold in a pool of ``size``: ANSWER_CAP of it, at least 1."""
    return max(1, int(size * ANSWER_CAP))


def wants_none(index: int) -> bool:
    """Whether slot ``index`` of a pool asks for a None gold (NONE_QUOTA of the slots, evenly spread)."""
    return int((index + 1) * NONE_QUOTA) > int(index * NONE_QUOTA)
