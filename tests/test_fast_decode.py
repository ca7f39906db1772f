"""The fast rollout path: greedy equals generate, sampling follows the nucleus softmax, fallbacks.

CPU tests run the engine without graphs, both with exact sizes and with the bucketed sizes and
compaction that CUDA graphs use (``buckets=True``). GPU tests (marked ``gpu``) capture graphs.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from seccrm.engine.decode_buffers import bucket_length
from seccrm.engine.fast_decode import FastRollouts
from seccrm.engine.models import build_tiny_model, load_tokenizer
from seccrm.engine.rollout import generate_rollouts

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [[1, 45, 201, 17, 99], [3, 7], list(range(400, 430))]        # ragged: 5, 2 and 30 tokens
VOCAB = 512      # the tokenizer's first 512 ids: small logits keep the tests fast


@pytest.fixture(scope="module")
def tok() -> Any:
    return load_tokenizer("tiny")


def _model(tok: Any, arch: str = "llama", seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    """A tiny random model whose greedy continuations vary (default init repeats one token).

    float64, so that no argmax tie between two implementations can be decided by rounding.
    """
    model = build_tiny_model(VOCAB, seed=seed, arch=arch, dtype=dtype)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 or name.endswith("proj.bias"):         # Qwen2's q/k/v biases too
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype) * 0.2)
    model.generation_config.eos_token_id = 2
    return model.eval()


def _reference(model: torch.nn.Module, prompt: list[int], max_new: int, eos: list[int]) -> list[int]:
    """``model.generate``'s greedy tokens, cut after the first stop token (kept, as rollouts do)."""
    out = model.generate(torch.tensor([prompt], device=model.device), max_new_tokens=max_new, do_sample=False,
                         eos_token_id=eos, pad_token_id=2)[0, len(prompt):].tolist()
    stops = [i for i, t in enumerate(out) if t in eos]
    return out[:stops[0] + 1] if stops else out


def test_bucket_length_wastes_at_most_an_eighth() -> None:
    assert [bucket_length(x) for x in (1, 16, 100, 512, 513, 4000)] == [16, 16, 104, 512, 576, 4096]
    for length in range(16, 5000, 7):
        b = bucket_length(length)
        assert length <= b <= length * 1.125, (length, b)
    assert len({bucket_length(x) for x in range(257, 513)}) == 8            # 8 buckets per octave


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_greedy_equals_generate_with_eos(tok: Any, arch: str) -> None:
    model = _model(tok, arch)
    plain = [_reference(model, p, 16, [2]) for p in PROMPTS]
    assert all(len(set(c)) > 8 for c in plain), "the test model should not repeat one token"
    # An extra stop token that greedy decoding meets at step 6 of the first prompt only: that row
    # ends early while the others run on, and its group leaves the batch.
    stop = plain[0][6]
    assert stop not in plain[0][:6] and all(stop not in c for c in plain[1:])
    model.generation_config.eos_token_id = [2, stop]
    expected = [_reference(model, p, 16, [2, stop]) for p in PROMPTS]
    assert expected[0] == plain[0][:7] and expected[1:] == plain[1:]
    for buckets in (False, True):          # exact sizes; the bucketed sizes and compaction of graphs
        engine = FastRollouts(model, tok, buckets=buckets)
        ro = engine.generate(PROMPTS, n=2, max_new_tokens=16, greedy=True, stop_after_answer=False)
        assert ro.group_size == 2 and ro.completion_ids == [c for c in expected for _ in range(2)], buckets
        assert ro.finished == [True, True] + [False] * 4
        assert engine.stats["compactions"] >= 1


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3", "mistral"])
def test_fused_decoder_greedy_equals_generate(tok: Any, arch: str) -> None:
    """The few-operation decoder (models without adapters) gives ``generate``'s tokens, also after a
    group has finished and left the batch, for ragged (left-padded) prompts."""
    from seccrm.engine.shared_prefix import FusedDecoder, fused_decode_reason

    model = _model(tok, arch, seed=9)
    assert fused_decode_reason(model) is None
    plain = [_reference(model, p, 12, [2]) for p in PROMPTS]
    # A stop token that one row meets early and the others never: that group finishes first.
    stop = next(t for r, row in enumerate(plain) for i, t in enumerate(row[3:], 3)
                if t not in row[:i] and all(t not in other for o, other in enumerate(plain) if o != r))
    model.generation_config.eos_token_id = [2, stop]
    expected = [_reference(model, p, 12, [2, stop]) for p in PROMPTS]
    assert len({len(c) for c in expected}) > 1, "one group should finish before the others"
    ro = generate_rollouts(model, tok, PROMPTS, n=2, max_new_tokens=12, greedy=True, stop_after_answer=False,
                           decoder=FusedDecoder(model, 12))
    assert ro.completion_ids == [c for c in expected for _ in range(2)]


@pytest.mark.parametrize("dtype,tol,pack", [(torch.float64, 1e-9, True), (torch.float32, 1e-5, True),
                                            (torch.float32, 1e-5, False), (torch.bfloat16, 0.1, True),
                                            (torch.bfloat16, 0.1, False)])
def test_fused_decoder_logits_match_the_module_decoder(tok: Any, dtype: torch.dtype, tol: float, pack: bool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Step by step, the fused decoder's logits are the module-by-module decoder's (to rounding),
    with oneDNN's packed weights (where this CPU has them) and with plain ``F.linear``."""
    from seccrm.engine import shared_prefix
    from seccrm.engine.shared_prefix import FusedDecoder, SharedPrefixDecoder

    if not pack:
        monkeypatch.setitem(shared_prefix._PACKING, dtype, False)
    model = _model(tok, "qwen2", seed=10, dtype=dtype)
    fused, plain = FusedDecoder(model, 8), SharedPrefixDecoder(model, 8)
    with torch.no_grad():
        a, b = fused.prefill(PROMPTS, 2), plain.prefill(PROMPTS, 2)
        assert torch.equal(a, b)
        packed = [w.qkv.packed is not None for w in fused.weights]
        assert all(packed) == (pack and dtype != torch.float64 and shared_prefix._packing_works(dtype))
        tokens = torch.arange(6) * 37 + 5
        for step in range(5):
            a, b = fused.step(tokens), plain.step(tokens)
            scale = b.abs().max()
            assert (a - b).abs().max() <= tol * scale, (step, float((a - b).abs().max()), float(scale))
            if step == 2:                                    # the middle group leaves
                keep = torch.tensor([0, 1, 4, 5])
                fused.keep(keep)
                plain.keep(keep)
                tokens = tokens[keep]


def test_decoder_choice(tok: Any) -> None:
    """Plain models get the fused decoder, LoRA models the module decoder, others the HF cache."""
    from transformers import AutoModelForCausalLM, GPT2Config

    from seccrm.engine.models import LoraSettings, apply_lora
    from seccrm.engine.rollout import HFCacheDecoder, make_decoder
    from seccrm.engine.shared_prefix import FusedDecoder, SharedPrefixDecoder

    model = _model(tok, seed=11)
    assert type(make_decoder(model, 2, 8)) is FusedDecoder
    lora = apply_lora(_model(tok, seed=11), LoraSettings(r=2, target_modules=("q_proj",)))
    assert type(make_decoder(lora, 2, 8)) is SharedPrefixDecoder
    gpt2 = AutoModelForCausalLM.from_config(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=VOCAB))
    assert type(make_decoder(gpt2, 2, 8)) is HFCacheDecoder


class AnswerAt:
    """The tiny tokenizer, except that token ``tag`` reads as ``</answer>`` (forces the stop)."""

    def __init__(self, tok: Any, tag: int):
        self.tok, self.tag = tok, tag
        self.pad_token_id, self.eos_token_id = tok.pad_token_id, tok.eos_token_id

    def __len__(self) -> int:
        return len(self.tok)

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return ["</answer>" if i == self.tag else p for i, p in zip(ids, self.tok.convert_ids_to_tokens(ids), strict=True)]

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return "".join("</answer>" if i == self.tag else self.tok.decode([i]) for i in ids)

    def batch_decode(self, rows: list[list[int]], skip_special_tokens: bool = False) -> list[str]:
        return [self.decode(r) for r in rows]


def test_stops_right_after_answer_like_generate(tok: Any) -> None:
    model = _model(tok, "qwen2", seed=2)
    plain = [_reference(model, p, 16, [2]) for p in PROMPTS]
    tag = plain[1][4]
    cut = [c[:c.index(tag) + 1] if tag in c else c for c in plain]
    assert len(cut[1]) <= 5 and len({len(c) for c in cut}) > 1
    ro = FastRollouts(model, AnswerAt(tok, tag)).generate(PROMPTS, 1, 16, greedy=True)
    assert ro.completion_ids == cut
    assert ro.finished == [tag in c for c in plain]
    assert ro.texts[1].endswith("</answer>")


def test_sampling_gives_generate_rollouts_tokens(tok: Any) -> None:
    """Same seed, same tokens as the shared-prefix path, while rows and groups finish at different steps."""
    model = _model(tok, seed=3)
    model.generation_config.eos_token_id = list(range(2, VOCAB, 9))    # rows end early, at random
    ref = generate_rollouts(model, tok, PROMPTS, n=4, max_new_tokens=16, seed=11)
    exact = FastRollouts(model, tok).generate(PROMPTS, 4, 16, seed=11)
    bucketed = FastRollouts(model, tok, buckets=True)
    got = bucketed.generate(PROMPTS, n=4, max_new_tokens=16, seed=11)
    lengths = [len(c) for c in ref.completion_ids]
    assert len(set(lengths)) > 3 and min(lengths) < 16 and any(ref.finished)
    for ro in (exact, got):
        assert ro.completion_ids == ref.completion_ids and ro.finished == ref.finished and ro.texts == ref.texts
    assert bucketed.stats["compactions"] >= 1
    other = FastRollouts(model, tok).generate(PROMPTS, 4, 16, seed=12)
    assert other.completion_ids != ref.completion_ids


def test_waves_and_engine_reuse(tok: Any) -> None:
    model = _model(tok, seed=4)
    engine = FastRollouts(model, tok, max_rows=4)                     # 3 prompts x 4 rows: 3 waves
    a = engine.generate(PROMPTS, n=4, max_new_tokens=8, seed=5)
    b = engine.generate(PROMPTS, n=4, max_new_tokens=8, seed=5)
    assert engine.stats["waves"] == 6 and a.completion_ids == b.completion_ids
    assert all(len(c) == 8 for c in a.completion_ids) and len({tuple(c) for c in a.completion_ids}) == 12
    # Weights changed in place (an optimizer step): the same engine sees the new weights.
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight.mul_(-1.0)
    c = engine.generate(PROMPTS, n=1, max_new_tokens=12, greedy=True, stop_after_answer=False)
    assert c.completion_ids == [_reference(model, p, 12, [2]) for p in PROMPTS]
    # Parameters replaced (cast to float32): the engine starts afresh rather than read stale tensors.
    model.float()
    d = engine.generate(PROMPTS, n=1, max_new_tokens=4, greedy=True, stop_after_answer=False)
    assert engine._buf is not None and engine._buf.own_k[0].dtype == torch.float32
    assert len(d.completion_ids) == 3


def _nucleus_probs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The distribution nucleus sampling should follow, computed by a plain loop."""
    p = torch.softmax(logits.detach().double() / temperature, dim=-1)
    keep, mass = [], 0.0
    for i in sorted(range(len(p)), key=lambda i: -float(p[i])):
        keep.append(i)
        mass += float(p[i])
        if mass >= top_p:
            break
    q = torch.zeros_like(p)
    q[keep] = p[keep]
    return q / q.sum()


def _chi2(counts: torch.Tensor, probs: torch.Tensor) -> tuple[float, int]:
    """Pearson chi-square of counts against probs, bins expecting fewer than 5 pooled; (chi2, df)."""
    exp = probs * counts.sum()
    big = exp >= 5
    obs_bins = torch.cat([counts[big], counts[~big].sum()[None]])
    exp_bins = torch.cat([exp[big], exp[~big].sum()[None]])
    keep = exp_bins > 0
    return float(((obs_bins[keep] - exp_bins[keep]) ** 2 / exp_bins[keep]).sum()), int(keep.sum()) - 1


def _chi2_critical(df: int, z: float = 3.09) -> float:
    """Upper 0.999 chi-square quantile (Wilson-Hilferty)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def _check_first_tokens(model: torch.nn.Module, tok: Any, device: str, **options: Any) -> None:
    """4000 first tokens vs the exact temperature-0.7 / top-p-0.9 distribution (fixed seed: not flaky)."""
    prompt = [1, 45, 201, 17]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt], device=device)).logits[0, -1].cpu()
    expected = _nucleus_probs(logits, 0.7, 0.9)
    ro = FastRollouts(model, tok, **options).generate([prompt], n=4000, max_new_tokens=2, seed=3)
    counts = torch.bincount(torch.tensor([c[0] for c in ro.completion_ids]), minlength=300).double()
    assert counts[expected == 0].sum() == 0                                  # nothing outside the nucleus
    chi2, df = _chi2(counts, expected)
    assert 5 <= df <= 200 and chi2 < _chi2_critical(df), (chi2, df)
    wrong, wrong_df = _chi2(counts, _nucleus_probs(logits, 1.0, 1.0))       # the test has power
    assert wrong > _chi2_critical(wrong_df)


def _spread_model(dtype: torch.dtype) -> torch.nn.Module:
    model = build_tiny_model(300, seed=5, dtype=dtype)
    with torch.no_grad():       # spread the logits: the nucleus then holds about 100 of the 300 tokens
        model.model.norm.weight.mul_(5.0)
    return model


def test_first_token_frequencies_follow_nucleus_softmax(tok: Any) -> None:
    _check_first_tokens(_spread_model(torch.float64), tok, "cpu", buckets=True)


def test_an_unsupported_model_is_refused_naming_its_type() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, bos_token_id=1, n_embd=32, n_layer=1, n_head=2, eos_token_id=2))
    with pytest.raises(TypeError, match="model type 'gpt2' is not one of llama, qwen2, qwen3, mistral"):
        FastRollouts(model, None)


def test_lora_model_greedy_equals_generate(tok: Any) -> None:
    from seccrm.engine.models import LoraSettings, apply_lora

    model = apply_lora(_model(tok, seed=6), LoraSettings(r=4, target_modules=("q_proj", "v_proj", "up_proj")))
    with torch.no_grad():      # a fresh adapter is zero; make it change the outputs
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(7))
    ro = FastRollouts(model, tok).generate(PROMPTS, 1, 10, greedy=True, stop_after_answer=False)
    assert ro.completion_ids == [_reference(model, p, 10, [2]) for p in PROMPTS]


@pytest.mark.slow
def test_benchmark_smoke_mode(tmp_path: Path) -> None:
    """``bench_gpu.py --smoke`` runs every measurement on a tiny model and writes its table."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_gpu
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\n## Other\n\nkeep me\n")
    assert bench_gpu.main(["--smoke", "--out", str(out)]) == 0
    text = out.read_text()
    assert "keep me" in text and bench_gpu.SECTION in text
    for what in ("rollout fast", "rollout shared-prefix", "rollout generate", "train fwd+bwd",
                 "loss peak memory", "report-shaped step", "greedy equals generate"):
        assert what in text, what


# ------------------------------------------------------------------------------------------------
# GPU: captured graphs
# ------------------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_gpu_graphs_greedy_equal_generate(tok: Any, arch: str) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    model = _model(tok, arch, dtype=torch.float32).cuda()
    engine = FastRollouts(model, tok)
    assert engine.graphs
    ro = engine.generate(PROMPTS, n=2, max_new_tokens=40, greedy=True, stop_after_answer=False)
    for b, comp in enumerate(ro.completion_ids):
        assert comp == _reference(model, PROMPTS[b // 2], 40, [2]), b
    assert engine.stats["graphs_captured"] >= 3 and engine.stats["graph_replays"] > 20


@pytest.mark.gpu
def test_gpu_graphs_sample_like_eager_buckets(tok: Any) -> None:
    """A replayed graph runs the eager step's kernels: same seed, same tokens, as groups finish."""
    model = _model(tok, seed=3, dtype=torch.float32).cuda()
    model.generation_config.eos_token_id = list(range(2, VOCAB, 9))
    graphs = FastRollouts(model, tok)
    eager = FastRollouts(model, tok, cuda_graphs=False, buckets=True)
    a = graphs.generate(PROMPTS * 3, n=4, max_new_tokens=32, seed=1)
    b = eager.generate(PROMPTS * 3, n=4, max_new_tokens=32, seed=1)
    assert a.completion_ids == b.completion_ids
    assert graphs.stats["compactions"] >= 1 and graphs.stats["graph_replays"] > 0


@pytest.mark.gpu
def test_gpu_first_token_frequencies(tok: Any) -> None:
    _check_first_tokens(_spread_model(torch.float32).cuda(), tok, "cuda")
