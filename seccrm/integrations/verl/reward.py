"""The CRM reward as VERL's ``custom_reward_function``.

Point VERL at this file and at :func:`compute_score`::

    reward.custom_reward_function.path=$(python -c 'import seccrm.integrations.verl.reward as m; print(m.__file__)')
    reward.custom_reward_function.name=compute_score

(VERL <= 0.6 spells the first key ``custom_reward_function.path``; 0.7 migrates it.) VERL's reward
managers decode each response and call ``compute_score(data_source=, solution_str=, ground_truth=,
extra_info=)`` per completion. The instance record travels in ``extra_info["instance"]`` (see
:mod:`seccrm.integrations.verl.export`), and the grading is :func:`seccrm.world.rewards.score_details`,
the function ``seccrm train`` and ``seccrm eval`` use: 1.0 correct, 0.1 well formatted, 0.0 otherwise.

The dict returned holds ``score`` (the reward) and, as VERL's ``reward_extra_info``, the details
worth logging. Every row returns the same keys with the same types, because VERL stacks them across
the batch and averages the numeric ones per ``data_source`` in validation:

    acc        1.0 when correct (VERL's validation reports ``acc`` as its core metric)
    formatted  1.0 when exactly one well-formed answer block parsed as the task's answer type
    f1         the token F1 for ``sales_insight_mining``; for exact-match tasks it equals ``acc``
    error      why the answer is not correct ("" when it is)
    task, arm  the instance's task and curriculum arm

Where the org is (CRUD tasks only), first match wins: the ``org_path`` keyword (set it with
``++reward.custom_reward_function.reward_kwargs.org_path=...``), the ``SECCRM_ORG`` environment
variable, then ``extra_info["org_path"]`` written by the export.

Rows from other data sources (a mixed dataset) go to VERL's ``default_compute_score``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from seccrm.world.rewards import InstanceError, score_details

DATA_SOURCE_PREFIX = "seccrm/"  # as in seccrm.integrations.verl.export (this file may be loaded by path)


def instance_from_extra_info(extra_info: dict[str, Any], org_path: str | None = None) -> dict[str, Any]:
    """The instance record stored in a row's ``extra_info``, with ``metadata.org_path`` resolved."""
    raw = extra_info.get("instance")
    if not raw:
        raise ValueError("extra_info has no 'instance': export the data with `seccrm export verl`")
    instance = json.loads(raw) if isinstance(raw, str) else dict(raw)
    where = org_path or os.environ.get("SECCRM_ORG") or extra_info.get("org_path")
    if where:
        instance["metadata"] = {**(instance.get("metadata") or {}), "org_path": str(where)}
    return instance


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: dict[str, Any] | None = None,
    org_path: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Grade one decoded completion; returns ``{"score": reward, "acc", "formatted", "f1", "error", ...}``.

    Args:
        data_source: the row's ``data_source`` (``"seccrm/<task>"``).
        solution_str: the decoded response.
        ground_truth: the row's ``reward_model.ground_truth`` (JSON list of gold answers); it must
            agree with the stored instance, which catches rows mixed up between datasets.
        extra_info: the row's ``extra_info`` (VERL adds keys such as ``num_turns``; they are ignored).
        org_path: where the org file is on this machine (overrides the row; CRUD tasks only).
        **kwargs: what other VERL versions pass (``reward_router_address``, ...); ignored.

    >>> import json
    >>> inst = {"id": "x", "task": "best_region_identification", "answer": ["CA"], "metadata": {}}
    >>> out = compute_score("seccrm/best_region_identification", "<answer>ca</answer>", '["CA"]',
    ...                     {"instance": json.dumps(inst)})
    >>> out["score"], out["acc"], out["error"]
    (1.0, 1.0, '')
    """
    if not str(data_source).startswith(DATA_SOURCE_PREFIX):
        from verl.utils.reward_score import default_compute_score

        return default_compute_score(data_source, solution_str, ground_truth, extra_info, **kwargs)
    instance = instance_from_extra_info(extra_info or {}, org_path)
    if ground_truth is not None and json.loads(ground_truth) != instance.get("answer"):
        raise ValueError(f"row {instance.get('id')}: ground_truth {ground_truth!r} does not match the stored "
                         f"instance's answer {instance.get('answer')!r}; re-export the data")
    try:
        d = score_details(instance, solution_str)
    except InstanceError as e:  # a broken row or a missing org: stop the run, say how to fix it
        raise InstanceError(f"{e}. Where the org lives on this machine: set "
                            "++reward.custom_reward_function.reward_kwargs.org_path=... or SECCRM_ORG") from e
    acc = 1.0 if d["correct"] else 0.0
    return {
        "score": float(d["reward"]),
        "acc": acc,
        "formatted": 1.0 if d["formatted"] else 0.0,
        "f1": float(d["f1"]) if d["f1"] is not None else acc,
        "error": d["error"] or "",
        "task": str(instance.get("task", "")),
        "arm": str(instance.get("arm", "")),
    }
