"""Trivial baselines: what a model scores without reading the question.

A score means little until it sits beside what a constant or a positional guess scores on the same
instances. Three baselines, each a completion per instance, scored by the real verifiers:

- ``always_none``: ``<answer>None</answer>`` everywhere (tasks whose answers may be None).
- ``best_constant``: per task, the single answer that is most often the gold on the *training*
  split (ties broken by the answer's text), answered everywhere.
- ``position``: per task, the candidate at one fixed position among those the prompt shows (the
  first, second, ..., or last id of the asked object, month or state mentioned in the user message),
  the position chosen per task on the training split. A suite whose gold answers sit at a favoured
  position would let this win.

Caps: the builder holds None and any single answer to at most 20% of each (task, split, level), so
the first two baselines are capped exactly; the position baseline fails the check when it is
significantly above 20% (:func:`over_cap`). ``baseline_table`` scores all three on a set of instances, overall and per task, skill and
difficulty; ``seccrm check`` uses :func:`suite_baselines` to refuse a suite where one beats
``MAX_BASELINE`` on some (task, split, difficulty), and every report prints them beside the models.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seccrm.data.load import load_split
from seccrm.files import write_json_atomic
from seccrm.world.answer_parsers import US_STATES
from seccrm.world.rewards import instance_answer_kind, score

NONE = "None"
BASELINES: tuple[str, ...] = ("always_none", "best_constant", "position")
BASELINE_TITLES: dict[str, str] = {"always_none": "always None", "best_constant": "best constant",
                                   "position": "best position", "always_refuse": "always refuse"}


def baseline_title(name: str, split: str) -> str:
    """How a baseline is named for ``split``: constants and positions are chosen on the training split,
    except for the held-out test tasks, which have no training instances: theirs are chosen on the
    scored test instances themselves (an upper bound, not a fair guess)."""
    base = BASELINE_TITLES.get(name, name)
    if name in ("always_none", "always_refuse"):
        return base
    return f"{base} (chosen on {'these test instances' if split == 'test' else 'train'})"
# No trivial baseline may score above this share on any (task, split, difficulty) of a sound suite.
MAX_BASELINE = 0.20
# Positions the position baseline tries: the first few candidates, then the last ones (negative).
POSITIONS: tuple[int, ...] = (0, 1, 2, 3, 4, -1, -2)

_MONTH_RE = re.compile(r"\b(January|February|March|April|May|June|July|August|September|October|November|"
                       r"December)\b")


def _user_text(instance: dict[str, Any]) -> str:
    msgs = instance.get("messages") or []
    return "\n".join(m.get("content", "") for m in msgs if isinstance(m, dict) and m.get("role") == "user")


def candidates(instance: dict[str, Any], kind: Any) -> list[str]:
    """The answers of the right kind that the prompt shows, in order of first mention (deduplicated).

    Ids of the asked object (by key prefix), month names, or US state codes; other kinds (free text,
    subsets, write actions) have no positional candidates and get an empty list.
    """
    text = _user_text(instance)
    if kind.kind in ("id", "id_list") and kind.prefix:
        found = re.findall(rf"\b{re.escape(kind.prefix)}[A-Za-z0-9]{{15}}\b", text)
    elif kind.kind == "month":
        found = _MONTH_RE.findall(text)
    elif kind.kind == "state":
        found = [s for s in re.findall(r"\b[A-Z]{2}\b", text) if s in US_STATES]
    else:
        found = []
    return list(dict.fromkeys(found))


def _answer_text(answer: list[str], kind: Any) -> str:
    return ", ".join(answer) if kind.kind in ("id_list", "subset", "text_list") else answer[0]


def answer_key(instance: dict[str, Any]) -> str:
    """A canonical text of an instance's gold answer (equal golds give equal keys): lists sorted."""
    answer = [str(a) for a in instance.get("answer") or []]
    if answer == [NONE]:
        return NONE
    return ", ".join(sorted(answer)) if len(answer) > 1 else (answer[0] if answer else "")


def _position_pick(cands: list[str], pos: int) -> str | None:
    if not cands or pos >= len(cands) or -pos > len(cands):
        return None
    return cands[pos]


def fit_baselines(train: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task: the best constant answer and the best position, chosen on ``train`` instances.

    Returns ``{task: {"constant": text, "position": int | None}}``. The position is the one whose
    candidate scores best on ``train`` (None where the task's prompts show no candidates).
    """

    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for inst in train:
        by_task[inst["task"]].append(inst)
    out: dict[str, dict[str, Any]] = {}
    for task, insts in sorted(by_task.items()):
        kinds = [instance_answer_kind(i) for i in insts]
        golds = Counter(_answer_text(i["answer"], k) for i, k in zip(insts, kinds, strict=True))
        constant = min(golds, key=lambda a: (-golds[a], a))
        best_pos, best = None, -1.0
        cands = [candidates(i, k) for i, k in zip(insts, kinds, strict=True)]
        if any(cands):
            for pos in POSITIONS:
                acc = sum(score(i, f"<answer>{p}</answer>") >= 1.0
                          for i, c in zip(insts, cands, strict=True) if (p := _position_pick(c, pos)) is not None)
                if acc > best:
                    best_pos, best = pos, acc
        out[task] = {"constant": constant, "position": best_pos}
    return out


def baseline_completions(instances: Sequence[dict[str, Any]], fitted: dict[str, dict[str, Any]]
                         ) -> dict[str, list[str | None]]:
    """Per baseline, one completion per instance (None where the baseline does not apply to it)."""

    out: dict[str, list[str | None]] = {b: [] for b in BASELINES}
    for inst in instances:
        kind = instance_answer_kind(inst)
        fit = fitted.get(inst["task"], {})
        out["always_none"].append("<answer>None</answer>" if kind.allow_none else None)
        const = fit.get("constant")
        out["best_constant"].append(None if const is None else f"<answer>{const}</answer>")
        pos = fit.get("position")
        pick = None if pos is None else _position_pick(candidates(inst, kind), pos)
        out["position"].append(None if pick is None else f"<answer>{pick}</answer>")
    return out


def baseline_correct(instances: Sequence[dict[str, Any]], fitted: dict[str, dict[str, Any]]
                     ) -> dict[str, list[float]]:
    """Per baseline, 1.0 / 0.0 correctness per instance (a baseline that does not apply scores 0)."""

    comps = baseline_completions(instances, fitted)
    return {b: [0.0 if c is None else float(score(inst, c) >= 1.0) for inst, c in zip(instances, cs, strict=True)]
            for b, cs in comps.items()}


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def baseline_table(instances: Sequence[dict[str, Any]], train: Sequence[dict[str, Any]],
                   fitted: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Accuracy of every baseline on ``instances``: overall, by task, skill and difficulty.

    ``{"overall": {b: acc}, "by_task": {task: {b: acc}}, "by_skill": ..., "by_difficulty": ...,
    "best": acc of the best baseline overall, "per_instance": {b: [0/1, ...]}, "fitted": ...}``.
    """
    fitted = fitted if fitted is not None else fit_baselines(train)
    correct = baseline_correct(instances, fitted)
    table: dict[str, Any] = {"overall": {b: _mean(v) for b, v in correct.items()}, "n": len(instances)}
    for field, name in (("task", "by_task"), ("skill", "by_skill"), ("difficulty", "by_difficulty")):
        groups: dict[str, list[int]] = defaultdict(list)
        for i, inst in enumerate(instances):
            groups[str(inst.get(field))].append(i)
        table[name] = {g: {b: _mean([correct[b][i] for i in idx]) for b in BASELINES}
                       for g, idx in sorted(groups.items())}
    table["best"] = max(table["overall"].values()) if instances else 0.0
    table["per_instance"] = correct
    table["fitted"] = fitted
    return table


def suite_baselines(splits: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, str, str], dict[str, float]]:
    """``{(task, split, difficulty): {baseline: accuracy}}`` over every split, fitted on ``train``.

    Held-out tasks have no training instances: their constant and position are fitted on ``test``
    itself, an upper bound on what a guess could score there.
    """
    train = splits.get("train", [])
    fitted = fit_baselines(train)
    test_fit = fit_baselines(splits.get("test", []))
    fitted.update({t: f for t, f in test_fit.items() if t not in fitted})
    out: dict[tuple[str, str, str], dict[str, float]] = {}
    for split, recs in splits.items():
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for r in recs:
            groups[(r["task"], r["difficulty"])].append(r)
        for (task, diff), insts in sorted(groups.items()):
            correct = baseline_correct(insts, fitted)
            out[(task, split, diff)] = {**{b: _mean(v) for b, v in correct.items()}, "n": float(len(insts))}
    return out


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): how surprising k hits are for a guess that is right with p."""
    from math import comb

    return float(sum(comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(max(k, 0), n + 1)))


def over_cap(rate: float, n: int, exact: bool, cap: float = MAX_BASELINE, alpha: float = 0.01,
             tests: int = 1) -> bool:
    """Whether a baseline's ``rate`` on ``n`` instances breaks the cap.

    ``exact`` baselines (always None, best constant) are fixed by the builder's answer quotas: they
    may hold at most ``cap`` of the instances, rounded up to a whole instance. The position baseline
    depends on how many candidates each prompt shows; it breaks the cap when ``rate`` is
    significantly above it: a one-sided binomial test at ``alpha / tests``, where ``tests`` counts
    the comparisons made (every position tried, in every cell checked; Bonferroni), since the best
    of many positions in many cells is high by chance somewhere. So 2 lucky hits in 5 do not fail a
    suite, while a real positional bias (a fixed position right half the time over 60 instances) does.
    """
    import math

    k = round(rate * n)
    if exact:
        return k > max(1, math.ceil(cap * n - 1e-9))
    return k > cap * n and binomial_tail(k, n, cap) < alpha / max(tests, 1)


def write_baselines(out: str | Path, data: str | Path, sets: dict[str, list[str]]) -> None:
    """``eval/baselines_<split>.json``: the trivial baselines on the instances every stage is scored on.

    Constants and positions are chosen on the training split; the held-out test tasks have no
    training instances, so theirs are chosen on the test instances themselves (an upper bound).
    """

    train = load_split(data, "train")
    for split, ids in sets.items():
        path = Path(out) / "eval" / f"baselines_{split}.json"
        if path.exists():
            continue
        by_id = {i["id"]: i for i in load_split(data, split)}
        insts = [by_id[i] for i in ids]
        table = baseline_table(insts, train if split != "test" else insts)
        table["ids"] = ids
        write_json_atomic(path, table)
