"""Our calls into transformers and torch use no deprecated argument: the warm-up's loss, rollouts and
an episode's token-in/token-out loop run with deprecation warnings turned into errors (a newcomer's
demo log stays clean, and the next transformers release does not break the call)."""

from __future__ import annotations

from pathlib import Path

import pytest

# pytest resets warning filters around each test phase, so the filters sit on the tests themselves
pytestmark = [pytest.mark.filterwarnings("error::FutureWarning"),
              pytest.mark.filterwarnings("error::DeprecationWarning"),
              pytest.mark.filterwarnings("error:.*requires_grad.*:UserWarning")]


def test_warmup_loss_and_rollouts_call_nothing_deprecated() -> None:
    from seccrm.engine.models import load_model_and_tokenizer
    from seccrm.engine.rollout import generate_rollouts
    from seccrm.rl.warmup import answer_nll

    model, tok = load_model_and_tokenizer("tiny")
    nll, _ = answer_nll(model, [5, 9, 13, 21, 3, 8], [40, 41, 42])
    nll.backward()
    float(nll.detach())
    model.eval()
    batch = generate_rollouts(model, tok, [[5, 9, 13, 21]], n=2, max_new_tokens=4, seed=0)
    assert len(batch.completion_ids) == 2


def test_an_episode_calls_nothing_deprecated(tiny_suite: Path) -> None:
    from seccrm.data import load_split
    from seccrm.engine.episodes import play_episode
    from seccrm.engine.models import load_model_and_tokenizer
    from seccrm.world.episode import EpisodeSettings

    model, tok = load_model_and_tokenizer("tiny")
    model.eval()
    inst = load_split(tiny_suite, "val")[0]
    ep = play_episode(model, tok, inst, tiny_suite / "org.sqlite",
                      EpisodeSettings(max_turns=2, max_new_tokens_per_turn=4), seed=0)[0]
    assert ep.done


def test_activation_checkpointing_is_turned_on_without_a_deprecated_name() -> None:
    from seccrm.engine.models import enable_activation_checkpointing, load_model_and_tokenizer

    model, _ = load_model_and_tokenizer("tiny")
    enable_activation_checkpointing(model)
    assert any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
