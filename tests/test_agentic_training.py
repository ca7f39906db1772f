"""GRPO on whole episodes: the loss covers the model's own tokens in every turn and none of the
environment's; a tiny agentic run trains, logs per-arm turns, and resumes exactly."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from seccrm.engine.episodes import conversation_tokens
from seccrm.engine.forward import completion_logprobs
from seccrm.engine.models import load_model_and_tokenizer
from seccrm.engine.rollout import RolloutBatch, encode_prompts
from seccrm.rl.grpo import policy_loss

sys.path.insert(0, str(Path(__file__).parent))
from test_crmarena_pro import write_fixture  # noqa: E402

PROMPT = [{"role": "system", "content": "You query the org."}, {"role": "user", "content": "How many accounts?"}]


def _episode(k: int) -> list[dict[str, str]]:
    turns = []
    for i in range(k):
        turns += [{"role": "assistant", "content": f"<execute>SELECT COUNT(*) FROM Account WHERE x = {i}</execute>"},
                  {"role": "user", "content": f"<result>\nCOUNT(*)\n{40 + i}\n</result>"}]
    return PROMPT + turns + [{"role": "assistant", "content": f"<answer>{40 + k}</answer>"}]


def test_the_mask_marks_the_model_turns_and_nothing_the_environment_wrote() -> None:
    _, tok = load_model_and_tokenizer("tiny")
    msgs = _episode(2)
    ids, mask = conversation_tokens(tok, msgs, 2)
    prompt = encode_prompts(tok, [PROMPT])[0]
    assert ids[:len(prompt)] == prompt and not any(mask[:len(prompt)])
    model_text = tok.decode([t for t, m in zip(ids, mask, strict=True) if m])
    env_text = tok.decode([t for t, m in zip(ids, mask, strict=True) if not m])
    for m in msgs[2:]:
        assert (m["content"] in model_text) == (m["role"] == "assistant")
        assert (m["content"] in env_text) == (m["role"] == "user")


def test_the_episode_loss_equals_a_plain_loop_over_model_tokens() -> None:
    model, tok = load_model_and_tokenizer("tiny", seed=1)
    prompt = encode_prompts(tok, [PROMPT])[0]
    episodes = [conversation_tokens(tok, _episode(k), 2) for k in (1, 3)]      # ragged: 2 and 4 model turns
    comp = [ids[len(prompt):] for ids, _ in episodes]
    lmask = [m[len(prompt):] for _, m in episodes]
    ro = RolloutBatch(prompt_ids=[prompt], completion_ids=comp, group_size=2, texts=["", ""],
                      finished=[True, True], loss_mask=lmask)
    adv = torch.tensor([0.7, -0.7])
    n_tokens = sum(sum(m) for m in lmask)

    model.zero_grad()
    logp, _, mask = completion_logprobs(model, ro.prompt_ids, ro.completion_ids, 2, share_prompt=True)
    lm = torch.zeros_like(mask)
    for i, m in enumerate(lmask):
        lm[i, :len(m)] = torch.tensor(m, dtype=mask.dtype)
    loss, _ = policy_loss(logp, logp.detach(), adv, mask * lm, num_tokens=n_tokens)
    loss.backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.zero_grad()
    ref = torch.zeros(())
    for (ids, m), a in zip(episodes, adv, strict=True):        # one episode at a time, model tokens only
        x = torch.tensor([ids])
        logits = model(input_ids=x).logits[0, :-1].float()
        lp = torch.log_softmax(logits, -1).gather(-1, x[0, 1:, None])[:, 0]
        keep = torch.tensor(m[1:], dtype=torch.bool)
        ref = ref - (a * torch.exp(lp[keep] - lp[keep].detach())).sum() / n_tokens
    ref.backward()
    assert torch.allclose(loss, ref, atol=1e-6)
    for n, p in model.named_parameters():
        if p.grad is not None:
            assert torch.allclose(got[n], p.grad, atol=1e-5, rtol=1e-4), n


def _train(suite: Path, out: Path, steps: int, resume: bool = False) -> list[dict]:
    from seccrm.rl.config import TrainConfig
    from seccrm.rl.trainer import Trainer
    cfg = TrainConfig(data=str(suite), model="tiny", out=str(out), steps=steps, prompts_per_step=2, group_size=2,
                      max_new_tokens=8, max_turns=2, mode="agentic", eval_every=0, save_every=1, device="cpu",
                      bf16="off", skip_zero_adv=False, entropy_coef=0.01, lr=1e-3, resume=resume, seed=4)
    Trainer(cfg).train()
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]


@pytest.mark.slow
def test_a_tiny_agentic_run_trains_logs_per_arm_and_resumes_exactly(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from seccrm.data.importers.crmarena_pro import import_crmarena_pro
    tasks, org = write_fixture(tmp_path / "src")
    suite = tmp_path / "suite"
    import_crmarena_pro(tasks, org, suite, train_share=0.6)
    full = _train(suite, tmp_path / "full", steps=2)
    assert [r["step"] for r in full] == [1, 2]
    assert all(1 <= r["agent/turns"] <= 2 for r in full)
    assert any(k.startswith("agent/turns/") for k in full[0])
    before = load_model_and_tokenizer("tiny", seed=0)[0].state_dict()
    after = load_file(tmp_path / "full" / "checkpoints" / "step_000002" / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in after if k in before)     # it learned something
    _train(suite, tmp_path / "half", steps=1)
    resumed = _train(suite, tmp_path / "half", steps=2, resume=True)
    stable = lambda rows: [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]  # noqa: E731
    assert stable(resumed) == stable(full)
    a = load_file(tmp_path / "half" / "checkpoints" / "step_000002" / "model.safetensors")
    assert all(torch.equal(a[k], after[k]) for k in after)


def test_assistant_messages_inside_the_prompt_carry_no_loss() -> None:
    _, tok = load_model_and_tokenizer("tiny")
    shot = [{"role": "user", "content": "Example question?"}, {"role": "assistant", "content": "<answer>EXAMPLE</answer>"}]
    msgs = PROMPT[:1] + shot + PROMPT[1:] + [{"role": "assistant", "content": "<answer>41</answer>"}]
    ids, mask = conversation_tokens(tok, msgs, 4)
    model_text = tok.decode([t for t, m in zip(ids, mask, strict=True) if m])
    assert "41" in model_text and "EXAMPLE" not in model_text


@pytest.mark.slow
def test_periodic_validation_in_agentic_mode_plays_episodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Question-only prompts have no answer without querying: the trainer's validation plays episodes."""
    import seccrm.rl.trainer as trainer_mod
    from seccrm.data.importers.crmarena_pro import import_crmarena_pro
    from seccrm.rl.config import TrainConfig

    tasks, org = write_fixture(tmp_path / "src")
    suite = tmp_path / "suite"
    import_crmarena_pro(tasks, org, suite, train_share=0.6)
    played: list[int] = []
    real = trainer_mod.evaluate_model_episodes

    def spy(model, tok, instances, settings, **kw):  # type: ignore[no-untyped-def]
        played.append(len(instances))
        assert settings.max_turns == 2
        return real(model, tok, instances, settings, **kw)

    def single_turn(*a: object, **k: object) -> None:
        raise AssertionError("single-turn evaluation of an agentic run")
    monkeypatch.setattr(trainer_mod, "evaluate_model_episodes", spy)
    monkeypatch.setattr(trainer_mod, "evaluate_instances", single_turn)
    cfg = TrainConfig(data=str(suite), model="tiny", out=str(tmp_path / "run"), steps=1, prompts_per_step=2,
                      group_size=2, max_new_tokens=8, max_turns=2, mode="agentic", eval_every=0, eval_limit=2,
                      device="cpu", bf16="off", seed=4)
    row = trainer_mod.Trainer(cfg).evaluate_val()
    assert played == [2] and 0.0 <= row["eval/val/accuracy"] <= 1.0


@pytest.mark.slow
def test_a_tiny_agentic_run_trains_under_the_tools_protocol(tmp_path: Path) -> None:
    from seccrm.data.importers.crmarena_pro import import_crmarena_pro
    from seccrm.rl.config import TrainConfig
    from seccrm.rl.trainer import Trainer

    tasks, org = write_fixture(tmp_path / "src")
    suite = tmp_path / "suite"
    import_crmarena_pro(tasks, org, suite, train_share=0.6)
    cfg = TrainConfig(data=str(suite), model="tiny", out=str(tmp_path / "run"), steps=1, prompts_per_step=2,
                      group_size=2, max_new_tokens=8, max_turns=2, mode="agentic", protocol="tools", eval_every=0,
                      save_every=1, device="cpu", bf16="off", skip_zero_adv=False, lr=1e-3, seed=4)
    trainer = Trainer(cfg)
    assert trainer.cfg.episode_settings().protocol == "tools"
    trainer.train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if x.strip()]
    assert [r["step"] for r in rows] == [1] and "agent/turns" in rows[0] and "reward/form" in rows[0]
