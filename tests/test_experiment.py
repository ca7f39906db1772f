"""The curriculum comparison's orchestration: plan, evaluation subsets, order, resumption, warm-up
decision, and (slow) one real end-to-end experiment on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import seccrm.experiments.compare as ex
from seccrm.cli.common import train_sets
from seccrm.evaluation.evaluate import summarise
from seccrm.evaluation.report import write_experiment_report
from seccrm.files import write_json_atomic


def _inst(task: str, difficulty: str, i: int) -> dict[str, Any]:
    return {"id": f"{task}-{difficulty}-{i}", "task": task, "difficulty": difficulty}


def test_evaluation_sets_take_every_group_in_turn_at_random_within_and_are_deterministic() -> None:
    tasks = ["quote_approval", "invalid_config", "policy_violation_identification"]
    insts = [_inst(t, d, i) for t in tasks for d in ("easy", "medium", "hard") for i in range(6)]
    nine = ex.choose_eval_sets(insts, 9)
    assert {(i["task"], i["difficulty"]) for i in nine} == {(t, d) for t in tasks for d in ("easy", "medium", "hard")}
    assert ex.choose_eval_sets(list(reversed(insts)), 9, seed=0) != [] and ex.choose_eval_sets(insts, 9) == nine
    eighteen = ex.choose_eval_sets(insts, 18)
    assert all(sum(i["task"] == t and i["difficulty"] == d for i in eighteen) == 2
               for t in tasks for d in ("easy", "medium", "hard"))
    # within a group the instances are drawn at random, by the seed: not the first ones of the file
    assert {i["id"] for i in ex.choose_eval_sets(insts, 9, seed=1)} != {i["id"] for i in nine}
    assert {i["id"] for i in nine} != {i["id"] for i in insts if i["id"].endswith("-0")}
    assert len(ex.choose_eval_sets(insts, 500)) == len(insts)
    assert len({i["id"] for i in ex.choose_eval_sets(insts, 20)}) == 20


def test_make_plan_uses_the_preset_and_refuses_what_cannot_work(tmp_path: Path) -> None:
    plan = ex.make_plan(str(tmp_path), "smollm2", str(tmp_path / "e"))
    assert plan["curricula"] == ["sec", "uniform", "learnability"] and plan["seeds"] == [0, 1, 2, 3, 4]
    assert plan["steps"] == 12 and plan["eval_val"] == 200
    assert "model" not in plan["train"] and plan["train"]["keep_checkpoints"] == 0
    gpu = ex.make_plan(str(tmp_path), "/models/qwen", str(tmp_path / "g"), preset="gpu-exp", steps=7, seeds=[4])
    assert gpu["curricula"] == list(ex.ALL_CURRICULA) and gpu["steps"] == 7 and gpu["seeds"] == [4]
    with pytest.raises(ValueError, match="unknown curricula.*learnability"):
        ex.make_plan(str(tmp_path), "tiny", "x", curricula=["sec", "bogus"])
    with pytest.raises(ValueError, match="mini-batches"):
        ex.make_plan(str(tmp_path), "tiny", "x", train_overrides={"prompts_per_step": 3, "mini_batches": 2})
    with pytest.raises(ValueError, match="unknown experiment preset"):
        ex.make_plan(str(tmp_path), "tiny", "x", preset="laptop")


def test_merge_plan_extends_runs_but_refuses_other_settings(tmp_path: Path) -> None:
    old = ex.make_plan(str(tmp_path), "tiny", "e", curricula=["sec", "uniform"], seeds=[0])
    more = ex.make_plan(str(tmp_path), "tiny", "e", curricula=["ucb", "sec"], seeds=[1, 0])
    merged = ex.merge_plan(old, more)
    assert merged["curricula"] == ["sec", "uniform", "ucb"] and merged["seeds"] == [0, 1]
    with pytest.raises(ValueError, match=r"other settings \(steps\)"):
        ex.merge_plan(old, ex.make_plan(str(tmp_path), "tiny", "e", steps=99))
    with pytest.raises(ValueError, match="model"):
        ex.merge_plan(old, ex.make_plan(str(tmp_path), "smollm2", "e"))
    with pytest.raises(ValueError, match=r"\(train\)"):
        ex.merge_plan(old, ex.make_plan(str(tmp_path), "tiny", "e", train_overrides={"lr": 3e-5}))
    # the same effective training settings written differently (a default spelled out) are no change
    same = ex.make_plan(str(tmp_path), "tiny", "e", train_overrides={"clip_eps": 0.2, "eval_limit": 48})
    assert ex.merge_plan(old, same)["seeds"] == [0, 1, 2, 3, 4]   # the preset's seeds join seed 0


def test_evaluation_subsets_respect_the_prompt_limit(tiny_suite: Path) -> None:
    from seccrm.engine.models import load_tokenizer
    from seccrm.engine.rollout import encode_prompts
    plan = ex.make_plan(str(tiny_suite), "tiny", "x", eval_val=1000, eval_test=1000, eval_max_prompt_tokens=0)
    full = ex.Evaluator(plan).subsets
    tok = load_tokenizer("tiny")
    lengths = {s: [len(p) for p in encode_prompts(tok, [i["messages"] for i in full[s]])] for s in full}
    limit = sorted(lengths["val"] + lengths["test"])[len(lengths["val"] + lengths["test"]) // 2]   # the median
    plan["eval_max_prompt_tokens"] = plan["eval_test_max_prompt_tokens"] = limit
    cut = ex.Evaluator(plan).subsets
    for split in ("val", "test"):
        kept = {i["id"] for i in cut[split]}
        assert kept == {i["id"] for i, n in zip(full[split], lengths[split], strict=True) if n <= limit}
    assert 0 < sum(len(v) for v in cut.values()) < sum(len(v) for v in full.values())
    plan["eval_test_max_prompt_tokens"] = 0            # the test split's own limit: here none
    own = ex.Evaluator(plan).subsets
    assert own["val"] == cut["val"] and own["test"] == full["test"]
    # The CPU preset keeps the held-out prompts (longer: several policy articles) that its val limit would cut.
    cpu = ex.make_plan(str(tiny_suite), "tiny", "x")
    assert (cpu["eval_max_prompt_tokens"], cpu["eval_test_max_prompt_tokens"]) == (1024, 1536)
    assert ex.make_plan(str(tiny_suite), "tiny", "x", eval_max_prompt_tokens=900)["eval_test_max_prompt_tokens"] == 900


def test_evaluation_sets_are_stored_and_reused(tiny_suite: Path, tmp_path: Path) -> None:
    plan = ex.make_plan(str(tiny_suite), "tiny", "x", eval_val=5, eval_test=4, eval_max_prompt_tokens=0)
    first = ex.Evaluator(plan, tmp_path / "sets.json").subsets
    stored = json.loads((tmp_path / "sets.json").read_text())
    assert stored == {s: [i["id"] for i in v] for s, v in first.items()} and len(stored["test"]) == 4
    plan["eval_val"] = 9  # a later call reads the stored sets, whatever it would choose now
    again = ex.Evaluator(plan, tmp_path / "sets.json").subsets
    assert {s: [i["id"] for i in v] for s, v in again.items()} == stored
    (tmp_path / "sets.json").write_text(json.dumps({"val": ["nope"], "test": []}))
    with pytest.raises(ValueError, match="rebuilt"):
        ex.Evaluator(plan, tmp_path / "sets.json")


def test_train_settings_from_the_command_line_are_typed_and_checked() -> None:
    assert train_sets(["lr=3e-5", "group-size=4", "share_prompt=false", "bf16=off"]) == \
        {"lr": 3e-5, "group_size": 4, "share_prompt": False, "bf16": "off"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        train_sets(["learning_rate=1"])
    with pytest.raises(ValueError, match="--seeds"):
        train_sets(["seed=3"])


# ------------------------------------------------------------------ orchestration with fakes
class FakeEvaluator:
    """Writes evaluation files as the real one does; the base model's format rate is settable."""

    calls: list[str] = []
    base_format = 0.0

    def __init__(self, plan: dict[str, Any], sets_file: Path | None = None):
        self.plan = plan
        self.subsets: dict[str, list[dict[str, Any]]] = {"val": [], "test": []}

    def episodes(self) -> None:
        return None

    def run(self, model_spec: str, targets: dict[str, Path], label: str, limit: int = 0,
            probe: bool = True) -> dict[str, dict[str, Any]]:
        out = {}
        for split, f in targets.items():
            if not f.exists():
                FakeEvaluator.calls.append(f"{label}:{split}")
                # the base model writes a well-formed wrong answer (0.1) when it follows the format
                rewards = [0.1 * FakeEvaluator.base_format] * 4 if label == "base" else [1.0, 0.0, 1.0, 0.1]
                rows = [{"id": f"{split}-{i}", "task": "quote_approval", "skill": "POLICY", "difficulty": "easy",
                         "reward": r} for i, r in enumerate(rewards)]
                write_json_atomic(f, {"summary": summarise(rows), "rows": rows, "model": model_spec})
            out[split] = json.loads(f.read_text())
        return out


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Replace model work by fakes that leave the files the real code leaves."""
    record: dict[str, list[Any]] = {"train": [], "warmup": []}
    FakeEvaluator.calls = []
    monkeypatch.setattr(ex, "Evaluator", FakeEvaluator)

    def fake_train(plan: dict[str, Any], cur: str, seed: int, start: str, run_dir: Path) -> None:
        if record.get("fail_at") == [len(record["train"])]:
            raise RuntimeError("killed")
        record["train"].append((cur, seed, start))
        for step in (1, 2):
            ck = run_dir / "checkpoints" / f"step_{step:06d}"
            ck.mkdir(parents=True)
            for name in ("config.json", "optimizer.pt", "COMPLETE", "trainer_state.json"):
                (ck / name).write_text("{}")
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "train/reward": 0.1 * s,
                                               "train/accuracy": 0.0, "curriculum/p/POLICY/easy": 1.0}) + "\n"
                                               for s in (1, 2)))

    def fake_warmup(data: str, model: str, out: Path, steps: int, *a: Any, **k: Any) -> Path:
        record["warmup"].append(steps)
        (Path(out) / "model").mkdir(parents=True)
        (Path(out) / "model" / "config.json").write_text("{}")
        return Path(out) / "model"

    monkeypatch.setattr(ex, "_train", fake_train)
    monkeypatch.setattr("seccrm.experiments.compare.run_warmup", fake_warmup)
    return record


def _plan(tmp_path: Path, **kw: Any) -> dict[str, Any]:
    return ex.make_plan(str(tmp_path / "data"), "tiny", str(tmp_path / "exp"), **{"curricula": ["sec", "uniform"],
                        "seeds": [0, 1], "steps": 2, **kw})


def test_runs_are_seed_major_evaluated_finalised_and_skipped_when_done(
        tmp_path: Path, fakes: dict[str, list[Any]], capsys: pytest.CaptureFixture[str]) -> None:
    exp = ex.run_experiment(_plan(tmp_path))
    warm = str(exp / "warmup" / "model")
    assert fakes["train"] == [("sec", 0, warm), ("uniform", 0, warm), ("sec", 1, warm), ("uniform", 1, warm)]
    assert fakes["warmup"] == [ex.EXPERIMENT_PRESETS["cpu-exp"]["warmup_default_steps"]]  # auto: no answer block
    run = exp / "runs" / "sec" / "seed1"
    assert (run / "eval_val_step1.json").is_file() and (run / "eval_test.json").is_file()
    assert (run / "final_model" / "config.json").is_file() and not (run / "final_model" / "optimizer.pt").exists()
    assert not (run / "checkpoints").exists()
    timing = json.loads((run / "timing.json").read_text())
    assert timing["train_s"] >= 0 and timing["eval_s"] >= 0 and timing["total_s"] >= timing["train_s"]
    totals = json.loads((exp / "timings.json").read_text())
    assert set(totals) == {"eval_base_s", "warmup_s", "eval_warmup_s", "total_s"} | {
        f"{stage}/{c}/seed{s}" for stage in ("train", "eval") for c in ("sec", "uniform") for s in (0, 1)}
    err = capsys.readouterr().err
    assert "run 4/4 uniform/seed1: 2 steps" in err and "test acc" in err
    n_evals = len(FakeEvaluator.calls)
    ex.run_experiment(_plan(tmp_path))  # everything done: nothing trains or evaluates again
    assert len(fakes["train"]) == 4 and len(FakeEvaluator.calls) == n_evals and len(fakes["warmup"]) == 1
    assert "done before, skipped" in capsys.readouterr().err
    md = write_experiment_report(exp, figures=False).read_text()
    assert "| SEC (hold) | 2 seeds |" in md and "Does SEC beat uniform?" in md


def test_a_killed_experiment_continues_where_it_stopped(tmp_path: Path, fakes: dict[str, Any]) -> None:
    fakes["fail_at"] = [2]
    with pytest.raises(RuntimeError, match="killed"):
        ex.run_experiment(_plan(tmp_path))
    assert [(c, s) for c, s, _ in fakes["train"]] == [("sec", 0), ("uniform", 0)]
    fakes["fail_at"] = []
    ex.run_experiment(_plan(tmp_path, curricula=["sec", "uniform", "ucb"]))  # and add a curriculum
    assert [(c, s) for c, s, _ in fakes["train"]][2:] == [("ucb", 0), ("sec", 1), ("uniform", 1), ("ucb", 1)]
    stored = json.loads((tmp_path / "exp" / "experiment.json").read_text())
    assert stored["curricula"] == ["sec", "uniform", "ucb"]
    md = write_experiment_report(tmp_path / "exp", figures=False).read_text()
    assert "Does SEC beat uniform and UCB (DUMP)?" in md  # SEC against every other curriculum, not only uniform
    assert "SEC (hold) does not beat UCB (DUMP)** on validation accuracy" in md
    with pytest.raises(ValueError, match="other settings"):
        ex.run_experiment(_plan(tmp_path, steps=5))


def test_warmup_skipped_when_the_base_model_follows_the_format(tmp_path: Path, fakes: dict[str, Any]) -> None:
    FakeEvaluator.base_format = 1.0
    try:
        exp = ex.run_experiment(_plan(tmp_path, seeds=[0]))
    finally:
        FakeEvaluator.base_format = 0.0
    assert fakes["warmup"] == [] and {start for _, _, start in fakes["train"]} == {"tiny"}
    decision = json.loads((exp / "warmup_decision.json").read_text())
    assert decision["steps"] == 0 and "auto" in decision["reason"]


def test_explicit_warmup_steps_win(tmp_path: Path, fakes: dict[str, Any]) -> None:
    ex.run_experiment(_plan(tmp_path, seeds=[0], warmup_steps=3))
    assert fakes["warmup"] == [3]
    ex.run_experiment(_plan(tmp_path / "b", seeds=[0], warmup_steps=0))
    assert fakes["warmup"] == [3] and fakes["train"][-1][2] == "tiny"


# ------------------------------------------------------------------ the real thing, tiny
@pytest.mark.slow
def test_tiny_experiment_end_to_end_and_resume(tiny_suite: Path, tmp_path: Path) -> None:
    from seccrm.cli import main
    plan = ex.make_plan(str(tiny_suite), "tiny", str(tmp_path / "exp"), curricula=["sec", "uniform"], seeds=[0],
                        steps=2, warmup_steps=1, eval_val=3, eval_test=3,
                        train_overrides={"prompts_per_step": 2, "micro_batch_groups": 2, "group_size": 2, "max_new_tokens": 4,
                                         "save_every": 1, "max_prompt_tokens": 0})
    plan["eval_max_new_tokens"] = 4
    exp = ex.run_experiment(plan)
    run = exp / "runs" / "uniform" / "seed0"
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and "curriculum/p/POLICY/easy" in rows[0]
    test = json.loads((run / "eval_test.json").read_text())
    sec = json.loads((exp / "runs/sec/seed0/eval_test.json").read_text())
    assert [r["id"] for r in test["rows"]] == [r["id"] for r in sec["rows"]]  # same instances: pairable
    assert (run / "eval_val_step1.json").is_file() and (run / "final_model" / "model.safetensors").is_file()
    stamp = (run / "metrics.jsonl").stat().st_mtime_ns
    ex.run_experiment(plan)
    assert (run / "metrics.jsonl").stat().st_mtime_ns == stamp
    assert main(["report", str(exp)]) == 0
    text = (exp / "report.md").read_text()
    assert "| uniform | 1 seed |" in text and (exp / "evolution_sec.png").is_file()


@pytest.mark.slow
def test_an_agentic_suite_gives_an_agentic_experiment(tmp_path: Path) -> None:
    from seccrm.data import build_suite

    data = tmp_path / "agentic"
    build_suite(data, seed=0, size="tiny", train_per_task=6, test_per_task=3, progress=False, mode="agentic")
    plan = ex.make_plan(str(data), "tiny", str(tmp_path / "exp"), curricula=["sec"], seeds=[0], steps=1,
                        warmup_steps=1, eval_val=3, eval_test=2,
                        train_overrides={"max_turns": 2, "max_new_tokens": 12, "save_every": 1})
    assert plan["train"]["mode"] == "agentic" and plan["eval_max_prompt_tokens"] == 0
    with pytest.raises(ValueError, match="agentic suite"):
        ex.make_plan(str(data), "tiny", "x", train_overrides={"mode": "single"})
    exp = ex.run_experiment(plan)
    for path in (exp / "eval" / "base_val.json", exp / "eval" / "warmup_val.json",
                 exp / "runs" / "sec" / "seed0" / "eval_test.json"):
        res = json.loads(path.read_text())
        assert "agentic" in res and all("turns" in r for r in res["rows"]), path
    metrics = [json.loads(line) for line in (exp / "runs" / "sec" / "seed0" / "metrics.jsonl").open()]
    assert [m["step"] for m in metrics] == [1]
