"""The dataset builder: one org and its train / val / test task sets, as JSONL and Parquet.

Layout of a suite directory::

    org.sqlite      the org (seccrm.org.build_org)
    train.jsonl     the 16 training tasks, 75% of each (task, difficulty) pool
    val.jsonl       the other 25%
    test.jsonl      the three held-out POLICY tasks, all levels
    *.parquet       the same rows; ``metadata`` is a JSON string there, because tasks record different
                    keys with different types, which no single Parquet struct can hold
    suite.json      how it was built (seed, size, counts) and the sha256 of every file

Determinism: every instance draws from its own ``random.Random`` seeded by a stable hash of
(seed, task, difficulty, index), so an instance never depends on which others were built or in which
process (large builds generate in a pool of worker processes), and the same seed gives the same
bytes. Files are written in a fixed order with sorted keys. Validation takes a seeded 25% of each
(task, difficulty) pool, rounded half up (250 -> 63).

In the JSONL files ``metadata`` is a dict (``datasets`` reads it as a Json feature); the builder adds
``"org": "org.sqlite"`` and ``"seed"`` to what the task records.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from seccrm.arms import DIFFICULTIES, HELD_OUT_TASKS, TASK_SKILLS, TRAIN_TASKS, arm_name

SPLITS: tuple[str, ...] = ("train", "val", "test")
ORG_FILE = "org.sqlite"
MANIFEST_FILE = "suite.json"
VAL_FRACTION = 0.25
RECORD_KEYS: tuple[str, ...] = ("id", "task", "skill", "difficulty", "arm", "messages", "answer", "metadata")


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from its parts, the same on every machine and Python (unlike ``hash()``).

    >>> stable_seed(0, "handle_time", "easy", 42) == stable_seed(0, "handle_time", "easy", 42)
    True
    """
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def per_difficulty(n: int) -> dict[str, int]:
    """An equal share of ``n`` per level; the remainder goes to the easier levels (10 -> 4, 3, 3)."""
    q, r = divmod(n, len(DIFFICULTIES))
    return {d: q + (i < r) for i, d in enumerate(DIFFICULTIES)}


def n_val(pool: int) -> int:
    """Validation share of a (task, difficulty) pool: 25%, rounded half up (250 -> 63, 2 -> 1, 1 -> 0)."""
    return int(pool * VAL_FRACTION + 0.5)


def val_indices(seed: int, task: str, difficulty: str, pool: int) -> set[int]:
    """The deterministic 25% of a training pool that goes to validation."""
    rng = random.Random(stable_seed(seed, "val", task, difficulty))
    return set(rng.sample(range(pool), n_val(pool)))


def instance_id(task: str, difficulty: str, index: int) -> str:
    return f"{task}-{difficulty}-{index:05d}"


def plan(seed: int, train_per_task: int, test_per_task: int) -> Iterator[tuple[str, str, str, int]]:
    """Every instance to build, in file order: (split, task, difficulty, index)."""
    for task in TRAIN_TASKS:
        for difficulty, pool in per_difficulty(train_per_task).items():
            val = val_indices(seed, task, difficulty, pool)
            for index in range(pool):
                yield ("val" if index in val else "train"), task, difficulty, index
    for task in HELD_OUT_TASKS:
        for difficulty, pool in per_difficulty(test_per_task).items():
            for index in range(pool):
                yield "test", task, difficulty, index


def make_record(org: Any, task_name: str, difficulty: str, index: int, seed: int) -> dict[str, Any]:
    """Generate one instance record; the same arguments always give the same record.

    ``org`` is a ``seccrm.tasks.Org``. Raises ValueError when the generator returns something the
    record format cannot hold (the message names the task).
    """
    from seccrm.tasks import get_task

    task = get_task(task_name)
    inst = task.generate(org, difficulty, random.Random(stable_seed(seed, task_name, difficulty, index)))
    where = f"task {task_name} ({difficulty}, index {index})"
    if inst.task != task_name or inst.difficulty != difficulty:
        raise ValueError(f"{where} returned an instance of {inst.task}/{inst.difficulty}")
    if not inst.answer or not all(isinstance(a, str) for a in inst.answer):
        raise ValueError(f"{where} returned answer {inst.answer!r}; expected a non-empty list of strings")
    if not all(set(m) == {"role", "content"} for m in inst.messages):
        raise ValueError(f"{where} returned messages that are not {{role, content}} dicts")
    metadata = {**inst.metadata, "org": ORG_FILE, "seed": seed}
    skill = TASK_SKILLS[task_name]
    record = {"id": instance_id(task_name, difficulty, index), "task": task_name, "skill": skill,
              "difficulty": difficulty, "arm": arm_name(skill, difficulty),
              "messages": [{"role": m["role"], "content": m["content"]} for m in inst.messages],
              "answer": list(inst.answer), "metadata": metadata}
    try:
        json.dumps(record, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where} returned metadata that is not plain JSON: {e}") from e
    return record


def dump_record(record: dict[str, Any]) -> str:
    """One JSONL line (sorted keys: the bytes depend on nothing but the record)."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False, allow_nan=False)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_parquet(records: list[dict[str, Any]], path: Path) -> None:
    """The Parquet twin: ``messages`` a list of {role, content} structs, ``metadata`` a JSON string."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    schema = pa.schema([("id", pa.string()), ("task", pa.string()), ("skill", pa.string()),
                        ("difficulty", pa.string()), ("arm", pa.string()), ("messages", pa.list_(message)),
                        ("answer", pa.list_(pa.string())), ("metadata", pa.string())])
    columns = {k: [r[k] for r in records] for k in RECORD_KEYS}
    columns["metadata"] = [json.dumps(r["metadata"], sort_keys=True, ensure_ascii=False) for r in records]
    pq.write_table(pa.table(columns, schema=schema), path, compression="zstd")


_WORKER: dict[str, Any] = {}   # per worker process: the open org and the seed


def _init_worker(org_file: str, seed: int) -> None:
    from seccrm.org import open_org
    from seccrm.tasks.base import Org

    _WORKER["org"], _WORKER["seed"] = Org(open_org(org_file)), seed


def _make_job(job: tuple[str, str, str, int]) -> tuple[str, dict[str, Any]]:
    split, task, difficulty, index = job
    try:
        return split, make_record(_WORKER["org"], task, difficulty, index, _WORKER["seed"])
    except ValueError as e:   # a generator that cannot work on this org: say which instance
        raise ValueError(f"generating {instance_id(task, difficulty, index)}: {e}") from e


def generate_records(org_file: Path, seed: int, jobs: list[tuple[str, str, str, int]], workers: int,
                     progress: bool, desc: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(split, record) for every job, in job order, from ``workers`` processes (1: this one).

    Each instance has its own seed, so the result does not depend on which process built it.
    """
    import multiprocessing as mp

    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc=desc, unit="inst", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    try:
        if workers <= 1:
            _init_worker(str(org_file), seed)
            results: Iterator[tuple[str, dict[str, Any]]] = map(_make_job, jobs)
            pool = None
        else:   # fork shares the imported task modules; each worker opens the org itself
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            pool = ctx.Pool(workers, initializer=_init_worker, initargs=(str(org_file), seed))
            results = pool.imap(_make_job, jobs, chunksize=8)
        for item in results:
            bar.update()
            yield item
    finally:
        bar.close()
        if _WORKER.get("org") is not None:
            _WORKER.pop("org").conn.close()
        if workers > 1 and pool is not None:
            pool.terminate()


def default_workers(n_jobs: int) -> int:
    """Processes for ``n_jobs`` instances: one for small builds (a pool costs more than it saves)."""
    import os

    return 1 if n_jobs < 500 else max(1, min(os.cpu_count() or 1, 8))


def build_suite(out_dir: str | Path, seed: int = 0, size: str = "small", train_per_task: int = 750,
                test_per_task: int = 100, progress: bool = True, workers: int | None = None) -> dict[str, Any]:
    """Build the org and the three task sets in ``out_dir``; return the manifest (also in suite.json).

    The manifest holds the build parameters, ``counts[split][task][difficulty]`` and the sha256 of
    every file written. Same arguments, same bytes, whatever ``workers`` (None: one per CPU, up to 8,
    for builds of 500 instances or more).
    """
    from seccrm.org import build_org
    from seccrm.tasks import all_tasks

    if train_per_task < 0 or test_per_task < 0:
        raise ValueError("train_per_task and test_per_task must be >= 0")
    missing = [t for t in TASK_SKILLS if t not in all_tasks()]
    if missing:
        raise ValueError(f"task generator(s) not registered in this checkout: {', '.join(missing)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    org_file = build_org(out / ORG_FILE, seed=seed, size=size)
    jobs = list(plan(seed, train_per_task, test_per_task))
    records: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for split, record in generate_records(org_file, seed, jobs, workers or default_workers(len(jobs)),
                                          progress, f"building {size} suite"):
        records[split].append(record)
    counts = write_splits(out, records)
    files = [ORG_FILE] + [f"{s}.{ext}" for s in SPLITS for ext in ("jsonl", "parquet")]
    manifest = {"seed": seed, "size": size, "train_per_task": train_per_task, "test_per_task": test_per_task,
                "val_fraction": VAL_FRACTION, "counts": counts,
                "sha256": {name: sha256_file(out / name) for name in files}}
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def write_splits(out: Path, records: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, dict[str, int]]]:
    """Write each split as JSONL and Parquet; return counts[split][task][difficulty]."""
    counts: dict[str, dict[str, dict[str, int]]] = {s: {} for s in SPLITS}
    for split, recs in records.items():
        for r in recs:
            by_level = counts[split].setdefault(r["task"], {d: 0 for d in DIFFICULTIES})
            by_level[r["difficulty"]] += 1
        with open(out / f"{split}.jsonl", "w", encoding="utf-8", newline="\n") as f:
            f.writelines(dump_record(r) + "\n" for r in recs)
        write_parquet(recs, out / f"{split}.parquet")
    return counts


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSONL file; a bad line raises ValueError naming the file and line."""
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} line {n}: not valid JSON ({e.msg})") from None
    return records


def load_split(data_dir: str | Path, split: str) -> list[dict[str, Any]]:
    """The records of one split (``train``, ``val`` or ``test``) of a built suite.

    Registers ``data_dir`` for scoring and records the org's absolute path in each record's
    ``metadata["org_path"]`` (in memory only), so that ``seccrm.rewards.score`` finds the org of
    these records from any working directory.
    """
    from seccrm.rewards import register_data_dir

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    d = Path(data_dir)
    path = d / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; build the suite with `seccrm build --out {d}`")
    register_data_dir(d)
    records = read_jsonl(path)
    for r in records:
        meta = r.get("metadata")
        if isinstance(meta, dict) and meta.get("org"):
            meta["org_path"] = str((d / meta["org"]).resolve())
    return records
