"""A built suite's split as the ``datasets.Dataset`` TRL trains on: single-turn prompts, or agentic
episodes whose SQL runs through TRL's tool calling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from seccrm.data import load_split, suite_mode
from seccrm.world.episode import schema_for
from seccrm.world.protocol import TOOLS_SYSTEM
from seccrm.world.rewards import org_path

# The system message under native tool calls is the episodes' own (`seccrm.world.protocol`).


def _row(r: dict[str, Any], messages: list[dict[str, str]]) -> dict[str, Any]:
    return {"prompt": messages, "id": r["id"], "task": r["task"], "arm": r["arm"],
            "instance": json.dumps(r, sort_keys=True)}


def suite_dataset(data: str | Path, split: str = "train") -> Any:
    """A built suite's split as a ``datasets.Dataset``: ``prompt`` (the chat messages), ``id``,
    ``task``, ``arm`` and ``instance`` (the record as JSON, read by the reward functions)."""
    from datasets import Dataset

    return Dataset.from_list([_row(r, r["messages"]) for r in load_split(data, split)])


def agentic_dataset(data: str | Path, split: str = "train", system: str = TOOLS_SYSTEM) -> Any:
    """An agentic suite's split (``seccrm build --mode agentic`` or an imported CRMArena-Pro) for
    TRL's tool training with :class:`~seccrm.integrations.trl.environment.CRMEnvironment`: the columns
    of :func:`suite_dataset`, the system message replaced by ``system`` (``{schema}`` becomes the org's
    schema) and the question kept as the user message.

    Raises ValueError for a single-turn suite: its prompts show the records, so there is nothing to query.
    """
    from datasets import Dataset

    if suite_mode(data) != "agentic":
        raise ValueError(f"{data} is a single-turn suite; build an agentic one with "
                         f"`seccrm build --mode agentic --out DIR` (or use suite_dataset for single-turn training)")
    schemas: dict[Path, str] = {}
    rows = []
    for r in load_split(data, split):
        org = org_path(r)
        if org not in schemas:
            schemas[org] = schema_for(org)
        question = [m for m in r["messages"] if m["role"] != "system"]
        rows.append(_row(r, [{"role": "system", "content": system.format(schema=schemas[org])}, *question]))
    return Dataset.from_list(rows)
