"""Old import paths keep working. Before the package was split into rooms (world, engine, rl,
evaluation, experiments, cli), its modules lay flat: ``seccrm.rewards``, ``seccrm.trainer``,
``seccrm.org.generate``... Code written against those names still imports: the finder below
answers an old name with the module that now holds the code (the same module object, so
``monkeypatch`` and ``isinstance`` behave). New code should use the new names.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType

# old name -> new name; a package entry also maps everything below it.
MOVED: dict[str, str] = {
    "seccrm.org": "seccrm.world.org",
    "seccrm.tasks": "seccrm.world.tasks",
    "seccrm.rewards": "seccrm.world.rewards",
    "seccrm.arms": "seccrm.world.arms",
    "seccrm.baselines": "seccrm.data.baselines",
    "seccrm.data.cli": "seccrm.cli.suite",
    "seccrm.models": "seccrm.engine.models",
    "seccrm.precision": "seccrm.engine.precision",
    "seccrm.openmp": "seccrm.engine.openmp",
    "seccrm.forward": "seccrm.engine.forward",
    "seccrm.shared_prefix": "seccrm.engine.shared_prefix",
    "seccrm.fast_decode": "seccrm.engine.fast_decode",
    "seccrm.rollout": "seccrm.engine.rollout",
    "seccrm.grpo": "seccrm.rl.grpo",
    "seccrm.trainer": "seccrm.rl.trainer",
    "seccrm.checkpoint": "seccrm.rl.checkpoint",
    "seccrm.config": "seccrm.rl.config",
    "seccrm.warmup": "seccrm.rl.warmup",
    "seccrm.metrics": "seccrm.rl.metrics",
    "seccrm.evaluate": "seccrm.evaluation.evaluate",
    "seccrm.stats": "seccrm.evaluation.stats",
    "seccrm.report": "seccrm.evaluation.report",
    "seccrm.experiment": "seccrm.experiments.compare",
    "seccrm.demo": "seccrm.experiments.demo",
}


def new_name(old: str) -> str | None:
    """The module that holds what ``old`` used to (None when ``old`` did not move)."""
    for prefix, target in MOVED.items():
        if old == prefix or old.startswith(prefix + "."):
            return target + old[len(prefix):]
    return None


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        pass  # the target module ran its own code when it was imported


class _OldNames(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object = None, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        new = new_name(fullname)
        if new is None:
            return None
        if importlib.util.find_spec(new) is None:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    if not any(isinstance(f, _OldNames) for f in sys.meta_path):
        sys.meta_path.insert(0, _OldNames())  # before the path finder, which would load a second copy
