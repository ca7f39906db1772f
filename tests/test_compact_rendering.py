"""The compact rendering: the same tasks, levels and golds as the full suite, with shorter prompts.

A compact suite must pass ``seccrm check``, show shorter prompts than the full suite of the same
seed and size for every task, keep its levels ordered by length, keep the ANALYTICS self-check
(values recomputed from the records shown must equal the SQL gold), and leave the full rendering,
the default, byte-for-byte as it was.
"""

from __future__ import annotations

import json
import random
import statistics
from collections import defaultdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from seccrm.data import build_suite, check_suite
from seccrm.data.build import make_record
from seccrm.world.arms import DIFFICULTIES, TRAIN_TASKS
from seccrm.world.org import open_org
from seccrm.world.tasks import get_task
from seccrm.world.tasks.base import Org
from seccrm.world.tasks.rendering import COMPACT, FULL, get_rendering


def _read(d: Path, split: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (d / f"{split}.jsonl").read_text().splitlines()]


def _chars(r: dict[str, Any]) -> int:
    return sum(len(m["content"]) for m in r["messages"])


def _medians(d: Path, key: Any) -> dict[Any, float]:
    by: dict[Any, list[int]] = defaultdict(list)
    for split in ("train", "val"):
        for r in _read(d, split):
            by[key(r)].append(_chars(r))
    return {k: statistics.median(v) for k, v in by.items()}


@pytest.fixture(scope="module")
def small_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A full and a compact small suite of the same seed and sizes."""
    full, compact = tmp_path_factory.mktemp("full_small"), tmp_path_factory.mktemp("compact_small")
    kw: dict[str, Any] = {"seed": 0, "size": "small", "train_per_task": 24, "test_per_task": 6,
                          "progress": False, "workers": 1}
    build_suite(full, **kw)
    build_suite(compact, rendering="compact", **kw)
    return full, compact


@pytest.fixture(scope="module")
def tiny_compact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compact_tiny")
    build_suite(out, seed=0, size="tiny", train_per_task=12, test_per_task=6, progress=False, workers=1,
                rendering="compact", optional_skills=("CONFIDENTIALITY",))
    return out


def test_compact_suites_build_and_pass_check(small_pair: tuple[Path, Path], tiny_compact: Path) -> None:
    for d in (small_pair[1], tiny_compact):
        assert json.loads((d / "suite.json").read_text())["rendering"] == "compact"
        assert check_suite(d) == []


def test_compact_prompts_are_shorter_for_every_task(small_pair: tuple[Path, Path]) -> None:
    full = _medians(small_pair[0], lambda r: (r["task"], r["difficulty"]))
    compact = _medians(small_pair[1], lambda r: (r["task"], r["difficulty"]))
    assert set(full) == set(compact)
    for task in TRAIN_TASKS:
        assert sum(compact[(task, d)] for d in DIFFICULTIES) < 0.9 * sum(full[(task, d)] for d in DIFFICULTIES), task
        for d in DIFFICULTIES:
            assert compact[(task, d)] <= full[(task, d)], (task, d, compact[(task, d)], full[(task, d)])


def test_compact_levels_stay_ordered_by_length(small_pair: tuple[Path, Path]) -> None:
    arms = _medians(small_pair[1], lambda r: r["arm"])
    for skill in ("CRUD", "ANALYTICS", "KNOWLEDGE", "POLICY"):
        e, m, h = (arms[f"{skill}/{d}"] for d in DIFFICULTIES)
        assert e < m < h, (skill, e, m, h)
    per_task = _medians(small_pair[1], lambda r: (r["task"], r["difficulty"]))
    for task in TRAIN_TASKS:
        assert per_task[(task, "easy")] < per_task[(task, "hard")], task


def test_compact_golds_are_the_tasks_golds(small_pair: tuple[Path, Path]) -> None:
    """Every compact ranking gold is the best of the per-candidate SQL values its metadata records."""
    seen = 0
    for r in _read(small_pair[1], "train") + _read(small_pair[1], "val"):
        meta = r["metadata"]
        values = next((v for k, v in meta.items() if k in ("agent_avg_days", "agent_transfers", "state_avg_days",
                                                           "rep_sales_amount", "rep_avg_cycle_days",
                                                           "rep_conversion_rate")), None)
        if values is None:
            continue
        best = (min if meta["min_or_max"] == "min" else max)(values.values())
        assert r["answer"][0] in [k for k, v in values.items() if v == best]
        seen += 1
    assert seen >= 6 * 18


def test_compact_keeps_the_analytics_self_check(tiny_suite: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ranking task whose shown records disagree with its SQL gold stops under compact too."""
    task = get_task("handle_time")
    real = type(task).from_rows

    def off_by_one(self: Any, scope: Any) -> dict[str, Fraction]:
        return {k: v + 1 for k, v in real(self, scope).items()}

    monkeypatch.setattr(type(task), "from_rows", off_by_one)
    org = Org(open_org(tiny_suite / "org.sqlite"), rendering=COMPACT)
    with pytest.raises(RuntimeError, match="SQL gold"):
        task.generate(org, "easy", random.Random(0))


def test_full_is_the_default_and_unchanged(tiny_suite: Path) -> None:
    """The default build (full) regenerates record for record under an explicit FULL org, and a
    compact org gives other prompts for the same instances."""
    assert json.loads((tiny_suite / "suite.json").read_text())["rendering"] == "full"
    assert get_rendering("full") is FULL and Org.__init__.__defaults__ == (FULL,)
    records = _read(tiny_suite, "val")[::7][:8]
    full_org = Org(open_org(tiny_suite / "org.sqlite"), rendering=FULL)
    compact_org = Org(open_org(tiny_suite / "org.sqlite"), rendering=COMPACT)
    differ = 0
    for r in records:
        index, redraw = int(r["id"].rsplit("-", 1)[1]), r["metadata"]["redraws"]
        again = make_record(full_org, r["task"], r["difficulty"], index, r["metadata"]["seed"], redraw)
        assert again == r
        other = make_record(compact_org, r["task"], r["difficulty"], index, r["metadata"]["seed"], redraw)
        differ += other["messages"] != r["messages"]
    assert differ == len(records)


def test_unknown_rendering_and_agentic_compact_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="known: full, compact"):
        build_suite(tmp_path / "a", size="tiny", train_per_task=0, test_per_task=0, rendering="tiny")
    with pytest.raises(ValueError, match="agentic"):
        build_suite(tmp_path / "b", size="tiny", train_per_task=0, test_per_task=0, rendering="compact",
                    mode="agentic")
