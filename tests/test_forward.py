"""Completion log-probs: chunked, padded and batched equal a plain per-row forward."""

from __future__ import annotations

import pytest
import torch

from seccrm.forward import completion_logprobs
from seccrm.models import build_tiny_model


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
