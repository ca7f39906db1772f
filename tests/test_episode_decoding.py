"""Token-in, token-out episodes with one KV cache each: the same episodes as the plain loop that
prefills the whole history every turn, for less compute."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from seccrm.data import load_split
from seccrm.data.importers.crmarena_pro import import_crmarena_pro
from seccrm.engine.episodes import play_episode, turn_suffix_ids
from seccrm.engine.models import load_model_and_tokenizer
from seccrm.engine.rollout import encode_prompts
from seccrm.world.episode import EpisodeSettings
from seccrm.world.rewards import org_path

sys.path.insert(0, str(Path(__file__).parent))
from test_crmarena_pro import write_fixture  # noqa: E402

SCRIPT = "<execute>SELECT COUNT(*) FROM \"Case\"</execute>"


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, dict[str, Any], Path]:
    """A tiny random model taught (a few hundred steps) to open every turn with the same query, so that
    its greedy episodes run several turns; one instance of the imported CRMArena-Pro fixture."""
    d = tmp_path_factory.mktemp("episodes")
    tasks, org = write_fixture(d / "src")
    import_crmarena_pro(tasks, org, d / "suite", train_share=0.6)
    inst = load_split(d / "suite", "train")[0]
    model, tok = load_model_and_tokenizer("tiny", seed=0)
    prompt = encode_prompts(tok, [inst["messages"]])[0]
    script = tok(SCRIPT, add_special_tokens=False)["input_ids"]
    reply = turn_suffix_ids(tok, inst["messages"], SCRIPT, "<result>\nCOUNT(*)\n3\n</result>")
    seqs = [prompt + script, prompt + script + reply + script]
    # positions whose next token is a script token (the loss covers the taught turns only)
    starts = [[len(prompt)], [len(prompt), len(prompt) + len(script) + len(reply)]]
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(120):
        loss = torch.zeros(())
        for seq, at in zip(seqs, starts, strict=True):
            hidden = model.model(input_ids=torch.tensor([seq])).last_hidden_state[0]
            pos = torch.tensor([a + k for a in at for k in range(len(script))])
            logits = model.lm_head(hidden[pos - 1])                          # only where the script is taught
            loss = loss + torch.nn.functional.cross_entropy(logits, torch.tensor(seq)[pos])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, tok, inst, org_path(inst)


SETTINGS = EpisodeSettings(max_turns=3, max_model_tokens=200, max_new_tokens_per_turn=24)


@pytest.mark.parametrize("greedy", [True, False])
def test_cached_episodes_equal_the_plain_loop_for_less_compute(agent: Any, greedy: bool) -> None:
    model, tok, inst, org = agent
    runs = {reuse: play_episode(model, tok, inst, org, SETTINGS, greedy=greedy, seed=3, reuse_cache=reuse)
            for reuse in (True, False)}
    (ep, ids, mask, fed), (ep2, ids2, mask2, fed2) = runs[True], runs[False]
    assert ids == ids2 and mask == mask2
    assert ep.messages == ep2.messages and ep.end_reason == ep2.end_reason
    assert len(ep.turns) >= 2 if greedy else len(ep.turns) >= 1
    prompt = len(encode_prompts(tok, [inst["messages"]])[0])
    assert fed == prompt + len(ids) - 1            # every token fed once (the last sampled one never)
    if len(ep.turns) >= 2:
        assert fed2 > fed                          # the plain loop prefilled the history again
    # The mask: 1 exactly on the sampled tokens of the turns, 0 on the environment's replies.
    assert sum(mask) == sum(t.tokens for t in ep.turns) == ep.model_tokens
    env = tok.decode([t for t, m in zip(ids, mask, strict=True) if not m])
    for turn in ep.turns[:-1]:
        assert turn.observation in env
    assert "<execute>" not in env


def test_greedy_turns_follow_the_taught_query(agent: Any) -> None:
    model, tok, inst, org = agent
    ep, _, _, _ = play_episode(model, tok, inst, org, SETTINGS, greedy=True)
    assert ep.turns[0].text == SCRIPT and ep.turns[0].query_ok      # stopped at </execute>, ran the query
    assert ep.end_reason == "turn_limit" and len(ep.turns) == SETTINGS.max_turns


def test_templates_that_rewrite_history_are_refused() -> None:
    class Rewriting:
        def apply_chat_template(self, messages: list[dict[str, str]], tokenize: bool = False,
                                add_generation_prompt: bool = False) -> str:
            body = "".join(f"[{m['role']}]{m['content']}" for m in messages if m["role"] != "assistant" or
                           m is messages[-1])                   # drops earlier assistant turns
            return body + ("[assistant]" if add_generation_prompt else "")

    with pytest.raises(ValueError, match="appending"):
        turn_suffix_ids(Rewriting(), [{"role": "user", "content": "q"}], "<execute>x</execute>", "r")


def test_no_turn_runs_past_the_episode_token_budget(tiny_suite: Path) -> None:
    """The budget caps the last turn: an answering turn cut to what is left still counts, instead of
    running over and scoring 0."""
    from seccrm.data import load_split
    from seccrm.engine.episodes import play_episode
    from seccrm.engine.models import load_model_and_tokenizer
    from seccrm.world.episode import EpisodeSettings

    model, tok = load_model_and_tokenizer("tiny")
    inst = load_split(tiny_suite, "val")[0]
    settings = EpisodeSettings(max_turns=4, max_new_tokens_per_turn=8, max_model_tokens=5)
    for seed in range(3):
        ep = play_episode(model, tok, inst, tiny_suite / "org.sqlite", settings, seed=seed)[0]
        assert ep.model_tokens <= settings.max_model_tokens
