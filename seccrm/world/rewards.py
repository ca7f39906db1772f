"""Deterministic verifiers for the 19 CRM tasks: 1.0 correct, 0.1 well formatted, 0.0 otherwise.

No language model grades anything. A completion is scored against one instance record as ``build``
writes it (keys ``id, task, skill, difficulty, messages, answer, metadata``).

>>> month = AnswerKind("month", allow_none=True)   # what monthly_trend_analysis registers
>>> inst = {"task": "monthly_trend_analysis", "answer": ["March"], "metadata": {}}
>>> score(inst, "Cases doubled in March. <answer>march</answer>", kind=month)
1.0
>>> score(inst, "<answer>April</answer>", kind=month)      # a month, but the wrong one
0.1
>>> score(inst, "<answer>Aprill</answer>", kind=month)     # not a month
0.0

How the spec's rules are read here
----------------------------------
* **Blocks.** The answer is the content of the *last complete* ``<answer>...</answer>`` block (tags are
  matched case-insensitively, ASCII only). Only the last 64 KiB of a completion are searched, so a
  huge completion costs no more than a long one; text outside the block is ignored.
* **Correct (1.0)** is decided by the last block alone, even when the completion holds several blocks
  (the prompt says "only the last <answer> block counts").
* **Well formatted (0.1)** needs *exactly one* ``<answer>`` tag and one ``</answer>`` tag in the searched
  text and a content that parses as the task's answer type. Several blocks, nested or dangling tags
  are therefore never worth 0.1: a wrong last block among several scores 0.0.
* **Cleaning before parsing.** Unicode NFKC normalisation (so full-width digits become ASCII), then
  surrounding whitespace, one pair of wrapping quotes or backticks, and one trailing period are
  dropped. Contents with control characters (NUL included) or longer than 4,096 characters never
  parse. Actions only lose a surrounding Markdown code fence.
* **Kinds** (``seccrm.world.tasks.base.AnswerKind``): for single-valued kinds (``id``, ``month``, ``state``,
  ``text``) the record's ``answer`` lists the acceptable answers (usually one); for list kinds
  (``id_list``, ``subset``, ``text_list``) it is the gold list, compared as a set. ``["None"]`` means no
  answer exists; ``None`` (any case) parses only when the kind allows it, and stands for the empty set.
  An instance's ``metadata["answer_kind"]`` (a dict of ``AnswerKind`` fields), when present, overrides
  its task's kind (:func:`instance_answer_kind`): knowledge_qa asks some instances for an article Id.

  - ``id``: an 18-character id with a valid checksum and the kind's prefix, ASCII only (a Cyrillic
    ``а`` is not formatted); exact comparison.
  - ``id_list`` / ``subset``: split on commas, trimmed, deduplicated, compared as sets; subset items
    match ``choices`` case-insensitively.
  - ``month`` (English month names) and ``state`` (US state codes, DC included): case-insensitive.
  - ``text``: compared after casefolding and turning punctuation and runs of spaces into one space.
  - ``text_list``: token F1 between the bags of tokens of the deduplicated predicted items and of the
    gold items; correct when F1 >= ``TEXT_LIST_F1_THRESHOLD`` (0.8). The raw F1 is reported.
  - ``action`` (CRUD): one JSON object ``{"op": "update", "object": O, "id": I, "fields": {...}}``.
    Validated (O is the task's object, every field writable for the task, I an existing record of O,
    an ``OwnerId`` an existing User, a ``StageName`` one of the five stages), then applied inside a
    SAVEPOINT that is always rolled back, on an in-memory copy of the org (one per org file and
    process). The rows touched by the predicted and the gold action are read after each; correct when
    they are identical and the prediction changed exactly one row. The org file is only ever opened
    read-only.

Finding the org (CRUD only), first match wins, the same order as the VERL reward: the ``org``
argument of :func:`score_details` (callers that know the org say so), the ``SECCRM_ORG`` environment
variable, then ``metadata["org_path"]`` (set by ``seccrm.data.load_split`` and :func:`attach_org`).
No process-wide registry: nothing outside the call decides which org a reward reads.

Scoring never raises on any completion: every failure becomes reward 0.0 with its reason in
``error``. A broken *instance* (unknown task, missing answer, no org) raises ``InstanceError``.

Where the pieces live: answer blocks, cleaning and text normalisation in ``seccrm.world.answers``;
the typed parsers of the non-action kinds in ``seccrm.world.answer_parsers``; CRUD actions and the
scratch copy of the org in ``seccrm.world.crud_scoring``. This module finds an instance's kind and
org and turns the verdict into a reward.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seccrm.world.answer_parsers import score_simple
from seccrm.world.answers import InstanceError, Unparsable, extract_answer, is_refusal, token_f1
from seccrm.world.crud_scoring import ScratchOrg, parse_action, score_action, scratch_org
from seccrm.world.tasks.base import AnswerKind

REWARD_CORRECT = 1.0
REWARD_FORMAT = 0.1
REWARD_WRONG = 0.0

__all__ = ["REWARD_CORRECT", "REWARD_FORMAT", "REWARD_WRONG", "InstanceError", "ScratchOrg", "answer_kind",
           "attach_org", "batch_score", "extract_answer", "gold_completion", "instance_answer_kind",
           "is_refusal", "org_path", "parse_action", "score", "score_details",
           "scratch_org", "token_f1"]


# ----------------------------------------------------------------------------------------------
# Finding the org of an instance
# ----------------------------------------------------------------------------------------------

def attach_org(records: list[dict[str, Any]], data_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Record in each record's ``metadata["org_path"]`` (in memory) the absolute path of its org, the
    file ``metadata["org"]`` names inside ``data_dir``; returns ``records``."""
    d = Path(data_dir)
    for r in records:
        meta = r.get("metadata")
        if isinstance(meta, dict) and meta.get("org"):
            meta["org_path"] = str((d / str(meta["org"])).resolve())
    return records


def _metadata(instance: dict[str, Any]) -> dict[str, Any]:
    """The instance's metadata (Parquet twins store it as a JSON string)."""
    meta = instance.get("metadata") or {}
    if isinstance(meta, str):
        meta = json.loads(meta)
    if not isinstance(meta, dict):
        raise InstanceError(f"instance {instance.get('id')}: metadata must be a dict")
    return meta


def org_path(instance: dict[str, Any], org: str | os.PathLike[str] | None = None) -> Path:
    """The org file of an instance: ``org`` if given, else ``SECCRM_ORG``, else the record's
    ``metadata["org_path"]`` (the module docstring)."""
    if org:
        return Path(org)
    env = os.environ.get("SECCRM_ORG")
    if env:
        return Path(env)
    meta = _metadata(instance)
    if meta.get("org_path"):
        return Path(str(meta["org_path"]))
    raise InstanceError(
        f"instance {instance.get('id')}: cannot find its org; load it with seccrm.data.load_split(dir, split) "
        "(or seccrm.world.rewards.attach_org(records, dir)), pass org=..., or set SECCRM_ORG=/path/to/org.sqlite")


# ----------------------------------------------------------------------------------------------
# Public scoring functions
# ----------------------------------------------------------------------------------------------

def answer_kind(task: str) -> AnswerKind:
    """The answer kind of a registered task."""
    import seccrm.world.tasks  # noqa: F401  (importing registers the 19 tasks)
    from seccrm.world.tasks.base import registry

    tasks = registry()
    if task not in tasks:
        raise InstanceError(f"unknown task {task!r}; known: {', '.join(sorted(tasks))}")
    return tasks[task].answer


def instance_answer_kind(instance: dict[str, Any]) -> AnswerKind:
    """The answer kind of one instance: its ``metadata["answer_kind"]`` when it has one, else its task's.

    A task whose instances answer in more than one way (knowledge_qa asks for a fact, or for the Id
    of the article that answers a question) records the kind per instance, e.g.
    ``{"kind": "id", "prefix": "ka0", "allow_none": true}``.

    >>> inst = {"task": "knowledge_qa", "metadata": {"answer_kind": {"kind": "id", "prefix": "ka0",
    ...                                                               "allow_none": True}}}
    >>> instance_answer_kind(inst)
    AnswerKind(kind='id', prefix='ka0', allow_none=True, choices=(), action_object=None, action_fields=())
    >>> instance_answer_kind({"task": "knowledge_qa", "metadata": {}}).kind
    'text'
    """
    spec = _metadata(instance).get("answer_kind")
    if spec is None:
        return answer_kind(instance.get("task", ""))
    if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str):
        raise InstanceError(f"instance {instance.get('id')}: metadata answer_kind must be a dict with a 'kind'")
    try:
        return AnswerKind(kind=spec["kind"], prefix=spec.get("prefix"), allow_none=bool(spec.get("allow_none", False)),
                          choices=tuple(spec.get("choices") or ()), action_object=spec.get("action_object"),
                          action_fields=tuple(spec.get("action_fields") or ()))
    except (TypeError, ValueError) as e:
        raise InstanceError(f"instance {instance.get('id')}: bad metadata answer_kind {spec!r}: {e}") from e


def score_details(instance: dict[str, Any], completion: str, kind: AnswerKind | None = None,
                  org: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Score one completion and say why: ``{reward, correct, formatted, kind, f1, error}``.

    ``org``: the org file CRUD actions are checked against (default: found as the module docstring says).

    ``kind`` overrides the instance's answer kind (:func:`instance_answer_kind`: the metadata's
    ``answer_kind`` if any, else the task's registered kind). ``f1`` is the token F1 for ``text_list``
    tasks and None otherwise; ``error`` is None for a correct answer, else why it is not.

    >>> inst = {"task": "best_region_identification", "answer": ["CA"]}
    >>> d = score_details(inst, "<answer>TX</answer>", kind=AnswerKind("state"))
    >>> d["reward"], d["correct"], d["formatted"], d["error"]
    (0.1, False, True, 'wrong answer')
    """
    kind = kind or instance_answer_kind(instance)
    answer = instance.get("answer")
    if not isinstance(answer, list) or not answer or not all(isinstance(a, str) for a in answer):
        raise InstanceError(f"instance {instance.get('id')}: answer must be a non-empty list of strings")
    out: dict[str, Any] = {"reward": REWARD_WRONG, "correct": False, "formatted": False,
                           "kind": kind.kind, "f1": None, "error": None}
    try:
        if not isinstance(completion, str):
            raise Unparsable("completion is not a string")
        content, n_tags = extract_answer(completion)
        if content is None:
            raise Unparsable("no <answer>...</answer> block")
        if kind.kind == "action":
            correct = score_action(content, answer, kind, instance, org_path(instance, org))
        else:
            correct, out["f1"] = score_simple(content, answer, kind)
    except Unparsable as e:
        out["error"] = str(e)
        return out
    except InstanceError:
        raise
    except Exception as e:  # noqa: BLE001  (a completion must never crash a training step)
        out["error"] = f"unexpected {type(e).__name__}: {str(e)[:120]}"
        return out
    single = n_tags == 2
    out["correct"], out["formatted"] = correct, single
    out["reward"] = REWARD_CORRECT if correct else (REWARD_FORMAT if single else REWARD_WRONG)
    if not correct:
        out["error"] = "wrong answer" if single else f"wrong answer and {n_tags} answer tags (need exactly one block)"
    return out


def score(instance: dict[str, Any], completion: str, kind: AnswerKind | None = None) -> float:
    """Reward of one completion: 1.0 correct, 0.1 well formatted but wrong, 0.0 otherwise.

    >>> inst = {"task": "best_region_identification", "answer": ["CA"]}
    >>> score(inst, "Fastest: <answer>ca</answer>", kind=AnswerKind("state"))
    1.0
    """
    return float(score_details(instance, completion, kind)["reward"])


def batch_score(instances: Sequence[dict[str, Any]], completions: Sequence[str],
                kind: AnswerKind | None = None) -> list[float]:
    """Rewards of ``completions[i]`` against ``instances[i]``; both sequences have the same length."""
    if len(instances) != len(completions):
        raise ValueError(f"{len(instances)} instances but {len(completions)} completions")
    return [score(i, c, kind) for i, c in zip(instances, completions, strict=True)]


def gold_completion(instance: dict[str, Any], kind: AnswerKind | None = None) -> str:
    """A completion that states the instance's gold answer (what a perfect model would write).

    ``kind`` defaults to :func:`instance_answer_kind`.

    >>> gold_completion({"task": "lead_qualification", "answer": ["Budget", "Need"]}, AnswerKind("subset"))
    '<answer>Budget, Need</answer>'
    """
    kind = kind or instance_answer_kind(instance)
    answer = instance["answer"]
    text = ", ".join(answer) if kind.kind in ("id_list", "subset", "text_list") else answer[0]
    return f"<answer>{text}</answer>"
