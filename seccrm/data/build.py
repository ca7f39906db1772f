"""The dataset builder: one org and its train / val / test task sets, as JSONL and Parquet.

Layout of a suite directory::

    org.sqlite      the org (seccrm.world.org.build_org); agent_org.sqlite: the agents' copy, no answer key
    train.jsonl     the 16 training tasks, 75% of each (task, difficulty) pool
    val.jsonl       the other 25%
    test.jsonl      the three held-out POLICY tasks, all levels
    *.parquet       the same rows; ``metadata`` is a JSON string there, because tasks record different
                    keys with different types, which no single Parquet struct can hold
    suite.json      how it was built (seed, size, counts, distinct prompts, redraws), the sha256
                    of every file and the format version (``SUITE_FORMAT``)

A build is written into a hidden folder beside ``out_dir`` and swapped in file by file, with
``suite.json`` removed first and written last: a build killed at any moment leaves either the old
suite whole or files without a ``suite.json``, never a mix that claims to be a suite.
``seccrm.data.load.load_split`` checks the split's and the org's sha256 against ``suite.json`` (once
per file version in a process) and refuses a suite whose files do not match, or that has none.

Determinism: every instance draws from its own ``random.Random`` seeded by a stable hash of
(seed, task, difficulty, index), so the same seed gives the same bytes. Files are written in a fixed
order with sorted keys.

Answer balance: slot ``i`` of a pool wants a None gold when ``floor((i + 1) * NONE_QUOTA)`` exceeds
``floor(i * NONE_QUOTA)`` (an exact 15% of the pool, spread evenly), and no answer may take more than
``answer_cap(pool size)`` slots. A draw that does not fit its slot is redrawn like a repeat; when no draw
fits, the first draw that keeps the cap is kept (a task that rarely yields None then has fewer).
Validation is chosen by proportional allocation over the gold answers (``stratified_order``), so
that train and val keep the pool's answer shares (within one instance). These rules are pure
functions in ``seccrm.data.balance``; ``make_pool`` here applies them while drawing.

Distinct prompts: instances sample from pools of a few dozen to a few hundred records, so two
instances can ask the identical question. The instances of one (task, difficulty) pool are built in
index order, by one process, and an instance whose messages equal an earlier one's is redrawn from a
derived seed, up to ``MAX_REDRAWS`` times; when every draw repeats (the task has too few distinct
questions at this org size) the last one is kept. ``metadata["redraws"]`` says which draw an
instance is, ``suite.json`` how many distinct prompts each pool and split holds. Large builds spread
the pools over worker processes; a pool never depends on another, so the bytes do not depend on the
number of workers.

Validation takes 25% of each training (task, difficulty) pool, rounded half up (250 -> 63), chosen
by a seeded walk over the pool that moves all copies of a prompt together, so that no prompt is in
both train and val (a repeated prompt in both would let validation reward a memorised answer).
When whole groups of copies cannot add up to exactly 25%, val gets fewer, and ``suite.json``
records the shortfall in ``val_short`` (negative when copies of prompts that an earlier pool put in
val pull more in).

In the JSONL files ``metadata`` is a dict (``datasets`` reads it as a Json feature); the builder adds
``"org": "org.sqlite"``, ``"seed"`` and ``"redraws"`` to what the task records.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from seccrm.data.balance import (
    VAL_FRACTION,
    answer_cap,
    answer_key,
    n_val,
    per_difficulty,
    prompt_key,
    stable_seed,
    val_indices,
    wants_none,
)
from seccrm.data.load import AGENT_ORG_FILE, MANIFEST_FILE, ORG_FILE, SPLITS, SUITE_FORMAT
from seccrm.files import sha256_file, write_text_atomic
from seccrm.world.agent_org import build_agent_org
from seccrm.world.arms import (
    ALL_TASK_SKILLS,
    DIFFICULTIES,
    HELD_OUT_TASKS,
    TASK_SKILLS,
    arm_name,
    train_tasks,
)
from seccrm.world.episode import gold_depends_on_records_shown, question_only, schema_for
from seccrm.world.org import build_org, open_org
from seccrm.world.references import rewrite_levels
from seccrm.world.rewards import answer_kind
from seccrm.world.tasks import all_tasks, get_task
from seccrm.world.tasks.base import Org
from seccrm.world.tasks.rendering import get_rendering

BUILD_MODES = ("single", "agentic")
"""``single``: the records a question needs are in its prompt; ``agentic``: question-only episodes."""

MAX_REDRAWS = 40  # draws after the first for an instance that repeats a prompt or breaks the answer balance
RECORD_KEYS: tuple[str, ...] = ("id", "task", "skill", "difficulty", "arm", "messages", "answer", "metadata")


def instance_id(task: str, difficulty: str, index: int) -> str:
    return f"{task}-{difficulty}-{index:05d}"


def pools(train_per_task: int, test_per_task: int,
          optional_skills: tuple[str, ...] | list[str] = ()) -> list[tuple[str, str, str, int]]:
    """Every non-empty (task, difficulty) pool, in file order: (kind, task, difficulty, size).

    ``kind`` is "train" for the pools that train and val share, "test" for the held-out tasks. The
    tasks of ``optional_skills`` (e.g. CONFIDENTIALITY) train and validate after the 16.
    """
    out = [("train", t, d, n) for t in train_tasks(optional_skills) for d, n in per_difficulty(train_per_task).items()]
    out += [("test", t, d, n) for t in HELD_OUT_TASKS for d, n in per_difficulty(test_per_task).items()]
    return [job for job in out if job[3] > 0]


def instance_seed(seed: int, task: str, difficulty: str, index: int, redraw: int = 0) -> int:
    """The seed of an instance's ``redraw``-th draw (0: its first; later ones only replace a repeat)."""
    if redraw == 0:
        return stable_seed(seed, task, difficulty, index)
    return stable_seed(seed, task, difficulty, index, "redraw", redraw)


def make_record(org: Any, task_name: str, difficulty: str, index: int, seed: int,
                redraw: int = 0) -> dict[str, Any]:
    """Generate one instance record; the same arguments always give the same record.

    ``org`` is a ``seccrm.world.tasks.Org``; ``redraw`` picks the draw (see ``instance_seed``) and is
    recorded as ``metadata["redraws"]``. Raises ValueError when the generator returns something the
    record format cannot hold (the message names the task).
    """

    task = get_task(task_name)
    inst = task.generate(org, difficulty, random.Random(instance_seed(seed, task_name, difficulty, index, redraw)))
    where = f"task {task_name} ({difficulty}, index {index})"
    if inst.task != task_name or inst.difficulty != difficulty:
        raise ValueError(f"{where} returned an instance of {inst.task}/{inst.difficulty}")
    if not inst.answer or not all(isinstance(a, str) for a in inst.answer):
        raise ValueError(f"{where} returned answer {inst.answer!r}; expected a non-empty list of strings")
    if not all(set(m) == {"role", "content"} for m in inst.messages):
        raise ValueError(f"{where} returned messages that are not {{role, content}} dicts")
    metadata = {**inst.metadata, "org": ORG_FILE, "seed": seed, "redraws": redraw}
    skill = ALL_TASK_SKILLS[task_name]
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



def make_pool(org: Any, task: str, difficulty: str, size: int, seed: int) -> list[dict[str, Any]]:
    """Instances 0..size-1 of one (task, difficulty) pool, in order, redrawing repeats and imbalance.

    An instance whose messages equal an earlier one's, whose gold is None where its slot wants an
    answer (or the reverse; only for tasks whose answer may be None), or whose answer already holds
    ``answer_cap(size)`` slots is drawn again from ``instance_seed(..., redraw)``, up to
    ``MAX_REDRAWS`` times. When no draw fits, the first new prompt within the cap is kept (else the
    first new prompt, else the last draw): ``suite.json`` and ``seccrm check`` then show the shortfall.
    """

    allow_none = answer_kind(task).allow_none
    cap = answer_cap(size)
    seen: set[str] = set()
    counts: Counter[str] = Counter()
    out = []
    for index in range(size):
        want_none = allow_none and wants_none(index)
        fallback: tuple[int, dict[str, Any], str] | None = None
        for redraw in range(MAX_REDRAWS + 1):
            record = make_record(org, task, difficulty, index, seed, redraw)
            key = prompt_key(record["messages"])
            if key in seen:
                continue
            answer = answer_key(record)
            within = counts[answer] < cap
            rank = 0 if within else 1
            if fallback is None or rank < fallback[0]:
                fallback = (rank, record, key)
            if within and (not allow_none or (answer == "None") == want_none):
                break
        else:
            if fallback is not None:
                _, record, key = fallback
        seen.add(key)
        counts[answer_key(record)] += 1
        out.append(record)
    return out


_WORKER: dict[str, Any] = {}   # per worker process: the open org and the seed


def _init_worker(org_file: str, seed: int, rendering: str = "full") -> None:

    _WORKER["org"], _WORKER["seed"] = Org(open_org(org_file), rendering=get_rendering(rendering)), seed


def _make_pool_job(job: tuple[str, str, str, int]) -> list[dict[str, Any]]:
    _, task, difficulty, size = job
    try:
        return make_pool(_WORKER["org"], task, difficulty, size, _WORKER["seed"])
    except ValueError as e:   # a generator that cannot work on this org: say which pool
        raise ValueError(f"generating {task}/{difficulty}: {e}") from e


def generate_pools(org_file: Path, seed: int, jobs: list[tuple[str, str, str, int]], workers: int,
                   progress: bool, desc: str, rendering: str = "full") -> Iterator[list[dict[str, Any]]]:
    """The records of every pool in ``jobs`` (see ``pools``), in job order, from ``workers`` processes.

    A pool is built whole by one process and depends on nothing else, so the result does not depend
    on ``workers`` (1: this process).
    """
    import multiprocessing as mp

    from tqdm import tqdm

    bar = tqdm(total=sum(job[3] for job in jobs), desc=desc, unit="inst", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    pool = None
    try:
        if workers <= 1:
            _init_worker(str(org_file), seed, rendering)
            results: Iterator[list[dict[str, Any]]] = map(_make_pool_job, jobs)
        else:   # fork shares the imported task modules; each worker opens the org itself
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            pool = ctx.Pool(workers, initializer=_init_worker, initargs=(str(org_file), seed, rendering))
            results = pool.imap(_make_pool_job, jobs, chunksize=1)
        for records in results:
            bar.update(len(records))
            yield records
    finally:
        bar.close()
        if _WORKER.get("org") is not None:
            _WORKER.pop("org").conn.close()
        if pool is not None:
            pool.terminate()


def default_workers(n_jobs: int) -> int:
    """Processes for ``n_jobs`` instances: one for small builds (a pool costs more than it saves)."""
    import os

    return 1 if n_jobs < 500 else max(1, min(os.cpu_count() or 1, 8))


def build_suite(out_dir: str | Path, seed: int = 0, size: str = "small", train_per_task: int = 750,
                test_per_task: int = 100, progress: bool = True, workers: int | None = None,
                optional_skills: tuple[str, ...] | list[str] = (), mode: str = "single",
                rendering: str = "full") -> dict[str, Any]:
    """Build the org and the three task sets in ``out_dir``; return the manifest (also in suite.json).

    ``mode="agentic"`` writes every instance question-only (``seccrm.world.episode.question_only``: the
    question and the org's schema, no records) for episodes that query the org; the instances, ids,
    splits and golds are those of the single-turn suite of the same arguments, and each level changes
    what the agent must look up (``seccrm.world.references``: medium names one kind of reference by
    name instead of id, hard every kind; ``metadata["references"]`` says which).

    The manifest holds the build parameters, ``counts[split][task][difficulty]``, the distinct
    prompts ``distinct[split][task][difficulty]``, the redraws per pool ``redraws[task][difficulty]``,
    any validation shortfall ``val_short[task][difficulty]`` and the sha256 of every file written.
    Same arguments, same bytes, whatever ``workers`` (None: one per CPU, up to 8, for builds of 500
    instances or more).

    ``rendering`` (``seccrm.world.tasks.rendering``): ``"full"`` (the report's prompts) or
    ``"compact"`` (fewer records per level and shorter texts, for small machines; the same tasks,
    levels and gold computations). It applies to single-turn suites only: agentic ones show no records.
    """

    if train_per_task < 0 or test_per_task < 0:
        raise ValueError("train_per_task and test_per_task must be >= 0")
    if mode not in BUILD_MODES:
        raise ValueError(f"mode must be one of {', '.join(BUILD_MODES)}, got {mode!r}")
    get_rendering(rendering)              # an unknown rendering raises here
    if mode == "agentic" and rendering != "full":
        raise ValueError(f"rendering {rendering!r} applies to single-turn suites; agentic suites are "
                         "question-only and show no records (build them with the full rendering)")
    train_tasks(optional_skills)          # an unknown optional skill raises here, before any work
    missing = [t for t in TASK_SKILLS if t not in all_tasks()]
    if missing:
        raise ValueError(f"task generator(s) not registered in this checkout: {', '.join(missing)}")
    final = Path(out_dir)
    final.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.building-*"):     # left by a killed build
        if not _pid_alive(stale.name.rsplit("-", 1)[-1]):
            shutil.rmtree(stale, ignore_errors=True)
    out = final.parent / f".{final.name}.building-{os.getpid()}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    try:
        manifest = _build_into(out, seed, size, train_per_task, test_per_task, progress, workers,
                               tuple(optional_skills), mode, rendering)
        _swap_in(out, final, manifest)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return manifest


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _swap_in(tmp: Path, final: Path, manifest: dict[str, Any]) -> None:
    """Move a finished build into ``final``: the old suite.json goes first, the new one comes last."""
    (final / MANIFEST_FILE).unlink(missing_ok=True)
    for name in manifest["sha256"]:
        os.replace(tmp / name, final / name)
    write_text_atomic(final / MANIFEST_FILE, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def _build_into(out: Path, seed: int, size: str, train_per_task: int, test_per_task: int, progress: bool,
                workers: int | None, optional_skills: tuple[str, ...] = (), mode: str = "single",
                rendering: str = "full") -> dict[str, Any]:
    org_file = build_org(out / ORG_FILE, seed=seed, size=size)
    build_agent_org(org_file, out / AGENT_ORG_FILE)
    jobs = pools(train_per_task, test_per_task, optional_skills)
    n_workers = workers or default_workers(sum(job[3] for job in jobs))
    records: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    assigned: dict[str, str] = {}   # prompt key -> split, so a prompt repeated across pools stays put
    redraws: dict[str, dict[str, int]] = {}
    val_short: dict[str, dict[str, int]] = {}
    for (kind, task, difficulty, n), recs in zip(jobs, generate_pools(org_file, seed, jobs, n_workers, progress,
                                                                      f"building {size} suite", rendering),
                                                    strict=True):
        keys = [prompt_key(r["messages"]) for r in recs]
        answers = [answer_key(r) for r in recs]
        val = val_indices(seed, task, difficulty, keys, assigned, answers) if kind == "train" else set()
        for i, (r, key) in enumerate(zip(recs, keys, strict=True)):
            split = "test" if kind == "test" else "val" if i in val else "train"
            records[split].append(r)
            assigned.setdefault(key, split)
        redraws.setdefault(task, {})[difficulty] = sum(r["metadata"]["redraws"] for r in recs)
        if kind == "train" and len(val) != n_val(n):
            val_short.setdefault(task, {})[difficulty] = n_val(n) - len(val)
    dropped: dict[str, int] = {}
    if mode == "agentic":
        records, dropped = _question_only_records(records, schema_for(org_file))
        records = {split: rewrite_levels(recs, org_file) for split, recs in records.items()}
    write_splits(out, records)
    counts, distinct = split_stats(records)
    files = [ORG_FILE, AGENT_ORG_FILE] + [f"{s}.{ext}" for s in SPLITS for ext in ("jsonl", "parquet")]
    manifest = {"format": SUITE_FORMAT, "seed": seed, "size": size, "train_per_task": train_per_task, "test_per_task": test_per_task,
                "optional_skills": list(optional_skills), "mode": mode, "agentic": mode == "agentic",
                "rendering": rendering,
                **({"agentic_dropped": dropped} if mode == "agentic" else {}),
                "val_fraction": VAL_FRACTION, "max_redraws": MAX_REDRAWS, "counts": counts,
                "distinct": distinct, "redraws": redraws, "val_short": val_short,
                "sha256": {name: sha256_file(out / name) for name in files}}
    return manifest


def _question_only_records(records: dict[str, list[dict[str, Any]]], schema: str
                           ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """The records question-only, once each. Instances that differ only in the records they show
    become the same episode: the first (train, then val, then test) is kept and later copies are
    dropped, so that no episode sits in two splits; a question whose copies have different golds
    cannot be answered from the org alone and is dropped altogether, as is a question whose gold is
    about the records its prompt showed (``gold_depends_on_records_shown``). Returns the records and
    the counts dropped (``duplicate``, ``ambiguous``, ``records_shown``)."""
    rendered = {split: [question_only(r, schema) for r in recs] for split, recs in records.items()}
    golds: dict[str, set[str]] = defaultdict(set)
    for recs in rendered.values():
        for r in recs:
            golds[prompt_key(r["messages"])].add(answer_key(r))
    seen: set[str] = set()
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in records}
    dropped = {"duplicate": 0, "ambiguous": 0, "records_shown": 0}
    for split in SPLITS:
        for r in rendered.get(split, []):
            key = prompt_key(r["messages"])
            if gold_depends_on_records_shown(r):
                dropped["records_shown"] += 1
            elif len(golds[key]) > 1:
                dropped["ambiguous"] += 1
            elif key in seen:
                dropped["duplicate"] += 1
            else:
                seen.add(key)
                out[split].append(r)
    return out, dropped


def split_stats(records: dict[str, list[dict[str, Any]]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``counts[split][task][difficulty]`` of instances and ``distinct[...]`` of distinct prompts."""
    counts: dict[str, dict[str, dict[str, int]]] = {s: {} for s in SPLITS}
    distinct: dict[str, dict[str, dict[str, int]]] = {s: {} for s in SPLITS}
    for split, recs in records.items():
        keys: dict[tuple[str, str], set[str]] = defaultdict(set)
        for r in recs:
            counts[split].setdefault(r["task"], {d: 0 for d in DIFFICULTIES})[r["difficulty"]] += 1
            keys[(r["task"], r["difficulty"])].add(prompt_key(r["messages"]))
        for task in counts[split]:
            distinct[split][task] = {d: len(keys[(task, d)]) for d in DIFFICULTIES}
    return counts, distinct


def write_splits(out: Path, records: dict[str, list[dict[str, Any]]]) -> None:
    """Write each split as JSONL and Parquet."""
    for split, recs in records.items():
        with open(out / f"{split}.jsonl", "w", encoding="utf-8", newline="\n") as f:
            f.writelines(dump_record(r) + "\n" for r in recs)
        write_parquet(recs, out / f"{split}.parquet")
