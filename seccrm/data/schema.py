"""One schema per file kind, checked on load: a bad row is named by file, line and field, instead of
surfacing later as a TypeError or KeyError (or as a silent 0 score).

- instance rows (``train/val/test.jsonl``): ``specs/crm-tasks.md``'s record;
- completion rows (``seccrm score --completions``): ``{"id": str, "completion": str}``;
- metrics rows (``metrics.jsonl``, read by ``seccrm report``): an integer ``step``, and numbers (or
  null, which a NaN is written as) under the ``train/``, ``curriculum/``, ``time/``, ``eval/``,
  ``policy/``, ``reward/`` and ``warmup/`` names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

INSTANCE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str, "task": str, "skill": str, "difficulty": str, "arm": str, "messages": list, "answer": list,
    "metadata": dict,
}
COMPLETION_FIELDS: dict[str, type | tuple[type, ...]] = {"id": str, "completion": str}


def _type_problems(row: Any, fields: dict[str, type | tuple[type, ...]]) -> list[str]:
    if not isinstance(row, dict):
        return [f"expected a JSON object, got {type(row).__name__}"]
    out = []
    for name, kind in fields.items():
        if name not in row:
            out.append(f"field {name!r} is missing")
        elif not isinstance(row[name], kind):
            out.append(f"field {name!r} must be {_kind_name(kind)}, got {type(row[name]).__name__}")
    return out


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", list: "a list", dict: "an object", int: "an integer", float: "a number"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def instance_problems(row: Any) -> list[str]:
    """What is wrong with one instance row (empty when nothing)."""
    out = _type_problems(row, INSTANCE_FIELDS)
    if out:
        return out
    if not row["messages"] or not all(isinstance(m, dict) and isinstance(m.get("role"), str)
                                      and isinstance(m.get("content"), str) for m in row["messages"]):
        out.append("field 'messages' must be a non-empty list of {role: str, content: str}")
    if not row["answer"] or not all(isinstance(a, str) for a in row["answer"]):
        out.append("field 'answer' must be a non-empty list of strings")
    return out


def completion_problems(row: Any) -> list[str]:
    """What is wrong with one completion row (empty when nothing)."""
    return _type_problems(row, COMPLETION_FIELDS)


NUMERIC_PREFIXES = ("train/", "curriculum/", "time/", "eval/", "policy/", "reward/", "warmup/")


def metrics_problems(row: Any) -> list[str]:
    """What is wrong with one metrics row (empty when nothing)."""
    out = _type_problems(row, {"step": int})
    if out:
        return out
    for key, value in row.items():
        if key.startswith(NUMERIC_PREFIXES) and value is not None and \
                (isinstance(value, bool) or not isinstance(value, (int, float))):
            out.append(f"field {key!r} must be a number or null, got {type(value).__name__}")
    return out


def check_rows(path: str | Path, rows: list[Any], kind: str) -> None:
    """ValueError naming the file, the line (1-based, counting non-blank lines) and the field of the
    first bad rows; ``kind`` is ``"instance"``, ``"completion"`` or ``"metrics"``."""
    check = {"instance": instance_problems, "completion": completion_problems, "metrics": metrics_problems}[kind]
    bad = [(n, p) for n, row in enumerate(rows, 1) for p in check(row)]
    if bad:
        shown = "; ".join(f"line {n}: {p}" for n, p in bad[:3])
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise ValueError(f"{path}: not a valid {kind} file: {shown}{more}")
