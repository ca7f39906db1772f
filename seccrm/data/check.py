"""The suite checker: what ``seccrm check DIR`` verifies, each problem with how to fix it.

Like Gymnasium's env checker, it returns readable problems rather than raising on the first one:
an empty list means the suite is sound. Checked: files and their recorded hashes, that the agents'
copy of the org (``agent_org.sqlite``) holds none of the hidden columns and was made from the org, record format,
the split rules (held-out tasks only in test, no id and no prompt in two splits), counts and distinct
prompts against suite.json, that every gold answer
scores 1.0 with ``seccrm.world.rewards``, that None is the gold of at most 20% of every (split, task,
level) on any org, that every id in an answer exists in the org with the right
prefix, the Parquet twins, determinism (a sample of instances rebuilt from the recorded seed), and
that no trivial guess (always None, the best constant, the best fixed position among the prompt's
candidates) beats ``seccrm.data.baselines.MAX_BASELINE`` on any (task, split, level): not checked for the
``tiny`` org, whose handful of agents and records exists to make tests fast, not to be learned from.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from seccrm.data.balance import ANSWER_CAP, n_val, per_difficulty, prompt_key
from seccrm.data.baselines import (
    BASELINES,
    MAX_BASELINE,
    NONE,
    POSITIONS,
    baseline_title,
    over_cap,
    suite_baselines,
)
from seccrm.data.build import RECORD_KEYS, dump_record, make_record
from seccrm.data.load import AGENT_ORG_FILE, MANIFEST_FILE, ORG_FILE, SPLITS
from seccrm.files import read_jsonl, sha256_file
from seccrm.world.agent_org import agent_copy_problems
from seccrm.world.arms import ALL_TASK_SKILLS, DIFFICULTIES, HELD_OUT_TASKS, arm_name, train_tasks
from seccrm.world.episode import question_only, schema_for
from seccrm.world.org import open_org
from seccrm.world.org.schema import ID_PREFIXES, object_of_id
from seccrm.world.references import rewrite_levels
from seccrm.world.rewards import (
    InstanceError,
    attach_org,
    gold_completion,
    instance_answer_kind,
    score_details,
    scratch_org,
)
from seccrm.world.tasks.base import Org
from seccrm.world.tasks.rendering import get_rendering

REBUILD = "{rebuild}"   # replaced by the exact `seccrm build ...` command that remakes this suite
MAX_PER_CHECK = 5   # problems listed per kind of check; the rest are counted


class _Problems:
    """Problems grouped by check, capped per check so one systematic fault does not drown the rest."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.counts: Counter[str] = Counter()
        self.rebuild = "rebuild the suite with `seccrm build`"

    def add(self, check: str, message: str) -> None:
        self.counts[check] += 1
        if self.counts[check] <= MAX_PER_CHECK:
            self.items.append(f"[{check}] " + message.replace(REBUILD, self.rebuild))

    def result(self) -> list[str]:
        extra = [f"[{c}] ... and {n - MAX_PER_CHECK} more like these" for c, n in self.counts.items()
                 if n > MAX_PER_CHECK]
        return self.items + extra


def expected_counts(manifest: dict[str, Any]) -> dict[str, dict[str, dict[str, int]]]:
    """counts[split][task][difficulty] that the manifest's parameters (and val shortfalls) imply."""
    out: dict[str, dict[str, dict[str, int]]] = {s: {} for s in SPLITS}
    short = manifest.get("val_short", {})
    for task in train_tasks(manifest.get("optional_skills", [])):
        pools = per_difficulty(manifest["train_per_task"])
        val = {d: n_val(n) - short.get(task, {}).get(d, 0) for d, n in pools.items()}
        out["val"][task] = val
        out["train"][task] = {d: n - val[d] for d, n in pools.items()}
    for task in HELD_OUT_TASKS:
        out["test"][task] = per_difficulty(manifest["test_per_task"])
    return out


def check_suite(data_dir: str | Path, rebuild_per_arm: int = 1) -> list[str]:
    """Problems with the suite in ``data_dir`` (empty list: all good).

    ``rebuild_per_arm`` instances of each (split, task, difficulty) are regenerated from the recorded
    seed and compared with the files, field by field.
    """
    d = Path(data_dir)
    p = _Problems()
    if not (d / MANIFEST_FILE).is_file():
        return [f"[files] {d / MANIFEST_FILE} is missing: {d} is not a built suite; build one with "
                f"`seccrm build --out {d}`"]
    manifest = json.loads((d / MANIFEST_FILE).read_text())
    p.rebuild = (f"rebuild it with `seccrm build --out {d} --seed {manifest.get('seed')} --size "
                 f"{manifest.get('size')} --train-per-task {manifest.get('train_per_task')} "
                 f"--test-per-task {manifest.get('test_per_task')}"
                 f"{' --mode agentic' if manifest.get('mode') == 'agentic' else ''}"
                 f"{' --rendering ' + manifest['rendering'] if manifest.get('rendering', 'full') != 'full' else ''}`")
    for name, digest in sorted(manifest.get("sha256", {}).items()):
        if not (d / name).is_file():
            p.add("files", f"{name} is missing; {REBUILD}")
        elif sha256_file(d / name) != digest:
            p.add("files", f"{name} changed after it was built (sha256 differs from suite.json); {REBUILD}")
    if not (d / ORG_FILE).is_file():
        return p.result()
    if AGENT_ORG_FILE in manifest.get("sha256", {}) and (d / AGENT_ORG_FILE).is_file():
        for problem in agent_copy_problems(d / ORG_FILE, d / AGENT_ORG_FILE):
            p.add("agent-org", f"{problem}: agents could read the answer key; {REBUILD}")
    splits: dict[str, list[dict[str, Any]]] = {}
    for split in SPLITS:
        try:
            splits[split] = read_jsonl(d / f"{split}.jsonl") if (d / f"{split}.jsonl").is_file() else []
        except ValueError as e:
            p.add("format", f"{e}; {REBUILD}")
            splits[split] = []
    _check_records(splits, manifest, p)
    _check_shared_prompts(splits, p)
    _check_counts(splits, manifest, p)
    _check_answers(d, splits, p)
    _check_none_share(splits, p)
    _check_parquet(d, splits, p)
    _check_determinism(d, splits, manifest, rebuild_per_arm, p)
    for recs in splits.values():
        attach_org(recs, d)
    if manifest.get("size") != "tiny":   # the tiny org (tests) has too few agents and records for the caps
        _check_baselines(splits, p)
    return p.result()


def _check_none_share(splits: dict[str, list[dict[str, Any]]], p: _Problems) -> None:
    """None is the gold of at most ANSWER_CAP of every (split, task, level), rounded up to a whole
    instance (``shared/specs/crm-tasks.md``), on every org size: the builder's quota holds anywhere."""
    cells: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])   # [None golds, instances]
    for split, recs in splits.items():
        for r in recs:
            if isinstance(r.get("answer"), list) and r.get("task") in ALL_TASK_SKILLS and r.get("difficulty"):
                cell = cells[(split, r["task"], r["difficulty"])]
                cell[0] += r["answer"] == [NONE]
                cell[1] += 1
    for (split, task, diff), (k, n) in sorted(cells.items()):
        if over_cap(k / n, n, exact=True, cap=ANSWER_CAP):
            k_all, n_all = (sum(c[i] for (s, t, _), c in cells.items() if (s, t) == (split, task)) for i in (0, 1))
            p.add("none-share", f"{split}: {task}/{diff}: None is the gold of {k} of {n} instances ({k / n:.0%}; "
                  f"{k_all / n_all:.0%} of the task's {n_all} in {split}), above the {ANSWER_CAP:.0%} cap: "
                  f"always answering None would score that much. {REBUILD} with the current seccrm; if it "
                  f"persists, {task}'s generator has too few distinct {diff} questions with another answer "
                  f"on this org (the builder fills the slots it cannot fill otherwise with None): give that "
                  f"level more questions in seccrm/world/tasks/, or build another org (--size, --seed)")


def baseline_rows(splits: dict[str, list[dict[str, Any]]]) -> list[list[Any]]:
    """Per task (all levels of each split pooled): n and the three baselines' accuracy, by split."""

    table = suite_baselines(splits)
    pooled: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (task, split, _), b in table.items():
        for k in (*BASELINES, "n"):
            pooled[(task, split)][k] += b[k] * (b["n"] if k != "n" else 1.0)
    rows = []
    for task in ALL_TASK_SKILLS:
        for split in SPLITS:
            c = pooled.get((task, split))
            if c:
                rows.append([task, split, int(c["n"]), *[c[b] / c["n"] for b in BASELINES]])
    return rows


def _check_baselines(splits: dict[str, list[dict[str, Any]]], p: _Problems) -> None:
    """No trivial guess beats the cap on any (task, split, level): always None, best constant, position."""

    if not all(all(k in r for k in RECORD_KEYS) and r["task"] in ALL_TASK_SKILLS for rs in splits.values() for r in rs):
        return   # the format check reports it
    table = suite_baselines(splits)
    tests = len(table) * len(POSITIONS)   # every position in every cell: the best of them is high by chance
    for (task, split, diff), b in sorted(table.items()):
        n = int(b["n"])
        for name in BASELINES:
            if over_cap(b[name], n, exact=name != "position", tests=tests):
                p.add("baselines", f"{split}: {task}/{diff}: the {baseline_title(name, split)} baseline scores "
                      f"{b[name]:.0%} of {n} instances, above the {MAX_BASELINE:.0%} cap: a model could game "
                      f"it without reading the question. Rebuild with the current builder (it balances "
                      f"answers); if it persists, the task's generator needs more candidates or "
                      f"a random order")


def _check_records(splits: dict[str, list[dict[str, Any]]], manifest: dict[str, Any], p: _Problems) -> None:
    """Record keys and labels, split membership of held-out tasks, ids unique across splits."""
    seen: dict[str, str] = {}
    for split, recs in splits.items():
        for n, r in enumerate(recs, 1):
            where = f"{split}.jsonl line {n} (id {r.get('id')})"
            missing = [k for k in RECORD_KEYS if k not in r]
            if missing:
                p.add("format", f"{where} lacks {', '.join(missing)}; {REBUILD}")
                continue
            task = r["task"]
            if task not in ALL_TASK_SKILLS or r["difficulty"] not in DIFFICULTIES:
                p.add("format", f"{where}: unknown task {task!r} or difficulty {r['difficulty']!r}")
                continue
            if r["skill"] != ALL_TASK_SKILLS[task] or r["arm"] != arm_name(ALL_TASK_SKILLS[task], r["difficulty"]):
                p.add("format", f"{where}: skill/arm {r['skill']}/{r['arm']} do not match task {task}")
            if split in ("train", "val") and task in HELD_OUT_TASKS:
                p.add("split", f"{where}: held-out task {task} must never be in {split}; it belongs to "
                      f"test only (seccrm.world.arms.HELD_OUT_TASKS); {REBUILD}")
            if split == "test" and task not in HELD_OUT_TASKS:
                p.add("split", f"{where}: training task {task} is in test; test holds only "
                      f"{', '.join(HELD_OUT_TASKS)}")
            if r["id"] in seen:
                p.add("split", f"{where}: id also in {seen[r['id']]}; an instance must be in one split only")
            seen[r["id"]] = f"{split}.jsonl"
            meta = r["metadata"] if isinstance(r["metadata"], dict) else {}
            if meta.get("seed") != manifest.get("seed") or meta.get("org") != ORG_FILE:
                p.add("format", f"{where}: metadata seed/org {meta.get('seed')}/{meta.get('org')} differ "
                      f"from suite.json ({manifest.get('seed')}/{ORG_FILE})")


def _check_shared_prompts(splits: dict[str, list[dict[str, Any]]], p: _Problems) -> None:
    """No prompt (the exact messages) in two splits: a prompt in train and val rewards memorising."""
    first: dict[str, tuple[str, str]] = {}   # prompt key -> (split, id) of its first record
    for split, recs in splits.items():
        for n, r in enumerate(recs, 1):
            if not isinstance(r.get("messages"), list):
                continue   # the format check reports it
            key = prompt_key(r["messages"])
            other = first.setdefault(key, (split, str(r.get("id"))))
            if other[0] != split:
                p.add("leak", f"{split}.jsonl line {n} (id {r.get('id')}) has the same prompt (messages) as "
                      f"{other[0]}.jsonl's {other[1]}: a model that memorised the {other[0]} answer scores on "
                      f"{split} without generalising. All copies of a prompt must be in one split: {REBUILD} "
                      f"(the builder redraws repeats and keeps copies together), or move the copies yourself")


def _check_counts(splits: dict[str, list[dict[str, Any]]], manifest: dict[str, Any], p: _Problems) -> None:
    """Instances per (split, task, level) as the parameters imply (an agentic suite: as suite.json says,
    after its duplicate episodes were dropped); distinct prompts as suite.json says."""
    want = manifest["counts"] if manifest.get("mode") == "agentic" else expected_counts(manifest)
    for split, recs in splits.items():
        got: dict[str, Counter[str]] = defaultdict(Counter)
        keys: dict[tuple[str, str], set[str]] = defaultdict(set)
        for r in recs:
            got[r.get("task", "?")][r.get("difficulty", "?")] += 1
            if isinstance(r.get("messages"), list):
                keys[(r.get("task", "?"), r.get("difficulty", "?"))].add(prompt_key(r["messages"]))
        for task, levels in sorted(manifest.get("distinct", {}).get(split, {}).items()):
            for diff, n in sorted(levels.items()):
                if len(keys[(task, diff)]) != n:
                    p.add("counts", f"{split}: {task}/{diff} has {len(keys[(task, diff)])} distinct prompts, "
                          f"suite.json says {n}; {REBUILD}")
        for task in sorted(set(want[split]) | set(got)):
            for diff in DIFFICULTIES:
                w, g = want[split].get(task, {}).get(diff, 0), got[task][diff]
                if w != g:
                    p.add("counts", f"{split}: {task}/{diff} has {g} instances, expected {w} for "
                          f"train_per_task={manifest['train_per_task']}, test_per_task={manifest['test_per_task']}"
                          f"; {REBUILD}")


def _check_answers(d: Path, splits: dict[str, list[dict[str, Any]]], p: _Problems) -> None:
    """Every gold answer scores 1.0, and every id it names exists in the org with the right prefix."""

    org = scratch_org(d / ORG_FILE)
    org_path = str((d / ORG_FILE).resolve())
    for split, recs in splits.items():
        for n, r in enumerate(recs, 1):
            if not all(k in r for k in RECORD_KEYS) or r["task"] not in ALL_TASK_SKILLS:
                continue   # already reported by _check_records
            where = f"{split}.jsonl line {n} (id {r['id']})"
            inst = {**r, "metadata": {**r["metadata"], "org_path": org_path}}
            try:
                kind = instance_answer_kind(inst)
                details = score_details(inst, gold_completion(inst, kind), kind)
            except InstanceError as e:
                p.add("gold", f"{where}: the instance cannot be scored: {e}")
                continue
            if details["reward"] != 1.0:
                p.add("gold", f"{where}: its gold answer {r['answer']!r} scores {details['reward']} "
                      f"({details['error']}); the task generator and the reward disagree about the "
                      f"{kind.kind} answer format: fix the task or seccrm/world/rewards.py, then rebuild")
            for rid, prefix in _answer_ids(r["answer"], kind):
                obj = object_of_id(rid) if isinstance(rid, str) else None
                if not isinstance(rid, str) or (prefix and not rid.startswith(prefix)):
                    p.add("ids", f"{where}: answer id {rid!r} should be an id starting with {prefix}")
                elif obj is None or not org.exists(obj, rid):
                    p.add("ids", f"{where}: answer id {rid} does not exist in {ORG_FILE} (an edited file, or "
                          f"an org and task files from different builds?); {REBUILD}")


def _answer_ids(answer: list[str], kind: Any) -> list[tuple[str, str | None]]:
    """(id, required prefix) pairs an answer names: ids of id kinds, the target and owner of actions."""
    if kind.kind in ("id", "id_list"):
        return [(a, kind.prefix) for a in answer if a != "None"]
    if kind.kind == "action":
        try:
            act = json.loads(answer[0])
            out: list[tuple[str, str | None]] = [(act["id"], ID_PREFIXES[act["object"]])]
            out += [(v, ID_PREFIXES["User"]) for f, v in act["fields"].items() if f.endswith("OwnerId")]
            return out
        except (ValueError, KeyError, TypeError, AttributeError):
            return []   # the gold check reports an unparsable action
    return []


def _check_parquet(d: Path, splits: dict[str, list[dict[str, Any]]], p: _Problems) -> None:
    """The Parquet twins hold the same rows as the JSONL files."""
    import pyarrow.parquet as pq

    for split, recs in splits.items():
        path = d / f"{split}.parquet"
        if not path.is_file():
            continue   # the files check reports it
        rows = pq.read_table(path).to_pylist()
        for row in rows:
            row["metadata"] = json.loads(row["metadata"])
        if len(rows) != len(recs):
            p.add("parquet", f"{path.name} has {len(rows)} rows, {split}.jsonl {len(recs)}; {REBUILD}")
            continue
        bad = next((r.get("id") for row, r in zip(rows, recs, strict=True) if row != r), None)
        if bad is not None:
            p.add("parquet", f"{path.name} does not hold the same rows as {split}.jsonl (first difference: "
                  f"{bad}); {REBUILD}")


def _check_determinism(d: Path, splits: dict[str, list[dict[str, Any]]], manifest: dict[str, Any],
                       per_arm: int, p: _Problems) -> None:
    """Rebuild ``per_arm`` evenly spread instances of each (split, task, difficulty) and compare."""

    try:
        rendering = get_rendering(manifest.get("rendering", "full"))   # suites built before renderings: full
    except ValueError as e:
        p.add("determinism", f"suite.json: {e}; {REBUILD}")
        return
    org = Org(open_org(d / ORG_FILE), rendering=rendering)
    try:
        if str(org.meta.get("seed")) != str(manifest.get("seed")):
            p.add("determinism", f"{ORG_FILE} was built with seed {org.meta.get('seed')}, suite.json says "
                  f"{manifest.get('seed')}; {REBUILD}")
            return
        agentic = manifest.get("mode") == "agentic"
        schema = schema_for(d / ORG_FILE) if agentic else None
        for split, recs in splits.items():
            groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
            for r in recs:
                if all(k in r for k in RECORD_KEYS) and r["task"] in ALL_TASK_SKILLS:
                    groups[(r["task"], r["difficulty"])].append(r)
            for _, group in sorted(groups.items()):
                k = min(per_arm, len(group))
                for r in (group[i * len(group) // k] for i in range(k)):
                    _compare_rebuilt(org, r, split, manifest["seed"], p, schema, d / ORG_FILE)
    finally:
        org.conn.close()


def _compare_rebuilt(org: Any, r: dict[str, Any], split: str, seed: int, p: _Problems,
                     schema: str | None = None, org_file: Path | None = None) -> None:
    try:
        index = int(str(r["id"]).rsplit("-", 1)[1])
        redraw = r["metadata"].get("redraws", 0) if isinstance(r["metadata"], dict) else 0
        again = make_record(org, r["task"], r["difficulty"], index, seed, redraw)
        if schema is not None and org_file is not None:         # an agentic suite: its question-only form,
            again = rewrite_levels([question_only(again, schema)], org_file)[0]   # rewritten for its level
    except Exception as e:  # noqa: BLE001  (report any generator failure as a problem)
        p.add("determinism", f"{split}: rebuilding {r['id']} failed: {type(e).__name__}: {e}")
        return
    if dump_record(again) != dump_record(r):
        keys = [k for k in RECORD_KEYS if again.get(k) != r.get(k)]
        p.add("determinism", f"{split}: {r['id']} rebuilt from seed {seed} differs in {', '.join(keys)}: "
              f"the file was edited, the task's code changed since the build ({REBUILD}), or task {r['task']} is not deterministic "
              f"(it must draw randomness only from the rng it is given and iterate in a fixed order)")
