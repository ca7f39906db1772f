"""The format warm-up: balanced over tasks, checked on a probe, stopped once the format is learned."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest


def test_balanced_order_takes_every_task_in_turn() -> None:
    from seccrm.rl.warmup import balanced_order

    insts = [{"task": t} for t in ["a"] * 10 + ["b"] * 3 + ["c"] * 2]
    order = balanced_order(insts, list(range(len(insts))), random.Random(0))
    assert sorted(order) == list(range(15))
    first = [insts[i]["task"] for i in order[:6]]
    assert sorted(first) == ["a", "a", "b", "b", "c", "c"]           # two full rounds before "a" repeats alone
    assert sorted(insts[i]["task"] for i in order[6:8]) == ["a", "b"]  # "c" ran out
    assert [insts[i]["task"] for i in order[8:]] == ["a"] * 7


@pytest.mark.slow
def test_warmup_checks_a_probe_and_stops_with_a_reason(tiny_suite: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import seccrm.rl.warmup as w
    from seccrm.data import load_split
    from seccrm.engine.models import load_model_and_tokenizer

    calls: list[int] = []
    rates = iter([0.0, 0.5, 0.95])

    def fake_probe(model: Any, tok: Any, insts: list[dict[str, Any]], max_new_tokens: int = 32) -> dict[str, float]:
        calls.append(len(insts))
        return {"warmup/format_rate": next(rates), "warmup/accuracy": 0.0, "warmup/answered": 1.0,
                "warmup/distinct": 1.0, "warmup/none_share": 0.0}
    monkeypatch.setattr(w, "probe_answers", fake_probe)
    model, tok = load_model_and_tokenizer("tiny")
    log = w.format_warmup(model, tok, load_split(tiny_suite, "train"), steps=20, batch_size=2, seed=0,
                          progress=False, check_every=2, probe_size=5, target_format=0.9)
    checks = [r for r in log if r.get("check")]
    assert [r["step"] for r in checks] == [0, 2, 4] and calls == [5, 5, 5]
    assert "format rate 0.95" in checks[-1]["stop"]
    assert max(r["step"] for r in log) == 4                           # stopped at the check, not at 20 steps


def test_answer_nll_equals_the_full_forward_and_trains_the_answer_tokens() -> None:
    import torch

    from seccrm.engine.models import load_model_and_tokenizer
    from seccrm.rl.warmup import answer_nll

    model, _ = load_model_and_tokenizer("tiny")
    model.eval()
    prompt, target = [5, 9, 13, 21, 3, 8], [40, 41, 42]
    nll, n = answer_nll(model, prompt, target)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + target])).logits[0].float()
    ref = -torch.log_softmax(logits[len(prompt) - 1:-1], -1).gather(1, torch.tensor(target)[:, None]).sum()
    assert n == 3 and torch.allclose(nll, ref, atol=1e-4)
    nll.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_masked_answer_nll_counts_only_the_masked_tokens() -> None:
    import torch

    from seccrm.engine.models import load_model_and_tokenizer
    from seccrm.rl.warmup import answer_nll

    model, _ = load_model_and_tokenizer("tiny")
    model.eval()
    prompt, target, mask = [5, 9, 13, 21], [40, 41, 42, 43, 44], [1, 1, 0, 0, 1]
    nll, n = answer_nll(model, prompt, target, mask)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + target])).logits[0].float()
    per = -torch.log_softmax(logits[len(prompt) - 1:-1], -1).gather(1, torch.tensor(target)[:, None])[:, 0]
    assert n == 3 and torch.allclose(nll, per[[0, 1, 4]].sum(), atol=1e-4)


@pytest.mark.slow
def test_episode_warmup_learns_from_the_scripted_analysts(tmp_path: Path) -> None:
    """On an agentic suite the targets are the analysts' whole episodes: the loss covers exactly their
    turns (the decoded masked tokens are the queries and the answer), never the sandbox's results."""
    from seccrm.data import build_suite, load_split
    from seccrm.engine.models import load_model_and_tokenizer
    from seccrm.rl.warmup import episode_demonstrations, format_warmup, run_warmup

    data = tmp_path / "agentic"
    build_suite(data, seed=0, size="tiny", train_per_task=4, test_per_task=2, progress=False, mode="agentic")
    insts = load_split(data, "train")
    model, tok = load_model_and_tokenizer("tiny")
    demos = episode_demonstrations(tok, insts, data / "org.sqlite")
    assert len(demos) == len(insts)                                   # every training episode is solved
    for i, (_prompt, cont, mask) in list(demos.items())[:20]:
        said = tok.decode([t for t, m in zip(cont, mask, strict=True) if m])
        heard = tok.decode([t for t, m in zip(cont, mask, strict=True) if not m])
        assert said.count("<execute>") >= 1 and said.rstrip().endswith("</answer>")
        assert "<result>" in heard and "<result>" not in said
        assert insts[i]["answer"][0].split(",")[0][:10] in said
    before = {k: v.clone() for k, v in model.state_dict().items()}
    log = format_warmup(model, tok, insts, steps=2, batch_size=2, progress=False, episodes_org=data / "org.sqlite")
    assert all(r["warmup/loss"] > 0 for r in log if "warmup/loss" in r)
    assert any((before[k] != v).any() for k, v in model.state_dict().items())
    out = run_warmup(str(data), "tiny", tmp_path / "w", steps=1, batch_size=2, lr=1e-4, check_every=1, probe_size=2)
    import json
    rows = [json.loads(x) for x in (tmp_path / "w" / "warmup_metrics.jsonl").read_text().splitlines()]
    assert "warmup/queried" in rows[0] and (out / "config.json").exists()
