import json
import math

import pytest

from seccrm.rl.metrics import JsonlLogger, MultiLogger, read_jsonl


def test_jsonl_logger_writes_namespaced_rows_and_nan_as_null(tmp_path):
    lg = JsonlLogger(tmp_path / "m.jsonl")
    lg.log({"train/reward": 0.5, "loss/policy": float("nan")}, step=1)
    lg.close()
    rows = read_jsonl(tmp_path / "m.jsonl")
    assert rows == [{"step": 1, "train/reward": 0.5, "loss/policy": None}]


def test_resume_truncates_later_steps_and_skips_a_torn_line(tmp_path):
    f = tmp_path / "m.jsonl"
    f.write_text("".join(json.dumps({"step": s, "x": s}) + "\n" for s in (1, 2, 3)) + '{"step": 4, "x"')
    assert [r["step"] for r in read_jsonl(f)] == [1, 2, 3]      # the torn line is skipped
    lg = JsonlLogger(f, truncate_after_step=2)                   # resumed from the step-2 checkpoint
    lg.log({"x": 30}, step=3)
    lg.close()
    assert [(r["step"], r["x"]) for r in read_jsonl(f)] == [(1, 1), (2, 2), (3, 30)]


def test_tensorboard_logger_writes_events(tmp_path):
    pytest.importorskip("tensorboard")
    from seccrm.rl.metrics import TensorBoardLogger
    lg = MultiLogger([TensorBoardLogger(tmp_path / "tb"), JsonlLogger(tmp_path / "m.jsonl")])
    lg.log({"train/reward": 0.25, "skip/me": "text", "bad": math.inf}, step=1)
    lg.close()
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert read_jsonl(tmp_path / "m.jsonl")[0]["bad"] is None
