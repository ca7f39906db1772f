"""The registry of curricula: the only way the trainer and the experiment build one.

``make_curriculum("sec", ALL_ARMS, seed=0)`` builds a curriculum by name; ``CURRICULA`` lists the
names (a live view: a name registered later appears in it). Names are lower case; a hyphen in a
requested name is read as an underscore, so ``"sec-decay"`` finds the ``"sec_decay"`` preset.
"""

from __future__ import annotations

from collections.abc import Callable, KeysView, Sequence
from typing import Any

from seccrm.curriculum.base import Curriculum
from seccrm.curriculum.learnability import Learnability
from seccrm.curriculum.schedules import EasyToHard, HardToEasy, Uniform
from seccrm.curriculum.sec import SEC
from seccrm.curriculum.ucb import UCB

CurriculumFactory = Callable[..., Curriculum]
"""Called as ``factory(arms, **kwargs)``; returns a new curriculum."""

_REGISTRY: dict[str, CurriculumFactory] = {}

CURRICULA: KeysView[str] = _REGISTRY.keys()
"""The registered names, in registration order (a live view of the registry)."""


def register_curriculum(name: str, factory: CurriculumFactory) -> CurriculumFactory:
    """Register ``factory`` under ``name``; a name already taken raises ValueError."""
    if not name or name != name.lower() or "-" in name:
        raise ValueError(f"curriculum names are non-empty, lower case, without hyphens; got {name!r}")
    if name in _REGISTRY:
        raise ValueError(f"a curriculum named {name!r} is already registered")
    _REGISTRY[name] = factory
    return factory


def make_curriculum(name: str, arms: Sequence[str], **kwargs: Any) -> Curriculum:
    """Build the curriculum registered as ``name`` over ``arms``; ``kwargs`` go to its constructor.

    Unknown names raise ValueError listing the known ones.
    """
    key = name.strip().lower().replace("-", "_")
    if key not in _REGISTRY:
        raise ValueError(f"unknown curriculum {name!r}; known: {', '.join(_REGISTRY)}")
    return _REGISTRY[key](arms, **kwargs)


def _sec_decay(arms: Sequence[str], **kwargs: Any) -> Curriculum:
    """SEC with ``unsampled="decay"``: arms absent from a batch are updated with r = 0."""
    if "unsampled" in kwargs:
        raise ValueError("'sec_decay' fixes unsampled='decay'; use 'sec' to choose it yourself")
    return SEC(arms, unsampled="decay", **kwargs)


for _name, _factory in (
    ("sec", SEC),
    ("sec_decay", _sec_decay),
    ("uniform", Uniform),
    ("easy2hard", EasyToHard),
    ("hard2easy", HardToEasy),
    ("ucb", UCB),
    ("learnability", Learnability),
):
    register_curriculum(_name, _factory)
