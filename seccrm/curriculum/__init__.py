"""Curricula: which (skill, difficulty) arm each prompt of a batch is drawn from.

- :class:`SEC`: the Self-Evolving Curriculum bandit (Boltzmann over Q, TD(0) on mean |advantage|);
  ``unsampled="decay"`` (the ``sec_decay`` preset) is the variant the SEC authors' code runs.
- :class:`Uniform`, :class:`EasyToHard`, :class:`HardToEasy`: the fixed baselines of the SEC paper.
- :class:`UCB` (as DUMP) and :class:`Learnability` (p(1-p), as LILO): adaptive baselines from
  beyond the paper.
- :class:`ArmPools`: the instances of each arm, drawn without replacement.

Build curricula by name through :func:`build_curriculum` (from a config's settings) or
:func:`make_curriculum` (constructor keywords); all share :class:`Curriculum`'s interface
(``probs``, ``sample``, ``update``, ``set_progress``, ``metrics``, ``state_dict``).
"""

from seccrm.curriculum.base import ArmBatch, Curriculum
from seccrm.curriculum.learnability import Learnability
from seccrm.curriculum.pools import ArmPools
from seccrm.curriculum.registry import (
    CURRICULA,
    build_curriculum,
    curriculum_options,
    make_curriculum,
    register_curriculum,
)
from seccrm.curriculum.schedules import DifficultySchedule, EasyToHard, HardToEasy, Uniform
from seccrm.curriculum.sec import SEC
from seccrm.curriculum.ucb import UCB

__all__ = [
    "CURRICULA",
    "SEC",
    "UCB",
    "ArmBatch",
    "ArmPools",
    "Curriculum",
    "DifficultySchedule",
    "EasyToHard",
    "HardToEasy",
    "Learnability",
    "Uniform",
    "build_curriculum",
    "curriculum_options",
    "make_curriculum",
    "register_curriculum",
]
