"""The main job end to end on a tiny random model: every stage, the report, and resuming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _eval_file(out: Path, stage: str, split: str) -> Path:
    """Where the demo (an experiment with one run) keeps a stage's evaluation."""
    return out / "runs" / "sec" / "seed0" / f"eval_{split}.json" if stage == "sec" else out / "eval" / f"{stage}_{split}.json"


def _demo(out: Path) -> Path:
    from seccrm.experiments.demo import run_demo
    return run_demo(out, model="tiny", seed=0, steps=2, warmup_steps=1, size="tiny", train_per_task=6,
                    test_per_task=3, eval_val=4, eval_test=6, bf16="auto")


def test_demo_runs_every_stage_writes_the_report_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    out = tmp_path / "demo"
    md = _demo(out)
    # The run said what it would cost on this CPU, and one line per stage said what was left.
    err = capsys.readouterr().err
    assert "estimated total" in err and err.count("whole run:") == 5
    assert json.loads((out / "timings.json").read_text())["estimated_total_s"] > 0
    assert set(json.loads((out / "eval" / "calibration.json").read_text())) >= {"greedy_s", "sample_s"}
    text = md.read_text()
    run = out / "runs" / "sec" / "seed0"
    for stage in ("base", "warmup", "sec"):
        for split in ("val", "test"):
            res = json.loads((_eval_file(out, stage, split)).read_text())
            assert res["summary"]["n"] == len(json.loads((out / "eval" / "sets.json").read_text())[split])
            assert res["dtype"] in ("bfloat16", "float32")
    # The three tables and the plots, with the stages as rows.
    assert "## Overall" in text and "## Held-out POLICY tasks" in text and "## Training" in text
    assert "After format warm-up" in text and "SEC" in text
    pngs = sorted(out.glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == PNG_MAGIC for p in pngs)
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").open()] == [1, 2]
    assert (run / "final_model" / "config.json").is_file() and not (run / "checkpoints").exists()
    info = json.loads((out / "experiment.json").read_text())
    assert info["precision"] in ("mixed", "fp32") and "CPU cores" in info["machine"] and info["preset"] == "demo"
    assert "| precision |" in text and "| preset | demo |" in text and "Reduced experiment" not in text

    # A second call finds every stage done: nothing is trained or evaluated again.
    evals = [*(out / "eval").glob("*.json"), *run.glob("eval_*.json")]
    stamps = {p: p.stat().st_mtime_ns for p in evals}
    _demo(out)
    assert {p: p.stat().st_mtime_ns for p in evals} == stamps
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    # `seccrm report` on the demo's directory (an experiment with one run) writes the run report again.
    from seccrm.cli import main
    md.unlink()
    assert main(["report", str(out)]) == 0 and md.read_text() == text


def test_agentic_demo_plays_episodes_in_every_stage_and_reports_them(tmp_path: Path) -> None:
    from seccrm.experiments.demo import run_demo

    out = tmp_path / "agentic"
    md = run_demo(out, model="tiny", seed=0, mode="agentic", steps=1, warmup_steps=1, size="tiny",
                  train_per_task=6, test_per_task=3, eval_val=4, eval_test=3, eval_base=2, probe_n=2, probe_k=2,
                  eval_max_new_tokens=12, train_overrides={"max_new_tokens": 12, "max_turns": 2}, bf16="off")
    assert json.loads((out / "data" / "suite.json").read_text())["agentic"]
    for stage in ("base", "warmup", "sec"):
        path = _eval_file(out, stage, "val")
        res = json.loads(path.read_text())
        assert res["agentic"]["turns"] >= 1 and all("turns" in r for r in res["rows"])
        trajectories = path.with_name(f"{path.stem}_trajectories.jsonl").read_text().splitlines()
        assert len(trajectories) == res["summary"]["n"]
    assert json.loads(_eval_file(out, "sec", "val").read_text())["probe"]["summary"]["k"] == 2
    metrics = [json.loads(line) for line in (out / "runs" / "sec" / "seed0" / "metrics.jsonl").open()]
    assert [m["step"] for m in metrics] == [1]
    text = md.read_text()
    assert "## Episodes (agentic mode)" in text and "### What the model did" in text
    with pytest.raises(ValueError, match="agentic demo"):
        run_demo(out, model="tiny", mode="single", steps=1)
    with pytest.raises(ValueError, match="unknown demo settings"):
        run_demo(tmp_path / "other", model="tiny", size="tiny", train_per_task=6, test_per_task=3, probes=3)
