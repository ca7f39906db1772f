"""The CRM org as a TRL environment: one read-only SQL tool per rollout, through seccrm's sandbox.

TRL's ``GRPOTrainer(environment_factory=CRMEnvironment)`` builds one environment per rollout (pooled
and reused), calls :meth:`CRMEnvironment.reset` with the dataset row (the ``instance`` column of
:func:`~seccrm.integrations.trl.data.agentic_dataset`), and exposes every public method as a tool
through the chat template: here one, ``sql(query)``. The model's tool calls are parsed from the
template's tool-call block, each result returns in the ``tool`` role, and TRL's ``tool_mask`` keeps
those results out of the loss. The reward stays the verifiers' (:mod:`.rewards`, on the model's last
message); the environment defines no ``get_reward``.

Departure from ``seccrm train``'s episodes (`seccrm.world.episode`): the turn limit is TRL's
``max_tool_calling_iterations`` and the token budget its ``max_completion_length``, not
``EpisodeSettings``; the sandbox and its limits are the same.
"""

from __future__ import annotations

import json
from typing import Any

from seccrm.world.agent_org import agent_org
from seccrm.world.rewards import org_path
from seccrm.world.sandbox import Sandbox, SandboxLimits


class CRMEnvironment:
    """The org of one episode behind a ``sql`` tool. Counts the queries it ran (``queries``) and the
    ones that failed (``failed_queries``) since the last :meth:`reset`."""

    def __init__(self, limits: SandboxLimits | None = None):
        self._limits = limits or SandboxLimits()
        self._sandbox: Sandbox | None = None
        self._org: str | None = None
        self.queries = 0
        self.failed_queries = 0

    def reset(self, instance: str | dict[str, Any] | None = None, **_: Any) -> None:
        """Start an episode on the org of ``instance`` (the dataset's JSON column, or the record)."""
        self._close()
        record = json.loads(instance) if isinstance(instance, str) else instance
        self._org = str(org_path(record)) if record else None
        self.queries = self.failed_queries = 0
        return None

    def sql(self, query: str) -> str:
        """Run one read-only SQL query (SQLite) on the company's CRM org and return its result.

        Args:
            query: A single SELECT statement. Quote table names that are SQL keywords ("Case", "Order").

        Returns:
            The result as a compact table, or an error message.
        """
        if self._org is None:
            raise RuntimeError("the environment has no episode: TRL calls reset(**row) before the first tool call")
        if self._sandbox is None:                      # opened on the first query, closed at the next reset
            self._sandbox = Sandbox(agent_org(self._org), self._limits)   # the answer key left out
        result = self._sandbox.run(str(query))
        self.queries += 1
        self.failed_queries += 0 if result.ok else 1
        return result.text

    def _close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None
