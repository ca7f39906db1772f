"""The 19 CRM tasks. Importing this package registers every task generator.

>>> from seccrm.world.tasks import get_task
>>> get_task("handle_time").skill
'ANALYTICS'
"""

from __future__ import annotations

from seccrm.world.tasks import analytics, confidentiality, crud, knowledge, policy  # noqa: F401  (registration)
from seccrm.world.tasks.base import AnswerKind, Instance, Org, Task, registry


def get_task(name: str) -> Task:
    tasks = registry()
    if name not in tasks:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(sorted(tasks))}")
    return tasks[name]


def all_tasks() -> dict[str, Task]:
    return dict(registry())


__all__ = ["AnswerKind", "Instance", "Org", "Task", "all_tasks", "get_task"]
