"""GRPO math against plain Python loops on random inputs (CPU, no network, a few seconds in all)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from seccrm.engine.logprobs import chunked_logprobs_entropy, entropy_from_logits, logprobs_from_logits
from seccrm.rl.grpo import (
    group_advantages,
    kl_k3,
    masked_mean,
    masked_sum,
    policy_loss,
)

# ------------------------------------------------------------------------------------------------
# Advantages
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale_by_std", [True, False])
@pytest.mark.parametrize("group_size", [2, 3, 8])
def test_group_advantages_match_loop(scale_by_std: bool, group_size: int) -> None:
    gen = torch.Generator().manual_seed(group_size)
    rewards = torch.rand(5 * group_size, generator=gen, dtype=torch.float64)
    got = group_advantages(rewards, group_size, scale_by_std=scale_by_std)
    expected = []
    for g in range(5):
        group = rewards[g * group_size : (g + 1) * group_size].tolist()
        mu, sd = statistics.fmean(group), statistics.stdev(group)  # stdev: unbiased (n - 1)
        expected += [(r - mu) / (sd + 1e-6) if scale_by_std else r - mu for r in group]
    assert got.shape == rewards.shape
    assert torch.allclose(got, torch.tensor(expected, dtype=torch.float64), atol=1e-12)


def test_group_advantages_equal_rewards_give_zero_and_ints_are_accepted() -> None:
    rewards = torch.tensor([1, 1, 1, 1, 1, 1, 0, 0])  # int: a solved group, then a mixed one
    adv = group_advantages(rewards, 4)
    assert adv.dtype == torch.float32
    assert torch.equal(adv[:4], torch.zeros(4))
    assert adv[4] > 0 > adv[6] and adv[5] == adv[4]
    assert math.isclose(adv[4:].sum().item(), 0.0, abs_tol=1e-6)


def test_group_advantages_reject_bad_groups() -> None:
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages(torch.zeros(8), 3)
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        group_advantages(torch.zeros(8), 1)
    with pytest.raises(ValueError, match="1-D"):
        group_advantages(torch.zeros(2, 4), 4)


# ------------------------------------------------------------------------------------------------
# Masked reductions and KL
# ------------------------------------------------------------------------------------------------


def test_masked_reductions_match_loop_and_ignore_nan_padding() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 7, generator=gen)
    mask = torch.rand(4, 7, generator=gen) > 0.4
    mask[2] = False  # an all-padding row
    x = x.masked_fill(~mask & (torch.rand(4, 7, generator=gen) > 0.5), float("nan"))
    x.requires_grad_(True)
    kept = [[x[b, t].item() for t in range(7) if mask[b, t]] for b in range(4)]
    assert math.isclose(masked_sum(x, mask).item(), sum(sum(r) for r in kept), rel_tol=1e-6)
    flat = [v for r in kept for v in r]
    assert math.isclose(masked_mean(x, mask).item(), sum(flat) / len(flat), rel_tol=1e-6)
    rows = masked_mean(x, mask, dim=-1)
    assert torch.allclose(rows, torch.tensor([sum(r) / len(r) if r else 0.0 for r in kept]), atol=1e-6)
    rows.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert torch.equal(x.grad[~mask], torch.zeros(int((~mask).sum())))


def test_masked_mean_float_mask_weights_and_empty_mask() -> None:
    x = torch.tensor([1.0, 2.0, 4.0])
    assert masked_mean(x, torch.tensor([1.0, 0.0, 3.0])).item() == pytest.approx((1 + 12) / 4)
    assert masked_mean(x, torch.zeros(3)).item() == 0.0


def test_kl_k3_matches_formula() -> None:
    gen = torch.Generator().manual_seed(1)
    logp, ref = -3 * torch.rand(3, 5, generator=gen), -3 * torch.rand(3, 5, generator=gen)
    got = kl_k3(logp, ref)
    for b in range(3):
        for t in range(5):
            d = ref[b, t].item() - logp[b, t].item()
            assert got[b, t].item() == pytest.approx(math.exp(d) - d - 1, rel=1e-5, abs=1e-7)
    assert (got >= 0).all()
    assert torch.equal(kl_k3(logp, logp), torch.zeros(3, 5))
    # A runaway token is clamped (finite, at most max_value) and stops pushing.
    far = torch.tensor([[-50.0]], requires_grad=True)
    val = kl_k3(far, torch.tensor([[0.0]]), max_value=10.0)
    val.sum().backward()
    assert val.item() == 10.0 and far.grad is not None and far.grad.item() == 0.0


# ------------------------------------------------------------------------------------------------
# Policy loss
# ------------------------------------------------------------------------------------------------


def _random_batch(seed: int, b: int = 6, t: int = 9) -> dict[str, torch.Tensor]:
    """Log-probs whose ratios often leave [0.8, 1.2], advantages of both signs, ragged masks."""
    gen = torch.Generator().manual_seed(seed)
    old = -2 * torch.rand(b, t, generator=gen, dtype=torch.float64)
    logp = old + 0.4 * torch.randn(b, t, generator=gen, dtype=torch.float64)
    lengths = torch.randint(1, t + 1, (b,), generator=gen)
    return {
        "logp": logp.requires_grad_(True),
        "old_logp": old,
        "advantages": torch.randn(b, generator=gen, dtype=torch.float64),
        "mask": torch.arange(t)[None, :] < lengths[:, None],
        "ref_logp": old + 0.3 * torch.randn(b, t, generator=gen, dtype=torch.float64),
        "entropy": (3 * torch.rand(b, t, generator=gen, dtype=torch.float64)).requires_grad_(True),
    }


def _loop_loss(d: dict[str, torch.Tensor], clip: float, kl_coef: float, ent_coef: float) -> dict[str, Any]:
    """The loss, its gradient w.r.t. logp and the clip counts, token by token in plain Python."""
    total, n, clipped_pos, clipped_neg = 0.0, int(d["mask"].sum()), 0, 0
    grad = [[0.0] * d["logp"].shape[1] for _ in range(d["logp"].shape[0])]
    for b in range(d["logp"].shape[0]):
        a = d["advantages"][b].item()
        for t in range(d["logp"].shape[1]):
            if not d["mask"][b, t]:
                continue
            lp, old = d["logp"][b, t].item(), d["old_logp"][b, t].item()
            ratio = math.exp(lp - old)
            unclipped, clipped = -a * ratio, -a * min(max(ratio, 1 - clip), 1 + clip)
            is_clipped = clipped > unclipped
            clipped_pos += is_clipped and a > 0
            clipped_neg += is_clipped and a < 0
            diff = d["ref_logp"][b, t].item() - lp
            total += max(unclipped, clipped) + kl_coef * (math.exp(diff) - diff - 1)
            total -= ent_coef * d["entropy"][b, t].item()
            grad[b][t] = ((0.0 if is_clipped else -a * ratio) + kl_coef * (1 - math.exp(diff))) / n
    return {"loss": total / n, "grad": grad, "clipped": (clipped_pos, clipped_neg), "n": n}


@pytest.mark.parametrize(("kl_coef", "ent_coef"), [(0.0, 0.0), (0.1, 0.01)])
def test_policy_loss_matches_token_loop(kl_coef: float, ent_coef: float) -> None:
    d = _random_batch(seed=3)
    ref = _loop_loss(d, clip=0.2, kl_coef=kl_coef, ent_coef=ent_coef)
    assert ref["clipped"][0] > 0 and ref["clipped"][1] > 0, "the batch must clip both signs of advantage"
    loss, metrics = policy_loss(
        d["logp"], d["old_logp"], d["advantages"], d["mask"], clip_eps=0.2,
        ref_logp=d["ref_logp"], kl_coef=kl_coef, entropy=d["entropy"], entropy_coef=ent_coef,
    )
    assert loss.item() == pytest.approx(ref["loss"], rel=1e-10)
    loss.backward()
    assert d["logp"].grad is not None
    assert torch.allclose(d["logp"].grad, torch.tensor(ref["grad"], dtype=torch.float64), atol=1e-12)
    expected_ent_grad = torch.where(d["mask"], -ent_coef / ref["n"], 0.0).to(torch.float64)
    assert d["entropy"].grad is not None and torch.allclose(d["entropy"].grad, expected_ent_grad)
    assert metrics["policy/clip_frac"] == pytest.approx(sum(ref["clipped"]) / ref["n"])
    assert metrics["policy/tokens"] == ref["n"]


def test_policy_loss_metrics_match_loop() -> None:
    d = _random_batch(seed=4)
    _, m = policy_loss(d["logp"], d["old_logp"], d["advantages"], d["mask"],
                       ref_logp=d["ref_logp"], entropy=d["entropy"])
    toks = [(b, t) for b in range(6) for t in range(9) if d["mask"][b, t]]
    lr = [d["logp"][b, t].item() - d["old_logp"][b, t].item() for b, t in toks]
    kl = [d["ref_logp"][b, t].item() - d["logp"][b, t].item() for b, t in toks]
    assert m["policy/ratio_mean"] == pytest.approx(statistics.fmean(math.exp(x) for x in lr))
    assert m["policy/approx_kl"] == pytest.approx(statistics.fmean(math.exp(x) - x - 1 for x in lr))
    assert m["loss/kl"] == pytest.approx(statistics.fmean(math.exp(x) - x - 1 for x in kl))
    assert m["loss/entropy"] == pytest.approx(statistics.fmean(d["entropy"][b, t].item() for b, t in toks))
    assert set(m) == {"loss/policy", "loss/kl", "loss/entropy", "policy/clip_frac", "policy/ratio_mean",
                      "policy/approx_kl", "policy/tokens"}


def test_token_mean_over_micro_batches_equals_full_batch() -> None:
    d = _random_batch(seed=5)
    n = d["mask"].sum()
    full, _ = policy_loss(d["logp"], d["old_logp"], d["advantages"], d["mask"])
    (full_grad,) = torch.autograd.grad(full, d["logp"])
    parts, per_micro_means = [], []
    for rows in (slice(0, 2), slice(2, 6)):  # uneven micro-batches, different token counts
        args = (d["logp"][rows], d["old_logp"][rows], d["advantages"][rows], d["mask"][rows])
        parts.append(policy_loss(*args, num_tokens=n)[0])
        per_micro_means.append(policy_loss(*args)[0])
    accumulated = parts[0] + parts[1]
    (acc_grad,) = torch.autograd.grad(accumulated, d["logp"])
    assert accumulated.item() == pytest.approx(full.item(), rel=1e-12)
    assert torch.allclose(acc_grad, full_grad, atol=1e-14)
    # Without num_tokens the micro-batch means would weigh tokens unequally: the test can tell.
    assert abs((per_micro_means[0] + per_micro_means[1]).item() / 2 - full.item()) > 1e-6


def test_seq_mean_token_mean_weighs_each_completion_once_over_micro_batches() -> None:
    """--loss-agg seq-mean-token-mean: the trainer's row weights turn the token sum into verl's
    mean over rows of each row's token mean, also when accumulated over uneven micro-batches."""
    from types import SimpleNamespace

    from seccrm.rl.batching import row_weights

    d = _random_batch(seed=6)
    mask = d["mask"]
    ro = SimpleNamespace(completion_ids=[[0] * int(k) for k in mask.sum(1).tolist()], loss_mask=None)
    rows, n = list(range(mask.shape[0])), int(mask.sum())
    pg = -d["advantages"].unsqueeze(1) * torch.ones_like(d["logp"])   # on policy: ratio 1
    want = sum((pg[i][mask[i] != 0]).mean() for i in rows) / len(rows)
    old = d["logp"].detach()
    total = sum(policy_loss(d["logp"][r], old[r], d["advantages"][r], mask[r], num_tokens=n,
                            row_weight=row_weights(ro, rows[r], n, len(rows), "seq-mean-token-mean"))[0]
                for r in (slice(0, 2), slice(2, 6)))
    assert float(total) == pytest.approx(float(want), rel=1e-9)
    token_mean = policy_loss(d["logp"], old, d["advantages"], mask)[0]
    assert abs(float(token_mean) - float(want)) > 1e-6   # the rows differ in length: the two means differ
    assert row_weights(ro, rows, n, len(rows), "token-mean") is None


def test_policy_loss_nan_padding_stays_out_of_loss_and_gradient() -> None:
    d = _random_batch(seed=6)
    with torch.no_grad():
        d["logp"][~d["mask"]] = float("nan")
    loss, metrics = policy_loss(d["logp"], d["old_logp"], d["advantages"], d["mask"],
                                ref_logp=d["ref_logp"], kl_coef=0.1)
    loss.backward()
    assert torch.isfinite(loss) and all(math.isfinite(v) for v in metrics.values())
    assert d["logp"].grad is not None and torch.isfinite(d["logp"].grad).all()
    empty, _ = policy_loss(d["logp"], d["old_logp"], d["advantages"], torch.zeros_like(d["mask"]))
    assert empty.item() == 0.0


def test_policy_loss_on_policy_gradient_is_minus_advantage() -> None:
    """With old == current (one update per batch) the ratio is 1 and d loss / d logp = -A / tokens."""
    logp = torch.randn(2, 3, requires_grad=True)
    adv = torch.tensor([1.5, -0.5])
    loss, m = policy_loss(logp, logp.detach(), adv, torch.ones(2, 3))
    loss.backward()
    assert logp.grad is not None and torch.allclose(logp.grad, -adv[:, None].expand(2, 3) / 6)
    assert m["policy/clip_frac"] == 0.0 and m["policy/ratio_mean"] == pytest.approx(1.0)


def test_policy_loss_rejects_bad_inputs() -> None:
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="advantages must be one per sequence"):
        policy_loss(z, z, torch.zeros(2, 3), z)
    with pytest.raises(ValueError, match="old_logp has shape"):
        policy_loss(z, torch.zeros(2, 4), torch.zeros(2), z)
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(z, z, torch.zeros(2), z, kl_coef=0.1)
    with pytest.raises(ValueError, match="entropy"):
        policy_loss(z, z, torch.zeros(2), z, entropy_coef=0.1)


# ------------------------------------------------------------------------------------------------
# Chunked log-probs and entropy
# ------------------------------------------------------------------------------------------------


def _naive(h: torch.Tensor, w: torch.Tensor, t: torch.Tensor, b: torch.Tensor | None, temp: float
           ) -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.nn.functional.linear(h, w, b) / temp
    return logprobs_from_logits(logits, t), entropy_from_logits(logits)


def _leaves(seed: int, n: int, hdim: int = 16, vocab: int = 97, dtype: torch.dtype = torch.float32
            ) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(n, hdim, generator=gen).to(dtype).requires_grad_(True),
        (0.3 * torch.randn(vocab, hdim, generator=gen)).to(dtype).requires_grad_(True),
        torch.randint(0, vocab, (n,), generator=gen),
        (0.1 * torch.randn(vocab, generator=gen)).to(dtype).requires_grad_(True),
        torch.randn(n, generator=gen),  # upstream weights on logp
        torch.randn(n, generator=gen),  # upstream weights on entropy
    ]


@pytest.mark.parametrize("chunk_size", [10, 7, 64, 1])  # divides N=50, does not, N < chunk, 1 token
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_chunked_equals_naive_values_and_gradients(chunk_size: int, temperature: float) -> None:
    h, w, t, b, gl, ge = _leaves(seed=chunk_size, n=50)
    results = []
    for fn in (_naive, lambda *a: chunked_logprobs_entropy(a[0], a[1], a[2], chunk_size, a[4], bias=a[3])):
        logp, ent = fn(h, w, t, b, temperature)
        assert ent is not None
        grads = torch.autograd.grad((gl * logp).sum() + (ge * ent).sum(), [h, w, b])
        results.append((logp, ent, *grads))
    for name, got, want in zip(("logp", "entropy", "d/hidden", "d/weight", "d/bias"), *results, strict=True):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-5), name


@pytest.mark.parametrize("use", ["logp", "entropy"])
def test_chunked_gradient_of_one_output_only(use: str) -> None:
    h, w, t, _, gl, _ = _leaves(seed=11, n=33)
    w_frozen = w.detach()  # a frozen LM head (LoRA): no weight gradient is built
    logp, ent = chunked_logprobs_entropy(h, w_frozen, t, chunk_size=8, with_entropy=use == "entropy")
    ref_logp, ref_ent = _naive(h, w_frozen, t, None, 1.0)
    out, ref = (logp, ref_logp) if use == "logp" else (ent, ref_ent)
    assert out is not None
    (got,) = torch.autograd.grad((gl * out).sum(), [h])
    (want,) = torch.autograd.grad((gl * ref).sum(), [h])
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)
    assert (ent is None) == (use == "logp")


def test_chunked_passes_gradcheck_in_float64() -> None:
    h, w, t, b, _, _ = _leaves(seed=2, n=9, hdim=4, vocab=11, dtype=torch.float64)

    def both(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logp, ent = chunked_logprobs_entropy(h, w, t, chunk_size=4, temperature=0.7, bias=b)
        assert ent is not None
        return logp, ent

    assert torch.autograd.gradcheck(both, (h, w, b))


def test_chunked_accepts_leading_dims_and_no_grad() -> None:
    h, w, t, _, _, _ = _leaves(seed=4, n=24)
    with torch.no_grad():  # how rollouts compute old log-probs
        logp, ent = chunked_logprobs_entropy(h.view(4, 6, -1), w, t.view(4, 6), chunk_size=5)
    ref_logp, ref_ent = _naive(h, w, t, None, 1.0)
    assert logp.shape == (4, 6) and ent is not None and not logp.requires_grad
    assert torch.allclose(logp.flatten(), ref_logp, atol=1e-5) and torch.allclose(ent.flatten(), ref_ent, atol=1e-5)


def test_chunked_bf16_computes_logits_in_bf16_and_returns_float32() -> None:
    h, w, t, _, gl, _ = _leaves(seed=5, n=40, dtype=torch.bfloat16)
    logp, ent = chunked_logprobs_entropy(h, w, t, chunk_size=16)
    ref_logp, ref_ent = _naive(h, w, t, None, 1.0)  # bf16 logits, float32 softmax
    assert logp.dtype == torch.float32 and ent is not None and ent.dtype == torch.float32
    assert torch.allclose(logp, ref_logp, atol=1e-5) and torch.allclose(ent, ref_ent, atol=1e-5)
    got = torch.autograd.grad((gl * logp).sum(), [h, w])
    want = torch.autograd.grad((gl * ref_logp).sum(), [h, w])
    for g, r in zip(got, want, strict=True):
        assert g.dtype == torch.bfloat16 and torch.allclose(g.float(), r.float(), rtol=2e-2, atol=2e-2)


def test_chunked_rejects_mismatched_inputs() -> None:
    h, w, t, _, _, _ = _leaves(seed=6, n=8)
    with pytest.raises(ValueError, match="disagree on tokens"):
        chunked_logprobs_entropy(h, w, t[:5])
    with pytest.raises(ValueError, match="share a dtype"):
        chunked_logprobs_entropy(h, w.double(), t)
    with pytest.raises(ValueError, match=r"weight must be \[V, H=16\]"):
        chunked_logprobs_entropy(h, w[:, :3], t)
    with pytest.raises(ValueError, match="chunk_size"):
        chunked_logprobs_entropy(h, w, t, chunk_size=0)


# ------------------------------------------------------------------------------------------------
# Memory: measured on the meta device, so the 8192 x 32000 naive path costs nothing to "run".
# Two exact, deterministic measures: bytes saved for backward (alive between forward and
# backward), and the largest single tensor any op creates during forward + backward.
# ------------------------------------------------------------------------------------------------


class _LargestTensor(TorchDispatchMode):
    """Records the byte size of the largest tensor produced by any aten op run under it."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for o in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(o, torch.Tensor):
                self.largest = max(self.largest, o.numel() * o.element_size())
        return out


def _measure(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]],
             n: int, hdim: int, vocab: int) -> tuple[int, int]:
    """(bytes saved for backward, largest tensor created) for ``fn``'s forward + backward on meta."""
    h = torch.empty(n, hdim, device="meta", requires_grad=True)
    w = torch.empty(vocab, hdim, device="meta", requires_grad=True)
    t = torch.empty(n, dtype=torch.long, device="meta")
    saved: list[int] = []

    def pack(x: torch.Tensor) -> torch.Tensor:
        saved.append(x.numel() * x.element_size())
        return x

    with _LargestTensor() as mode:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
            logp, ent = fn(h, w, t)
        assert ent is not None
        (logp.sum() + ent.sum()).backward()
    assert h.grad is not None and w.grad is not None and h.grad.shape == h.shape
    return sum(saved), mode.largest


def test_chunked_memory_stays_far_below_naive() -> None:
    n, hdim, vocab, chunk = 8192, 64, 32000, 1024
    naive_saved, naive_largest = _measure(lambda h, w, t: _naive(h, w, t, None, 1.0), n, hdim, vocab)
    saved, largest = _measure(lambda h, w, t: chunked_logprobs_entropy(h, w, t, chunk_size=chunk), n, hdim, vocab)
    full_logits = n * vocab * 4  # float32 [N, V]: 1 GiB here
    assert naive_saved >= full_logits and naive_largest >= full_logits  # the measure sees the problem
    inputs = (n * hdim + vocab * hdim) * 4 + n * 8
    assert saved <= inputs + n * 4, "only the inputs and the [N] entropies may be kept for backward"
    assert largest <= chunk * vocab * 4, "no op may create more than one chunk of float32 logits"
    assert saved < naive_saved / 50 and largest < naive_largest / 4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_chunked_peak_cuda_memory_below_naive() -> None:
    n, hdim, vocab = 8192, 256, 151936  # Qwen's vocabulary: naive float32 logits are 5 GB
    dev = torch.device("cuda")
    peaks = []
    for use_chunked in (True, False):
        torch.cuda.empty_cache()
        h = torch.randn(n, hdim, device=dev, dtype=torch.bfloat16, requires_grad=True)
        w = (0.05 * torch.randn(vocab, hdim, device=dev)).to(torch.bfloat16).requires_grad_(True)
        t = torch.randint(0, vocab, (n,), device=dev)
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        logp, ent = (chunked_logprobs_entropy(h, w, t) if use_chunked else _naive(h, w, t, None, 1.0))
        assert ent is not None
        (logp.sum() + ent.sum()).backward()
        peaks.append(torch.cuda.max_memory_allocated() - base)
        del h, w, t, logp, ent
    assert peaks[0] < peaks[1] / 3, f"chunked peak {peaks[0] / 2**30:.2f} GiB vs naive {peaks[1] / 2**30:.2f} GiB"


def test_signal_advantages_ignore_format_only_groups_in_correctness_mode():
    from seccrm.rl.grpo import group_has_signal, signal_advantages
    r = torch.tensor([0.1, 0.0, 0.1, 0.0,   1.0, 0.0, 0.1, 1.0,   1.0, 1.0, 1.0, 1.0])
    c = signal_advantages(r, 4, "correctness")
    assert c[:4].abs().sum() == 0 and c[8:].abs().sum() == 0
    # [1, 0, 0, 1]: |c - 0.5| / unbiased std sqrt(4/3 * 0.25) = 0.866 for every completion
    assert torch.allclose(c[4:8].abs().mean(), torch.tensor(0.5 / (4 / 3 * 0.25) ** 0.5), atol=1e-5)
    a = signal_advantages(r, 4, "advantage", scale_by_std=True)
    assert a[:4].abs().mean() > 0.5            # std scaling: format-only differences weigh as much
    u = signal_advantages(r, 4, "unscaled")
    assert torch.allclose(u[:4].abs().mean(), torch.tensor(0.05))
    assert group_has_signal(r, 4).tolist() == [False, True, False]
    with pytest.raises(ValueError, match="known"):
        signal_advantages(r, 4, "nope")


def test_all_equal_groups_get_exactly_zero_advantage():
    """Eight 0.1 rewards average to 0.1 + rounding; std scaling would turn that into ~0.007."""
    from seccrm.rl.grpo import group_advantages
    r = torch.tensor([0.1] * 8 + [0.1] * 7 + [1.0])
    for scale in (True, False):
        a = group_advantages(r, 8, scale_by_std=scale)
        assert torch.equal(a[:8], torch.zeros(8)) and a[8:].abs().min() > 0


def test_the_variance_filter_keeps_the_groups_whose_rewards_vary_most_in_draw_order() -> None:
    from seccrm.rl.batching import variance_filter
    rewards = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.1, 0.0, 0.1], [1.0, 0.0, 0.0]])
    assert variance_filter(rewards, [0, 1, 2, 3], 0.5) == [1, 3]
    assert variance_filter(rewards, [0, 1, 2, 3], 1.0) == [0, 1, 2, 3]
    assert variance_filter(rewards, [0, 2], 0.1) == [2]                # at least one group
