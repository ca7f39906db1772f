"""Precision modes: float32 master weights with bf16 compute, pure bf16, float32."""

from __future__ import annotations

import logging

import pytest
import torch

from seccrm.engine import precision
from seccrm.engine.logprobs import chunked_logprobs_entropy, entropy_from_logits, logprobs_from_logits


def test_resolve_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert precision.resolve("off", "cpu") == "fp32"
    assert precision.resolve("on", "cpu") == "mixed"
    assert precision.resolve("mixed", "cpu") == "mixed"
    assert precision.resolve("pure", "cpu") == "pure"
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    assert precision.resolve("auto", "cpu") == "mixed"
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)
    assert precision.resolve("auto", "cpu") == "fp32"
    with pytest.raises(ValueError, match="bf16 must be one of"):
        precision.resolve("half", "cpu")
    assert precision.weight_dtype("mixed") == torch.float32 and precision.weight_dtype("pure") == torch.bfloat16
    assert precision.inference_dtype("mixed") == torch.bfloat16 and precision.inference_dtype("fp32") == torch.float32


def test_pure_bf16_drops_small_adamw_steps_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    """Why mixed precision is the default: at the report's lr, bf16 weights do not move at all."""
    moved = {}
    for dtype in (torch.float32, torch.bfloat16):
        w = torch.nn.Parameter(torch.full((64,), 0.02, dtype=dtype))
        opt = torch.optim.AdamW([w], lr=1e-6, weight_decay=0.0)
        before = w.detach().clone()
        for _ in range(10):
            w.grad = torch.ones_like(w)
            opt.step()
        moved[dtype] = bool((w.detach() != before).any())
    assert moved == {torch.float32: True, torch.bfloat16: False}
    with caplog.at_level(logging.WARNING, logger="seccrm.engine.precision"):
        precision.warn_if_pure_loses_updates("pure", 1e-6)
        precision.warn_if_pure_loses_updates("mixed", 1e-6)
    assert len(caplog.records) == 1 and "round away" in caplog.records[0].getMessage()


def test_inference_copy_is_frozen_bf16_and_sync_copies_in_place() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 3))
    twin = precision.inference_copy(model)
    tensors = [p for p in twin.parameters()]
    assert all(p.dtype == torch.bfloat16 and not p.requires_grad for p in tensors)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    precision.sync_copy(model, twin)
    for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
        assert torch.equal(q, p.detach().to(torch.bfloat16)), name
    assert all(a is b for a, b in zip(tensors, twin.parameters(), strict=True))  # same storage, new values


def _leaves(seed: int, n: int = 40, hdim: int = 16, vocab: int = 97) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, hdim, generator=gen).requires_grad_(True),
            (0.3 * torch.randn(vocab, hdim, generator=gen)).requires_grad_(True),
            torch.randint(0, vocab, (n,), generator=gen),
            torch.randn(n, generator=gen)]


def test_chunked_logprobs_under_autocast_use_bf16_logits_both_ways() -> None:
    """Under autocast the head runs in bf16 in forward *and* in the hand-written backward."""
    h, w, t, up = _leaves(seed=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logp, ent = chunked_logprobs_entropy(h, w, t, chunk_size=16)
    assert logp.dtype == torch.float32 and ent is not None
    # Reference: the same bf16 logits, built outside autocast by hand.
    hb, wb = h.detach().bfloat16().requires_grad_(True), w.detach().bfloat16().requires_grad_(True)
    logits = hb @ wb.t()
    ref_logp, ref_ent = logprobs_from_logits(logits, t), entropy_from_logits(logits)
    assert torch.allclose(logp, ref_logp, atol=1e-5) and torch.allclose(ent, ref_ent, atol=1e-5)
    got = torch.autograd.grad((up * logp).sum() + ent.sum(), [h, w])
    want = torch.autograd.grad((up * ref_logp).sum() + ref_ent.sum(), [hb, wb])
    for g, r in zip(got, want, strict=True):
        assert g.dtype == torch.float32            # gradients come back in the leaves' dtype
        assert torch.allclose(g, r.float(), rtol=3e-2, atol=3e-2)
    # ... and they differ from the float32 computation (the bf16 path really ran).
    lp32, _ = chunked_logprobs_entropy(h, w, t, chunk_size=16)
    assert not torch.allclose(logp, lp32, atol=1e-6)
    assert torch.allclose(logp, lp32, atol=0.1)


@pytest.mark.slow
def test_mixed_precision_trainer_keeps_float32_master_and_synced_bf16_decoder(tiny_suite, tmp_path, monkeypatch):
    import seccrm.rl.trainer
    from seccrm.rl.config import TrainConfig
    from seccrm.rl.trainer import Trainer

    monkeypatch.setattr(seccrm.rl.trainer, "score_details",
                        lambda inst, text: {"reward": (r := [0.0, 0.1, 1.0][len(text) % 3]), "correct": r >= 1.0,
                                           "formatted": r >= 0.1})
    cfg = TrainConfig(data=str(tiny_suite), model="tiny", out=str(tmp_path / "run"), steps=2, prompts_per_step=2,
                      group_size=4, max_new_tokens=8, lr=1e-2, save_every=1, eval_limit=2, eval_max_new_tokens=4,
                      seed=3, bf16="on")
    t = Trainer(cfg)
    assert t.precision == "mixed" and t.decoder is not None
    before = {k: v.detach().clone() for k, v in t.model.named_parameters()}
    t.train()
    master = dict(t.model.named_parameters())
    assert all(p.dtype == torch.float32 for p in master.values())
    assert all(s["exp_avg"].dtype == torch.float32 for s in t.optimizer.state.values())
    assert any(not torch.equal(before[k], p.detach()) for k, p in master.items())
    for k, q in t.decoder.named_parameters():
        assert torch.equal(q, master[k].detach().to(torch.bfloat16)), k
    off = Trainer(TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "off"), "bf16": "off"}))
    assert off.precision == "fp32" and off.decoder is None
