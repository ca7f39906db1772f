"""CRUD write actions: validated, then tried on an in-memory copy of the org and rolled back.

A CRUD answer is one JSON object ``{"op": "update", "object": O, "id": I, "fields": {...}}``.
:func:`parse_action` checks it against the task's kind and the org (raising ``Unparsable`` with the
reason), :class:`ScratchOrg` applies it inside a SAVEPOINT that is always rolled back, on a copy of
the org file that :func:`scratch_org` caches per file and process, and :func:`score_action` compares
the rows the predicted and the gold action leave behind. The org file is only ever opened read-only.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seccrm.world.answers import CONTROL_CHARS, MAX_ANSWER_CHARS, InstanceError, Unparsable
from seccrm.world.org.ids import is_valid_id
from seccrm.world.org.schema import ID_PREFIXES, STAGES, TABLES, qi
from seccrm.world.tasks.base import AnswerKind

_ACTION_KEYS = frozenset({"op", "object", "id", "fields"})
MAX_FIELD_CHARS = 255
_STAGES = {s.lower(): s for s in STAGES}


class ScratchOrg:
    """An in-memory copy of an org file, for trying write actions without touching the file.

    The file is opened read-only (``mode=ro``) once, copied with the SQLite backup API, and closed.
    Every action runs inside a SAVEPOINT that is always rolled back, so the copy never drifts.
    One lock per copy: scoring from several threads is safe.
    """

    def __init__(self, path: Path):
        src = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            self.conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            src.backup(self.conn)
            present = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as e:     # truncated, not SQLite, unreadable
            raise InstanceError(f"org file {path} is broken ({e}): rebuild the suite with `seccrm build`") from e
        finally:
            src.close()
        missing = sorted(set(TABLES) - present)
        if missing:   # an empty file opens as an empty database; a dropped table scores every write 0
            raise InstanceError(f"org file {path} is broken: table(s) {', '.join(missing[:5])} missing; "
                                f"rebuild the suite with `seccrm build`")
        self.lock = threading.Lock()

    def exists(self, obj: str, record_id: str) -> bool:
        with self.lock:
            row = self.conn.execute(f"SELECT 1 FROM {qi(obj)} WHERE Id = ?", (record_id,)).fetchone()
        return row is not None

    def rows_after(self, action: dict[str, Any], ids: Sequence[str]) -> tuple[int, list[tuple[Any, ...] | None]]:
        """Apply ``action`` in a rolled-back savepoint; (rows changed, the rows ``ids`` after it).

        ``action`` must be validated: its object and field names are interpolated (quoted) into SQL,
        its values are bound as parameters.
        """
        obj, fields = action["object"], action["fields"]
        sets = ", ".join(f"{qi(f)} = ?" for f in fields)
        with self.lock:
            self.conn.execute("SAVEPOINT score_action")
            try:
                cur = self.conn.execute(f"UPDATE {qi(obj)} SET {sets} WHERE Id = ?",
                                        (*fields.values(), action["id"]))
                changed = cur.rowcount
                rows = [self.conn.execute(f"SELECT * FROM {qi(obj)} WHERE Id = ?", (i,)).fetchone()
                        for i in ids]
            finally:
                self.conn.execute("ROLLBACK TO score_action")
                self.conn.execute("RELEASE score_action")
        return changed, rows


_SCRATCH: dict[tuple[str, int, int], ScratchOrg] = {}
_SCRATCH_LOCK = threading.Lock()
_SCRATCH_MAX = 4


def scratch_org(path: str | os.PathLike[str]) -> ScratchOrg:
    """The cached in-memory copy of the org at ``path`` (rebuilt when the file changes)."""
    p = Path(path).resolve()
    try:
        st = p.stat()
    except OSError as e:
        raise InstanceError(f"org file {p} not found ({e.strerror}); build it with `seccrm build`") from e
    key = (str(p), st.st_mtime_ns, st.st_size)
    with _SCRATCH_LOCK:
        if key not in _SCRATCH:
            for old in [k for k in _SCRATCH if k[0] == key[0]] + list(_SCRATCH)[: -_SCRATCH_MAX + 1]:
                _SCRATCH.pop(old, None)
            _SCRATCH[key] = ScratchOrg(p)
        return _SCRATCH[key]


def _strip_fence(s: str) -> str:
    """Drop a surrounding Markdown code fence (```json ... ```), which models often add."""
    s = s.strip()
    if s.startswith("```") and s.endswith("```") and len(s) >= 6:
        s = s[3:-3]
        first, nl, rest = s.partition("\n")
        s = rest if nl and first.strip().isalpha() else s
    return s.strip()


def parse_action(content: str, kind: AnswerKind, org: ScratchOrg) -> dict[str, Any]:
    """Validate one JSON write action against the task's kind and the org; return it canonicalised.

    Raises ``Unparsable`` with the reason when the action is not one this task could accept.
    """
    if len(content) > MAX_ANSWER_CHARS:
        raise Unparsable(f"answer longer than {MAX_ANSWER_CHARS} characters")
    s = _strip_fence(unicodedata.normalize("NFKC", content))
    try:
        action = json.loads(s)
    except (ValueError, RecursionError) as e:
        raise Unparsable(f"not valid JSON ({str(e)[:80]})") from None
    if not isinstance(action, dict) or set(action) != _ACTION_KEYS:
        raise Unparsable('action must be a JSON object with exactly the keys "op", "object", "id", "fields"')
    if action["op"] != "update":
        raise Unparsable('"op" must be "update"')
    obj = action["object"]
    if obj != kind.action_object:
        raise Unparsable(f'"object" must be {kind.action_object!r}')
    rid, fields = action["id"], action["fields"]
    if not isinstance(rid, str) or not is_valid_id(rid, ID_PREFIXES[obj]) or not org.exists(obj, rid):
        raise Unparsable(f'"id" is not an existing {obj} id')
    if not isinstance(fields, dict) or not fields:
        raise Unparsable('"fields" must be a non-empty JSON object')
    out: dict[str, str] = {}
    for name, value in fields.items():
        out[name] = _check_field(obj, name, value, kind, org)
    return {"op": "update", "object": obj, "id": rid, "fields": out}


def _check_field(obj: str, name: Any, value: Any, kind: AnswerKind, org: ScratchOrg) -> str:
    """A writable field's canonical value; raises Unparsable for other fields or wrong values."""
    if name not in kind.action_fields or name not in dict(TABLES[obj]):
        raise Unparsable(f"field {str(name)[:40]!r} is not writable here; writable: {', '.join(kind.action_fields)}")
    if not isinstance(value, str) or len(value) > MAX_FIELD_CHARS or CONTROL_CHARS.search(value):
        raise Unparsable(f"value of {name} must be a short string")
    if name.endswith("OwnerId"):
        if not is_valid_id(value, ID_PREFIXES["User"]) or not org.exists("User", value):
            raise Unparsable(f"{name} must be an existing User id")
    elif name == "StageName":
        if value.lower() not in _STAGES:
            raise Unparsable(f"StageName must be one of {', '.join(STAGES)}")
        value = _STAGES[value.lower()]
    return str(value)


def score_action(content: str, answer: list[str], kind: AnswerKind, instance: dict[str, Any],
                 org_file: str | os.PathLike[str]) -> bool:
    """Correct when the predicted action leaves the touched rows exactly as the gold action does;
    ``org_file`` is the instance's org (``seccrm.world.rewards.org_path``)."""
    org = scratch_org(org_file)
    try:
        gold = parse_action(answer[0], kind, org)
    except Unparsable as e:
        raise InstanceError(f"instance {instance.get('id')}: gold action does not validate: {e}") from e
    pred = parse_action(content, kind, org)
    ids = list(dict.fromkeys([pred["id"], gold["id"]]))
    n_pred, rows_pred = org.rows_after(pred, ids)
    _, rows_gold = org.rows_after(gold, ids)
    return n_pred == 1 and rows_pred == rows_gold
