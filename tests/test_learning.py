"""Learning tests: the real trainer raises the reward on tasks where learning is certain, and does not
when one of its mechanisms is broken.

A test that only checks that a parameter moved passes with the advantage's sign flipped, with the
log-probs cut from the graph or with the loss mask over the wrong tokens. These tests train a tiny
random model with `seccrm.rl.trainer.Trainer` (its rollouts, verifier, GRPO advantages, loss mask,
log-probs, loss and AdamW) on the small tasks of `learning_tasks.py`, and assert learning: the reward
climbs from chance to near 1. Each broken variant is the same run with one mechanism broken by a
monkeypatch, and asserts that nothing is learned; so every mechanism named here is one that, broken,
fails this file.

- single turn (copy the marked candidate into ``<answer>``): 3 seeds learn; the sign-flipped
  advantage does not; detached log-probs leave every parameter exactly where it was.
- agentic (query a one-table org, answer with the result): the model learns to query and to read the
  result; with the loss mask inverted (training on the environment's tokens) it does not.

Run: ``scripts/test.sh tests/test_learning.py`` (or ``.venv/bin/python -m pytest -q tests/test_learning.py``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from learning_tasks import COPY_WORDS, LOOKUP_WORDS, copy_suite, lookup_suite, write_model  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """A model this small runs fastest on one thread, and then does not slow a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _curve(name: str, xs: list[float], head: int, tail: int) -> str:
    """``name: first steps -> last steps`` (means), printed for the record (``pytest -rP`` shows it)."""
    line = f"{name}: {_mean(xs[:head]):.2f} (steps 1-{head}) -> {_mean(xs[-tail:]):.2f} (last {tail} of {len(xs)})"
    print(line)
    return line


def _train(tmp_path: Path, suite: Path, words: list[str], seed: int, **kw: Any) -> tuple[Any, list[dict[str, Any]]]:
    """Train with the real Trainer; return it and its metrics, one row per step."""
    from seccrm.rl.config import TrainConfig
    from seccrm.rl.trainer import Trainer

    model = write_model(tmp_path / "model", seed, words)
    cfg = TrainConfig(data=str(suite), model=str(model), out=str(tmp_path / "run"), seed=seed,
                      curriculum="uniform", top_p=1.0, bf16="off", device="cpu", eval_limit=1,
                      save_every=kw["steps"], **kw)
    trainer = Trainer(cfg)
    trainer.train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if x.strip()]
    assert [r["step"] for r in rows] == list(range(1, cfg.steps + 1))
    return trainer, rows


# ------------------------------------------------------------------------------------------------
# Single turn: copy the marked candidate into <answer>
# ------------------------------------------------------------------------------------------------

COPY_STEPS = 150
CHANCE = 0.3          # a random policy scores about 0.1 here (format 0.1, one right answer in four)


def _train_copy(tmp_path: Path, seed: int) -> tuple[Any, list[float]]:
    suite = copy_suite(tmp_path / "suite")
    trainer, rows = _train(tmp_path, suite, COPY_WORDS, seed, steps=COPY_STEPS, prompts_per_step=16,
                           group_size=8, micro_batch_groups=16, max_new_tokens=2, temperature=1.0, lr=1e-3)
    return trainer, [r["train/reward"] for r in rows]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_single_turn_reward_rises_from_chance_to_090(tmp_path: Path, seed: int) -> None:
    _, reward = _train_copy(tmp_path, seed)
    line = _curve(f"single turn, seed {seed}, reward", reward, 5, 10)
    assert _mean(reward[:5]) < CHANCE, line
    assert _mean(reward[-10:]) >= 0.9, line


def test_single_turn_with_the_advantage_sign_flipped_does_not_learn(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import seccrm.rl.trainer
    real = seccrm.rl.trainer.group_advantages
    monkeypatch.setattr(seccrm.rl.trainer, "group_advantages", lambda *a, **k: -real(*a, **k))
    _, reward = _train_copy(tmp_path, seed=0)
    line = _curve("single turn, advantage sign flipped, reward", reward, 5, 10)
    assert _mean(reward[-10:]) < CHANCE, line


def test_single_turn_with_detached_logprobs_moves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The log-probs the loss uses are cut from the graph: the surrogate has no gradient. (The run does
    not crash: the loss still holds the entropy term, times a coefficient of 0.)"""
    import seccrm.rl.trainer
    from seccrm.engine.models import load_model_and_tokenizer
    real = seccrm.rl.trainer.completion_logprobs

    def detached(*a: Any, **k: Any) -> Any:
        logp, ent, mask = real(*a, **k)
        return logp.detach(), ent, mask
    monkeypatch.setattr(seccrm.rl.trainer, "completion_logprobs", detached)
    trainer, reward = _train_copy(tmp_path, seed=0)
    start, _ = load_model_and_tokenizer(str(tmp_path / "model"))
    for (name, p0), p1 in zip(start.named_parameters(), trainer.model.parameters(), strict=True):
        assert torch.equal(p0, p1), f"{name} moved without a gradient"
    line = _curve("single turn, log-probs detached, reward", reward, 5, 10)
    assert _mean(reward[-10:]) < CHANCE, line


# ------------------------------------------------------------------------------------------------
# Agentic: send one query, answer with its result
# ------------------------------------------------------------------------------------------------

LOOKUP_STEPS = 40


def _train_lookup(tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The episode's reward is the library's (``Episode.score``), except that a right answer counts only
    in an episode whose query ran (0 otherwise; the 0.1 for form already needs one): a guess without a
    query is right half of the time, and a tiny model that learns to guess first stops querying before
    it can learn to read a result. Advantages are not
    scaled by the group's std (Dr. GRPO; with it the 0.1 format reward made one answer win for every
    value before the model could read the result)."""
    from seccrm.world.episode import Episode
    real = Episode.score

    def grounded(self: Episode) -> dict[str, Any]:
        details = real(self)
        if not any(t.query_ok for t in self.turns):
            details.update(reward=0.0, correct=False)
        return details
    monkeypatch.setattr(Episode, "score", grounded)
    suite = lookup_suite(tmp_path / "suite")
    _, rows = _train(tmp_path, suite, LOOKUP_WORDS, seed, steps=LOOKUP_STEPS, mode="agentic", max_turns=2,
                     max_new_tokens=1, prompts_per_step=8, group_size=8, micro_batch_groups=8, temperature=1.0,
                     lr=5e-3, scale_adv_by_std=False)
    return rows


def test_agentic_accuracy_rises_from_zero_to_080(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _train_lookup(tmp_path, 0, monkeypatch)
    acc = [r["train/accuracy"] for r in rows]
    line = _curve("agentic, accuracy", acc, 3, 5)
    assert _mean(acc[:3]) < 0.1, line
    assert _mean(acc[-5:]) >= 0.8, line
    assert _mean([r["agent/turns"] for r in rows[-5:]]) > 1.9          # it queries, then answers


def test_agentic_with_the_loss_mask_inverted_does_not_learn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loss covers the environment's tokens (the query results) instead of the model's own."""
    import seccrm.rl.trainer
    real = seccrm.rl.trainer.loss_mask
    monkeypatch.setattr(seccrm.rl.trainer, "loss_mask", lambda ro, rows, like: 1 - real(ro, rows, like))
    rows = _train_lookup(tmp_path, 0, monkeypatch)
    acc = [r["train/accuracy"] for r in rows]
    line = _curve("agentic, loss mask inverted, accuracy", acc, 3, 5)
    assert _mean(acc[-5:]) < 0.5, line
