"""The dataset builder, loader, checker and CLI, on a real tiny org and the real 19 task generators."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seccrm.cli import main
from seccrm.cli.suite import prompts_summary
from seccrm.data import build_suite, check_suite, load_split, prompt_key
from seccrm.data.balance import answer_key, n_val, per_difficulty, val_indices
from seccrm.data.build import MAX_REDRAWS, make_pool, make_record
from seccrm.data.load import SPLITS
from seccrm.world.arms import DIFFICULTIES, HELD_OUT_TASKS, TASK_SKILLS, TRAIN_TASKS
from seccrm.world.rewards import gold_completion, score, score_details
from seccrm.world.tasks.base import Instance

# 8 per level: every (task, level) is exercised, and some easy pools repeat a prompt, so the build
# (and its rebuild with two workers) goes through redraws.
TRAIN_PER_TASK, TEST_PER_TASK = 24, 6
FILES = ("org.sqlite", "suite.json", *(f"{s}.{e}" for s in SPLITS for e in ("jsonl", "parquet")))


def build(out: Path, seed: int = 0) -> dict:
    return build_suite(out, seed=seed, size="tiny", train_per_task=TRAIN_PER_TASK,
                       test_per_task=TEST_PER_TASK, progress=False)


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("suite") / "s0"
    build(out)
    return out


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rewrite(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records))


# ----------------------------------------------------------------------------------------------
# Building
# ----------------------------------------------------------------------------------------------

def test_same_seed_same_bytes_other_seed_other_data(suite: Path, tmp_path: Path) -> None:
    # The second build runs `seccrm build` in another process with another string-hash seed (set and
    # dict orders differ there) and two worker processes: none of that may change a byte.
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    cmd = [sys.executable, "-m", "seccrm.cli", "build", "--out", str(tmp_path / "again"), "--size", "tiny",
           "--no-progress", "--workers", "2", "--train-per-task", str(TRAIN_PER_TASK),
           "--test-per-task", str(TEST_PER_TASK)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "lead_qualification" in done.stdout and "all" in done.stdout          # the counts table
    assert "distinct prompts:" in done.stdout and "no prompt in two splits" in done.stdout
    for name in FILES:
        assert (suite / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    build(tmp_path / "s1", seed=1)
    assert sha(tmp_path / "s1" / "org.sqlite") != sha(suite / "org.sqlite")
    a, b = ({r["id"]: r for s in ("train", "val") for r in read(d / f"{s}.jsonl")} for d in (suite, tmp_path / "s1"))
    assert set(a) == set(b)                                             # same plan (the val draw differs) ...
    differ = sum(a[k]["messages"] != b[k]["messages"] for k in a)
    assert differ > 0.9 * len(a)                                        # ... other instances


def test_records_splits_and_counts(suite: Path) -> None:
    splits = {s: read(suite / f"{s}.jsonl") for s in SPLITS}
    manifest = json.loads((suite / "suite.json").read_text())
    for split, recs in splits.items():
        for r in recs:
            assert set(r) == {"id", "task", "skill", "difficulty", "arm", "messages", "answer", "metadata"}
            assert r["skill"] == TASK_SKILLS[r["task"]] and r["arm"] == f"{r['skill']}/{r['difficulty']}"
            assert r["id"].startswith(f"{r['task']}-{r['difficulty']}-") and len(r["id"].rsplit("-", 1)[1]) == 5
            assert [m["role"] for m in r["messages"]] == ["system", "user"]
            assert r["metadata"]["org"] == "org.sqlite" and r["metadata"]["seed"] == 0
            assert r["answer"] and all(isinstance(x, str) for x in r["answer"])
            assert (r["task"] in HELD_OUT_TASKS) == (split == "test")
    ids = [r["id"] for recs in splits.values() for r in recs]
    assert len(ids) == len(set(ids))
    for task in TRAIN_TASKS:
        for d, pool in per_difficulty(TRAIN_PER_TASK).items():
            mine = sorted((r for s in ("train", "val") for r in splits[s]
                           if r["task"] == task and r["difficulty"] == d), key=lambda r: r["id"])
            assert [r["id"] for r in mine] == [f"{task}-{d}-{i:05d}" for i in range(pool)]
            val = {mine[i]["id"] for i in val_indices(0, task, d, [prompt_key(r["messages"]) for r in mine],
                                                        answers=[answer_key(r) for r in mine])}
            assert {r["id"] for r in splits["val"] if r["task"] == task and r["difficulty"] == d} == val
            assert len(val) == n_val(pool)                      # no shortfall: these pools have no repeats
    assert manifest["counts"]["test"] == {t: {d: 2 for d in DIFFICULTIES} for t in HELD_OUT_TASKS}
    assert len(splits["train"]) + len(splits["val"]) == TRAIN_PER_TASK * len(TRAIN_TASKS)


def test_no_prompt_in_two_splits_and_redraws_recorded(suite: Path) -> None:
    splits = {s: read(suite / f"{s}.jsonl") for s in SPLITS}
    manifest = json.loads((suite / "suite.json").read_text())
    where: dict[str, set[str]] = {}
    for split, recs in splits.items():
        for r in recs:
            where.setdefault(prompt_key(r["messages"]), set()).add(split)
    assert all(len(s) == 1 for s in where.values())
    for split, recs in splits.items():                      # suite.json's distinct counts are the files'
        for task, levels in manifest["distinct"][split].items():
            for d, n in levels.items():
                assert n == len({prompt_key(r["messages"]) for r in recs if (r["task"], r["difficulty"]) == (task, d)})
    # Within a pool, in index order: a kept draw is new, or the last draw when every draw repeated.
    by_pool: dict[tuple[str, str], list[dict]] = {}
    for r in sorted((r for recs in splits.values() for r in recs), key=lambda r: r["id"]):
        by_pool.setdefault((r["task"], r["difficulty"]), []).append(r)
    for (task, d), recs in by_pool.items():
        seen: set[str] = set()
        for r in recs:
            k, key = r["metadata"]["redraws"], prompt_key(r["messages"])
            assert 0 <= k <= MAX_REDRAWS and (key not in seen or k == MAX_REDRAWS), r["id"]
            seen.add(key)
        assert sum(r["metadata"]["redraws"] for r in recs) == manifest["redraws"][task][d]
    assert sum(v for t in manifest["redraws"].values() for v in t.values()) > 0     # redraws were exercised
    assert manifest["val_short"] == {}


def test_val_keeps_copies_of_a_prompt_together() -> None:
    keys = ["a"] * 5 + ["b"] * 3 + [f"u{i}" for i in range(12)]          # 20 instances: 5 go to val
    groups = {k: {i for i, x in enumerate(keys) if x == k} for k in set(keys)}
    a_in_val = 0
    for seed in range(30):
        val = val_indices(seed, "handle_time", "easy", keys)
        assert len(val) == n_val(20) == 5
        assert all(g <= val or not g & val for g in groups.values())
        a_in_val += groups["a"] <= val
    assert 0 < a_in_val < 30                # repeated prompts do go to val, sometimes, whole
    val = val_indices(0, "handle_time", "easy", keys, assigned={"b": "val", "u0": "train"})
    assert groups["b"] <= val and 8 not in val and len(val) == 5
    assert val_indices(0, "handle_time", "easy", ["x"] * 4) == set()     # one group larger than 25%: short
    unique = [str(i) for i in range(250)]
    assert len(val_indices(0, "t", "easy", unique)) == 63
    assert val_indices(0, "t", "easy", unique) == val_indices(0, "t", "easy", unique) != val_indices(1, "t", "easy", unique)


class FewQuestions:
    """A generator that can ask only ``n`` distinct questions."""

    def __init__(self, name: str, n: int) -> None:
        self.name, self.n = name, n

    def generate(self, org: object, difficulty: str, rng: random.Random) -> Instance:
        q = rng.randrange(self.n)
        return Instance(self.name, difficulty, [{"role": "user", "content": f"question {q}"}], [f"a{q}"], {"q": q})


def test_make_pool_redraws_repeats_and_keeps_them_when_it_must(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("seccrm.data.build.get_task", lambda name: FewQuestions(name, 3))
    recs = make_pool(None, "handle_time", "easy", 10, seed=0)
    assert make_pool(None, "handle_time", "easy", 10, seed=0) == recs
    keys = [prompt_key(r["messages"]) for r in recs]
    assert len(set(keys[:3])) == 3                          # 9 draws find the three questions first ...
    assert [r["metadata"]["redraws"] for r in recs[3:]] == [MAX_REDRAWS] * 7   # ... then every draw repeats
    for i, r in enumerate(recs):                            # each record is its recorded draw, rebuilt
        assert make_record(None, "handle_time", "easy", i, 0, r["metadata"]["redraws"]) == r
    assert len({r["metadata"]["q"] for r in make_pool(None, "handle_time", "easy", 3, seed=1)}) == 3


def test_build_keeps_repeated_prompts_in_one_split_and_reports_them(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import seccrm.world.tasks

    # knowledge_qa asks 4 questions, the same at every level: copies stay together within a pool and
    # across pools (a prompt placed by the easy pool keeps its split in the medium and hard pools).
    real = seccrm.world.tasks.get_task
    monkeypatch.setattr("seccrm.data.build.get_task", lambda n: FewQuestions(n, 4) if n == "knowledge_qa" else real(n))
    m = build_suite(tmp_path / "s", size="tiny", train_per_task=36, test_per_task=0, progress=False, workers=1)
    splits = {s: read(tmp_path / "s" / f"{s}.jsonl") for s in ("train", "val")}
    for d in DIFFICULTIES:
        kq = {s: [prompt_key(r["messages"]) for r in recs if (r["task"], r["difficulty"]) == ("knowledge_qa", d)]
              for s, recs in splits.items()}
        assert not set(kq["train"]) & set(kq["val"])
        assert len(kq["val"]) == n_val(12) - m["val_short"].get("knowledge_qa", {}).get(d, 0) == m["counts"]["val"]["knowledge_qa"][d]
        assert len(set(kq["train"])) + len(set(kq["val"])) == 4
        assert m["distinct"]["train"]["knowledge_qa"][d] + m["distinct"]["val"]["knowledge_qa"][d] == 4
        assert m["redraws"]["knowledge_qa"][d] >= 8 * MAX_REDRAWS      # 12 instances, 4 questions
    summary = prompts_summary(m)
    rows = [line.split() for line in summary.splitlines() if line.startswith("knowledge_qa")]
    assert [r[1:4] for r in rows] == [[d, "12", "4"] for d in DIFFICULTIES]
    assert summary.startswith(f"distinct prompts: {sum(v for sp in m['distinct'].values() for t in sp.values() for v in t.values())} of 576")


def test_datasets_loads_jsonl_and_parquet(suite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    want = read(suite / "train.jsonl")
    for fmt, ext in (("json", "jsonl"), ("parquet", "parquet")):
        ds = datasets.load_dataset(fmt, data_files={s: str(suite / f"{s}.{ext}") for s in SPLITS},
                                   cache_dir=str(tmp_path / fmt))
        assert {s: len(ds[s]) for s in SPLITS} == {s: len(read(suite / f"{s}.jsonl")) for s in SPLITS}
        row = ds["train"][0]
        assert row["id"] == want[0]["id"] and row["messages"] == want[0]["messages"]
        assert row["answer"] == want[0]["answer"]
        meta = row["metadata"]                              # Parquet: a JSON string; JSONL: a dict
        assert (json.loads(meta) if fmt == "parquet" else meta) == want[0]["metadata"]


# ----------------------------------------------------------------------------------------------
# Loading and scoring
# ----------------------------------------------------------------------------------------------

def test_load_split_scores_every_gold_answer_from_anywhere(suite: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SECCRM_ORG", raising=False)
    before = sha(suite / "org.sqlite")
    for split in SPLITS:
        for r in load_split(suite, split):
            d = score_details(r, "I checked the records. " + gold_completion(r))
            assert d["reward"] == 1.0, (r["id"], r["answer"], d)
    with pytest.raises(ValueError, match="unknown split"):
        load_split(suite, "dev")
    with pytest.raises(FileNotFoundError, match="seccrm build"):
        load_split(tmp_path, "train")
    assert sha(suite / "org.sqlite") == before


def test_crud_actions_on_the_real_org(suite: Path) -> None:
    """Hostile and wrong actions against real CRUD instances: 0.0 or 0.1, and the org file untouched."""
    before = sha(suite / "org.sqlite")
    crud = [r for r in load_split(suite, "train") + load_split(suite, "val") if r["skill"] == "CRUD"]
    assert {r["task"] for r in crud} == {"case_routing", "lead_routing", "wrong_stage_rectification"}
    for r in crud:
        gold = json.loads(r["answer"][0])
        assert score(r, gold_completion(r)) == 1.0
        field, value = next(iter(gold["fields"].items()))
        other = [json.loads(x["answer"][0])["fields"][field] for x in crud
                 if x["task"] == r["task"] and json.loads(x["answer"][0])["fields"][field] != value]
        if other:      # a value another instance needed: well formatted, wrong
            wrong = dict(gold, fields={field: other[0]})
            assert score(r, f"<answer>{json.dumps(wrong)}</answer>") == 0.1
        hostile = [dict(gold, fields={field: value + "'; DROP TABLE \"Case\"; --"}),
                   dict(gold, object="User"), dict(gold, fields={"Id": gold["id"]}),
                   dict(gold, id=gold["id"][:-1] + ("A" if gold["id"][-1] != "A" else "B")), dict(gold, op="delete")]
        for h in hostile:
            assert score(r, f"<answer>{json.dumps(h)}</answer>") == 0.0, h
        assert score(r, f"<answer>{json.dumps(gold)[:-1]}</answer>") == 0.0     # truncated JSON
    assert sha(suite / "org.sqlite") == before


# ----------------------------------------------------------------------------------------------
# The checker
# ----------------------------------------------------------------------------------------------

def test_check_passes_on_a_good_build(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_suite(suite, rebuild_per_arm=2) == []
    assert main(["check", str(suite)]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.fixture
def copy(suite: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(suite, out)
    return out


def problems_of(path: Path, check: str) -> list[str]:
    return [p for p in check_suite(path) if p.startswith(f"[{check}]")]


def test_check_reports_an_edited_gold_answer(copy: Path) -> None:
    recs = read(copy / "train.jsonl")
    i = next(k for k, r in enumerate(recs) if r["task"] == "handle_time")
    recs[i]["answer"] = [recs[i]["answer"][0][:-1] + ("A" if recs[i]["answer"][0][-1] != "A" else "B")]
    rewrite(copy / "train.jsonl", recs)
    assert any("train.jsonl changed after it was built" in p for p in problems_of(copy, "files"))
    gold = problems_of(copy, "gold")
    assert len(gold) == 1 and recs[i]["id"] in gold[0] and "scores 0.0" in gold[0]
    # The first record of each (split, task, level) is always among those rebuilt.
    assert any(recs[i]["id"] in p and "differs in answer" in p for p in problems_of(copy, "determinism"))


def test_check_reports_a_held_out_task_in_train_and_overlapping_ids(copy: Path) -> None:
    train, val, test = (read(copy / f"{s}.jsonl") for s in SPLITS)
    rewrite(copy / "train.jsonl", train + [test[0], val[0]])
    problems = problems_of(copy, "split")
    assert any(f"held-out task {test[0]['task']} must never be in train" in p for p in problems)
    assert any(test[0]["id"] in p and "also in" in p for p in problems)     # the test id, twice
    assert any(val[0]["id"] in p and "also in" in p for p in problems)
    assert any("expected 0" in p for p in problems_of(copy, "counts"))


def test_check_reports_a_prompt_shared_by_train_and_val(copy: Path) -> None:
    train, val = read(copy / "train.jsonl"), read(copy / "val.jsonl")
    train[0]["messages"] = val[3]["messages"]               # a planted copy of a val prompt in train
    rewrite(copy / "train.jsonl", train)
    leak = problems_of(copy, "leak")
    assert len(leak) == 1 and train[0]["id"] in leak[0] and val[3]["id"] in leak[0]
    assert "one split" in leak[0] and "seccrm build --out" in leak[0]
    assert problems_of(copy.parent / "nowhere", "leak") == []


def test_check_reports_nondeterminism_and_missing_files(copy: Path) -> None:
    val = read(copy / "val.jsonl")
    val[0]["messages"][1]["content"] += " (edited)"
    rewrite(copy / "val.jsonl", val)
    (copy / "test.parquet").unlink()
    assert any(val[0]["id"] in p and "differs in messages" in p for p in problems_of(copy, "determinism"))
    assert any("test.parquet is missing" in p and "seccrm build --out" in p for p in problems_of(copy, "files"))
    assert any("val.parquet does not hold the same rows" in p for p in problems_of(copy, "parquet"))
    assert check_suite(copy / "nowhere")[0].startswith("[files]")


# ----------------------------------------------------------------------------------------------
# The other commands
# ----------------------------------------------------------------------------------------------

def test_score_command(suite: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    test = read(suite / "test.jsonl")
    comp = tmp_path / "completions.jsonl"
    rows = [{"id": r["id"], "completion": gold_completion(r)} for r in test]
    rows[0]["completion"] = "no answer at all"
    comp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    details = tmp_path / "details.jsonl"
    assert main(["score", "--data", str(suite / "test.jsonl"), "--completions", str(comp),
                 "--details", str(details)]) == 0
    out = capsys.readouterr().out
    all_row = next(line for line in out.splitlines() if line.startswith("all")).split()
    n = len(test)
    assert int(all_row[1]) == n and float(all_row[3]) == pytest.approx(round((n - 1) / n, 3), abs=1e-3)
    assert [json.loads(x)["reward"] for x in details.read_text().splitlines()][:2] == [0.0, 1.0]

    comp.write_text(json.dumps(rows[0]) + "\n{not json\n")
    assert main(["score", "--data", str(suite / "test.jsonl"), "--completions", str(comp)]) == 2
    assert "line 2: not valid JSON" in capsys.readouterr().err
    comp.write_text(json.dumps({"id": "nope-easy-00000", "completion": "x"}) + "\n")
    assert main(["score", "--data", str(suite / "test.jsonl"), "--completions", str(comp)]) == 2
    assert "nope-easy-00000" in capsys.readouterr().err

    # --details pointing at an input is refused, and the input survives
    comp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = comp.read_text()
    assert main(["score", "--data", str(suite / "test.jsonl"), "--completions", str(comp),
                 "--details", str(comp)]) == 2
    assert "input of this command" in capsys.readouterr().err and comp.read_text() == before
    comp.write_text("")
    assert main(["score", "--data", str(suite / "test.jsonl"), "--completions", str(comp)]) == 2
    assert "no completions" in capsys.readouterr().err


def test_tasks_command_lists_all_19_and_the_optional_three(capsys: pytest.CaptureFixture[str]) -> None:
    from seccrm.world.arms import OPTIONAL_TASK_SKILLS
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in TASK_SKILLS:
        assert f"{name}  [" in out and "not registered" not in out
    for name in OPTIONAL_TASK_SKILLS:
        assert f"{name}  [CONFIDENTIALITY, train/val, optional" in out
    assert out.count("  hard  ") == len(TASK_SKILLS) + len(OPTIONAL_TASK_SKILLS)


class SkewedAnswers:
    """Half its golds are None and the rest mostly one answer: what a constant would game."""

    def __init__(self, name: str) -> None:
        self.name = name

    def generate(self, org: object, difficulty: str, rng: random.Random) -> Instance:
        q = rng.randrange(10**9)
        r = rng.random()
        answer = "None" if r < 0.5 else ("a0" if r < 0.8 else f"a{rng.randrange(40)}")
        return Instance(self.name, difficulty, [{"role": "user", "content": f"question {q}"}], [answer], {})


def test_make_pool_balances_none_and_caps_every_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    from collections import Counter

    from seccrm.data.balance import NONE_QUOTA, answer_cap, answer_key, stratified_order

    monkeypatch.setattr("seccrm.data.build.get_task", lambda name: SkewedAnswers(name))
    for size in (8, 20, 60):
        recs = make_pool(None, "top_issue_identification", "hard", size, seed=0)   # None allowed
        counts = Counter(answer_key(r) for r in recs)
        assert counts["None"] == int(size * NONE_QUOTA)
        assert max(counts.values()) <= answer_cap(size)
    recs = make_pool(None, "handle_time", "easy", 20, seed=0)                     # None not allowed
    assert Counter(answer_key(r) for r in recs)["None"] <= answer_cap(20)
    # Validation is a stratified prefix: every answer keeps its share within one instance.
    answers = ["None"] * 9 + ["x"] * 12 + [f"u{i}" for i in range(39)]
    order = stratified_order(0, "t", "easy", answers)
    assert sorted(order) == list(range(60))
    val = [answers[i] for i in order[:15]]
    for a, m in Counter(answers).items():
        assert abs(val.count(a) - m * 15 / 60) <= 1


def test_small_suite_passes_every_baseline_cap(tmp_path: Path) -> None:
    """On the small org no always-None, best-constant or best-position guess beats the cap on any
    (task, split, level): the builder's answer quotas and the generators' candidate lists hold."""
    from seccrm.data import build_suite, load_split
    from seccrm.data.baselines import over_cap, suite_baselines
    from seccrm.data.check import _check_baselines, _Problems

    build_suite(tmp_path, seed=0, size="small", train_per_task=60, test_per_task=48, progress=False)
    splits = {s: load_split(tmp_path, s) for s in SPLITS}
    table = suite_baselines(splits)
    assert len(table) == 16 * 3 * 2 + 3 * 3
    for key, b in table.items():
        for name in ("always_none", "best_constant"):
            assert not over_cap(b[name], int(b["n"]), exact=True), (key, name, b)
    p = _Problems()
    _check_baselines(splits, p)
    assert p.result() == []


def test_check_fails_a_suite_that_a_constant_games(tmp_path: Path) -> None:
    """A suite whose golds are mostly None (as before the answer quotas) fails the baseline check."""
    from seccrm.data.check import _check_baselines, _Problems

    recs = [{"id": f"lead_qualification-easy-{i:05d}", "task": "lead_qualification", "skill": "POLICY",
             "difficulty": "easy", "arm": "POLICY/easy", "answer": ["None"] if i % 2 else ["Budget"],
             "messages": [{"role": "user", "content": "q"}], "metadata": {}} for i in range(20)]
    p = _Problems()
    _check_baselines({"train": recs, "val": [], "test": []}, p)
    assert any("always None" in x and "50%" in x for x in p.result())


def test_position_cap_is_a_corrected_test_and_the_others_exact() -> None:
    from seccrm.data.baselines import over_cap

    assert not over_cap(2 / 5, 5, exact=False)                  # 2 lucky hits in 5: no evidence
    assert over_cap(30 / 60, 60, exact=False, tests=700)        # right half the time over 60: a bias
    assert not over_cap(14 / 30, 30, exact=False, tests=700)    # the best of 700 tries is high by chance
    assert not over_cap(3 / 15, 15, exact=True) and over_cap(4 / 15, 15, exact=True)
    assert not over_cap(1 / 5, 5, exact=True) and over_cap(2 / 5, 5, exact=True)
