"""pass@k and pass^k: the sampled probe's reliability measures, in `seccrm eval --mode agentic --k K`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seccrm.evaluation.evaluate import probe_result, probe_row


def test_pass_at_k_needs_one_success_and_pass_hat_k_needs_all() -> None:
    inst = {"id": "x", "task": "t"}
    mixed, all_right, none_right = (probe_row(inst, r) for r in ([1.0, 0.1, 1.0], [1.0, 1.0, 1.0], [0.1, 0.0, 0.1]))
    assert (mixed["pass_at_k"], mixed["pass_hat_k"]) == (1.0, 0.0)
    assert (all_right["pass_at_k"], all_right["pass_hat_k"]) == (1.0, 1.0)
    assert (none_right["pass_at_k"], none_right["pass_hat_k"]) == (0.0, 0.0)
    s = probe_result([mixed, all_right, none_right], k=3, temperature=0.7)["summary"]
    assert s["pass_at_k"] == pytest.approx(2 / 3) and s["pass_hat_k"] == pytest.approx(1 / 3)
    assert s["pass_hat_k"] <= s["correct_rate"] <= s["pass_at_k"]


@pytest.fixture(scope="module")
def agentic_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from seccrm.data import build_suite
    out = tmp_path_factory.mktemp("agentic")
    build_suite(out, seed=0, size="tiny", train_per_task=2, test_per_task=2, progress=False, mode="agentic")
    return out


def test_agentic_eval_reports_pass_at_k_and_pass_hat_k(agentic_suite: Path, tmp_path: Path) -> None:
    from seccrm.cli.app import main
    out = tmp_path / "eval.json"
    assert main(["eval", "--data", str(agentic_suite), "--model", "tiny", "--split", "test", "--out", str(out),
                 "--limit", "3", "--max-new-tokens", "6", "--max-turns", "2", "--k", "2",
                 "--device", "cpu", "--bf16", "off"]) == 0
    res = json.loads(out.read_text())
    sampled = res["sampled"]
    assert sampled["summary"]["k"] == 2 and len(sampled["rows"]) == 3
    for r in sampled["rows"]:
        assert r["pass_hat_k"] <= r["correct_rate"] <= r["pass_at_k"]


def test_the_agentic_probe_falls_back_to_the_message_loop(agentic_suite: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Where token-in/token-out play is refused (a template that does not append turns), the probe plays
    the message loop, as greedy evaluation does, instead of failing."""
    import seccrm.engine.episodes as episodes
    import seccrm.evaluation.agentic as agentic
    from seccrm.data import load_split
    from seccrm.engine.models import load_model_and_tokenizer
    from seccrm.world.episode import EpisodeSettings

    def refuse(*a: object, **k: object) -> None:
        raise ValueError("this chat template does not append turns")
    monkeypatch.setattr(episodes, "play_episode", refuse)
    model, tok = load_model_and_tokenizer("tiny")
    insts = load_split(agentic_suite, "test")[:2]
    res = agentic.sample_probe_episodes(model, tok, insts, k=2, progress=False,
                                        settings=EpisodeSettings(max_turns=1, max_new_tokens_per_turn=4))
    assert res["summary"]["n"] == 2
