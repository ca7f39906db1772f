"""The registry of curricula: the only way the trainer and the experiment build one.

``build_curriculum("sec", ALL_ARMS, seed=0, options)`` builds a curriculum by name from a config's
settings (each curriculum takes the options it declares, e.g. SEC's ``alpha``, ``tau`` and
``unsampled``, and ignores the rest): the trainer and the VERL sampler both come in here.
``make_curriculum`` passes keyword arguments straight to the constructor. ``CURRICULA`` lists the
names (a live view: a name registered later appears in it). Names are lower case; a hyphen in a
requested name is read as an underscore, so ``"sec-decay"`` finds the ``"sec_decay"`` preset.
"""

from __future__ import annotations

from collections.abc import Callable, KeysView, Mapping, Sequence
from typing import Any

from seccrm.curriculum.base import Curriculum
from seccrm.curriculum.learnability import Learnability
from seccrm.curriculum.schedules import EasyToHard, HardToEasy, Uniform
from seccrm.curriculum.sec import SEC
from seccrm.curriculum.ucb import UCB

CurriculumFactory = Callable[..., Curriculum]
"""Called as ``factory(arms, **kwargs)``; returns a new curriculum."""

_REGISTRY: dict[str, CurriculumFactory] = {}
_OPTIONS: dict[str, tuple[str, ...]] = {}
_TITLES: dict[str, str] = {}

CURRICULA: KeysView[str] = _REGISTRY.keys()
"""The registered names, in registration order (a live view of the registry)."""


def register_curriculum(name: str, factory: CurriculumFactory, options: Sequence[str] = (),
                        title: str = "") -> CurriculumFactory:
    """Register ``factory`` under ``name``; a name already taken raises ValueError.

    ``options``: the config settings (keyword arguments of ``factory``) that `build_curriculum` hands on;
    ``title``: how reports print it (default: the name).
    """
    if not name or name != name.lower() or "-" in name:
        raise ValueError(f"curriculum names are non-empty, lower case, without hyphens; got {name!r}")
    if name in _REGISTRY:
        raise ValueError(f"a curriculum named {name!r} is already registered")
    _REGISTRY[name] = factory
    _OPTIONS[name] = tuple(options)
    _TITLES[name] = title or name
    return factory


def curriculum_title(name: str) -> str:
    """How reports print the curriculum ``name`` (an unregistered name as it is)."""
    return _TITLES.get(name, name)


def _key(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    if key not in _REGISTRY:
        raise ValueError(f"unknown curriculum {name!r}; known: {', '.join(_REGISTRY)}")
    return key


def make_curriculum(name: str, arms: Sequence[str], **kwargs: Any) -> Curriculum:
    """Build the curriculum registered as ``name`` over ``arms``; ``kwargs`` go to its constructor.

    Unknown names raise ValueError listing the known ones.
    """
    return _REGISTRY[_key(name)](arms, **kwargs)


def curriculum_options(name: str) -> tuple[str, ...]:
    """The config settings the curriculum ``name`` takes (e.g. ``("alpha", "tau", "unsampled")`` for SEC)."""
    return _OPTIONS[_key(name)]


def build_curriculum(name: str, arms: Sequence[str], seed: int,
                     options: Mapping[str, Any] | None = None) -> Curriculum:
    """The curriculum ``name`` over ``arms``, seeded, with the ``options`` it declares (others ignored;
    a missing one keeps the constructor's default). Unknown names raise ValueError."""
    key = _key(name)
    kwargs = {k: v for k, v in (options or {}).items() if k in _OPTIONS[key] and v is not None}
    return _REGISTRY[key](arms, seed=seed, **kwargs)


def _sec_decay(arms: Sequence[str], **kwargs: Any) -> Curriculum:
    """SEC with ``unsampled="decay"``: arms absent from a batch are updated with r = 0."""
    if "unsampled" in kwargs:
        raise ValueError("'sec_decay' fixes unsampled='decay'; use 'sec' to choose it yourself")
    return SEC(arms, unsampled="decay", **kwargs)


for _name, _factory, _options, _title in (
    ("sec", SEC, ("alpha", "tau", "unsampled"), "SEC (hold)"),
    ("sec_decay", _sec_decay, ("alpha", "tau"), "SEC (decay)"),
    ("uniform", Uniform, (), "uniform"),
    ("easy2hard", EasyToHard, (), "easy-to-hard"),
    ("hard2easy", HardToEasy, (), "hard-to-easy"),
    ("ucb", UCB, (), "UCB (DUMP)"),
    ("learnability", Learnability, (), "learnability (LILO)"),
):
    register_curriculum(_name, _factory, _options, _title)
