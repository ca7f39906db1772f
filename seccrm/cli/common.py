"""Argument parsing shared by several commands."""

from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Any

from seccrm.rl.config import TrainConfig


def at_least(low: int) -> Any:
    """An argparse type: an integer >= ``low`` (argparse then names the flag and exits 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


def finite_in(low: float, high: float) -> Any:
    """An argparse type: a finite number in [low, high]."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a finite number in [{low:g}, {high:g}], got {text}")
        return value
    parse.__name__ = "number"
    return parse


def csv_of(kind: type) -> Any:
    def parse(text: str) -> list[Any]:
        return [kind(x.strip()) for x in text.split(",") if x.strip()]
    return parse


def train_sets(items: list[str]) -> dict[str, Any]:
    """``["lr=3e-5", "group_size=8"]`` -> typed TrainConfig overrides; ValueError names bad ones."""
    kinds = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in kinds:
            raise ValueError(f"--train {item!r}: expected KEY=VALUE with KEY a training setting "
                             f"(see `seccrm train --help`), e.g. lr=3e-5")
        if key in ("data", "model", "out", "seed", "curriculum", "steps", "resume"):
            raise ValueError(f"--train {key}: set by the experiment itself (use --model, --seeds, --steps, ...)")
        kind = kinds[key]
        out[key] = (text.lower() in ("1", "true", "yes", "on") if kind == "bool" else
                    int(text) if kind == "int" else float(text) if kind == "float" else text)
    return out


