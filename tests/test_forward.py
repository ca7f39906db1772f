"""Completion log-probs: chunked, padded and batched equal a plain per-row forward."""

from __future__ import annotations

import pytest
import torch

from seccrm.engine.forward import completion_logprobs
from seccrm.engine.models import build_tiny_model, enable_activation_checkpointing


@pytest.fixture(scope="module")
def tiny64() -> torch.nn.Module:
    return build_tiny_model(vocab_size=300, seed=1, dtype=torch.float64)


def _naive(model: torch.nn.Module, prompt: list[int], completion: list[int]) -> torch.Tensor:
    """Log-probs of ``completion`` after ``prompt``, one unpadded row through the full model."""
    ids = torch.tensor([prompt + completion])
    logits = model(input_ids=ids).logits[0]                      # [S, V]
    logp = torch.log_softmax(logits, dim=-1)
    pos = torch.arange(len(prompt) - 1, len(prompt) + len(completion) - 1)
    return logp[pos, torch.tensor(completion)]


def _ragged(seed: int, groups: int, n: int, vocab: int = 300) -> tuple[list[list[int]], list[list[int]]]:
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(3, vocab, (int(torch.randint(3, 12, (1,), generator=g)),), generator=g).tolist()
               for _ in range(groups)]
    comps = [torch.randint(3, vocab, (int(torch.randint(1, 9, (1,), generator=g)),), generator=g).tolist()
             for _ in range(groups * n)]
    return prompts, comps


@pytest.mark.parametrize("share", [False, True])
def test_logprobs_match_naive_rows(tiny64: torch.nn.Module, share: bool) -> None:
    prompts, comps = _ragged(0, groups=3, n=4)
    logp, ent, mask = completion_logprobs(tiny64, prompts, comps, 4, chunk_size=7, with_entropy=True,
                                          share_prompt=share)
    T = max(len(c) for c in comps)
    assert logp.shape == mask.shape == ent.shape == (12, T)
    for b, c in enumerate(comps):
        ref = _naive(tiny64, prompts[b // 4], c)
        torch.testing.assert_close(logp[b, :len(c)], ref, rtol=0, atol=1e-10)
        assert mask[b, :len(c)].all() and not mask[b, len(c):].any()
        assert (logp[b, len(c):] == 0).all()
    assert (ent[mask.bool()] > 0).all()


def test_temperature_divides_logits(tiny64: torch.nn.Module) -> None:
    prompts, comps = _ragged(1, groups=1, n=2)
    logp, _, _ = completion_logprobs(tiny64, prompts, comps, 2, temperature=0.5, share_prompt=False)
    ids = torch.tensor([prompts[0] + comps[0]])
    lsm = torch.log_softmax(tiny64(input_ids=ids).logits[0] / 0.5, dim=-1)
    L = len(prompts[0])
    ref = lsm[torch.arange(L - 1, L - 1 + len(comps[0])), torch.tensor(comps[0])]
    torch.testing.assert_close(logp[0, :len(comps[0])], ref, rtol=0, atol=1e-10)


def test_rejects_wrong_group_count(tiny64: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="expected 8"):
        completion_logprobs(tiny64, [[5, 6], [7]], [[1]] * 7, 4)


# ------------------------------------------------------------------------------------------------
# Shared prompt (each prompt run once per group) against the unshared reference
# ------------------------------------------------------------------------------------------------

def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _loss_and_grads(model: torch.nn.Module, prompts, comps, n: int, share: bool):
    model.zero_grad(set_to_none=True)
    logp, ent, mask = completion_logprobs(model, prompts, comps, n, chunk_size=5, with_entropy=True,
                                          share_prompt=share)
    w = torch.linspace(-1.0, 2.0, logp.numel(), dtype=logp.dtype).view_as(logp)
    loss = (w * logp * mask).sum() + 0.1 * (ent * mask).sum()
    loss.backward()
    return logp.detach(), ent.detach(), _grads(model)


def _perturbed_lora(model: torch.nn.Module) -> torch.nn.Module:
    from seccrm.engine.models import LoraSettings, apply_lora

    model = apply_lora(model, LoraSettings(r=4, alpha=8))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():       # peft starts B at zero; make the adapter matter
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


@pytest.fixture
def exact_rmsnorm(monkeypatch: pytest.MonkeyPatch) -> None:
    """RMSNorm in the input's dtype: the models' own norm rounds through float32 even for float64
    models, which turns 1e-16 differences between two exact computations into 1e-7 ulp flips."""
    from transformers.models.llama import modeling_llama
    from transformers.models.mistral import modeling_mistral
    from transformers.models.qwen2 import modeling_qwen2
    from transformers.models.qwen3 import modeling_qwen3

    def forward(self: torch.nn.Module, h: torch.Tensor) -> torch.Tensor:
        return self.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))

    for norm in (modeling_llama.LlamaRMSNorm, modeling_qwen2.Qwen2RMSNorm, modeling_qwen3.Qwen3RMSNorm,
                 modeling_mistral.MistralRMSNorm):
        monkeypatch.setattr(norm, "forward", forward)


@pytest.mark.parametrize("arch,lora", [("llama", False), ("qwen2", False), ("qwen3", False), ("mistral", False),
                                       ("llama", True)])
def test_shared_equals_unshared_logprobs_and_gradients(arch: str, lora: bool, exact_rmsnorm: None) -> None:
    model = build_tiny_model(vocab_size=300, seed=2, arch=arch, dtype=torch.float64)
    if lora:
        model = _perturbed_lora(model)
    model.train()
    prompts, comps = _ragged(3, groups=3, n=4)
    comps[1] = comps[1][:1]                                     # a one-token completion
    lp_s, ent_s, g_s = _loss_and_grads(model, prompts, comps, 4, share=True)
    lp_u, ent_u, g_u = _loss_and_grads(model, prompts, comps, 4, share=False)
    torch.testing.assert_close(lp_s, lp_u, rtol=0, atol=1e-10)
    torch.testing.assert_close(ent_s, ent_u, rtol=0, atol=1e-10)
    assert g_s.keys() == g_u.keys() and len(g_s) > 0
    if lora:
        assert all("lora_" in k for k in g_s)
    for k in g_s:
        torch.testing.assert_close(g_s[k], g_u[k], rtol=1e-9, atol=1e-12, msg=k)


def test_shared_matches_unshared_in_float32() -> None:
    """The same check at the precision training runs in, with float32 tolerances."""
    model = build_tiny_model(vocab_size=300, seed=5, dtype=torch.float32)
    model.train()
    prompts, comps = _ragged(9, groups=2, n=4)
    lp_s, _, g_s = _loss_and_grads(model, prompts, comps, 4, share=True)
    lp_u, _, g_u = _loss_and_grads(model, prompts, comps, 4, share=False)
    torch.testing.assert_close(lp_s, lp_u, rtol=1e-5, atol=1e-5)
    for k in g_s:
        scale = float(g_u[k].abs().max())
        torch.testing.assert_close(g_s[k], g_u[k], rtol=1e-4, atol=1e-5 * scale, msg=k)


def test_shared_hidden_same_for_left_and_right_prompt_padding(exact_rmsnorm: None) -> None:
    from seccrm.engine.forward import shared_hidden, unshared_hidden

    model = build_tiny_model(vocab_size=300, seed=4, dtype=torch.float64)
    prompts, comps = _ragged(5, groups=4, n=2)
    assert len({len(p) for p in prompts}) > 1                   # padding really happens
    ref = unshared_hidden(model, prompts, comps, 2)
    mask = torch.tensor([[t < len(c) for t in range(ref.shape[1])] for c in comps])
    for side in ("left", "right"):
        h = shared_hidden(model, prompts, comps, 2, prompt_padding=side)
        torch.testing.assert_close(h[mask], ref[mask], rtol=0, atol=1e-10)


def test_gradient_checkpointing_gives_the_same_gradients(exact_rmsnorm: None) -> None:
    model = build_tiny_model(vocab_size=300, seed=6, dtype=torch.float64)
    model.train()
    prompts, comps = _ragged(7, groups=2, n=3)
    _, _, plain = _loss_and_grads(model, prompts, comps, 3, share=True)
    enable_activation_checkpointing(model)
    from seccrm.engine.shared_prefix import LlamaLike

    assert LlamaLike(model).checkpointing
    _, _, ckpt = _loss_and_grads(model, prompts, comps, 3, share=True)
    for k in plain:
        torch.testing.assert_close(ckpt[k], plain[k], rtol=1e-9, atol=1e-12, msg=k)


def test_unsupported_architecture_falls_back_with_a_reason(caplog: pytest.LogCaptureFixture) -> None:
    from transformers import AutoModelForCausalLM, GPT2Config

    from seccrm.engine.capability import unsupported_reason

    windowed = build_tiny_model(vocab_size=300, arch="mistral")
    windowed.config.sliding_window = 16                          # as Mistral-7B ships
    assert "sliding" in unsupported_reason(AutoModelForCausalLM.from_config(windowed.config))
    model = AutoModelForCausalLM.from_config(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=300),
                                             dtype=torch.float64).eval()    # no dropout
    assert "gpt2" in unsupported_reason(model)
    prompts, comps = _ragged(8, groups=2, n=2)
    with caplog.at_level("WARNING", logger="seccrm.engine.forward"):
        lp_s, _, mask = completion_logprobs(model, prompts, comps, 2, share_prompt=True)
    assert "fall back" in caplog.text and "gpt2" in caplog.text
    lp_u, _, _ = completion_logprobs(model, prompts, comps, 2, share_prompt=False)
    torch.testing.assert_close(lp_s, lp_u)
    assert mask.sum() == sum(len(c) for c in comps)
