"""Rollouts: greedy equals generate, seeded sampling, stopping at EOS and after </answer>."""

from __future__ import annotations

import math

import pytest
import torch

from seccrm.engine.decoding import StopRule, sample_next_tokens
from seccrm.engine.models import build_tiny_model, load_tokenizer
from seccrm.engine.rollout import HFCacheDecoder, encode_prompts, generate_rollouts


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("tiny")


@pytest.fixture(scope="module")
def tiny64(tok):
    # float64 so that argmax ties between implementations cannot happen by rounding.
    return build_tiny_model(len(tok), seed=0, dtype=torch.float64)


def _prompts(tok) -> list[list[int]]:
    chats = [[{"role": "user", "content": "Which agent closed the most cases?"}],
             [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
             [{"role": "user", "content": "Name the month with the most cases in 2024, please."}]]
    return encode_prompts(tok, chats)


def test_encode_prompts_ends_with_generation_prompt(tok) -> None:
    ids = _prompts(tok)
    assert len(ids) == 3 and len({len(p) for p in ids}) == 3
    assert tok.decode(ids[0]).endswith("<|im_start|>assistant\n")


def _generate_reference(model, prompt: list[int], max_new: int) -> list[int]:
    out = model.generate(torch.tensor([prompt]), max_new_tokens=max_new, do_sample=False,
                         eos_token_id=2, pad_token_id=2)
    return out[0, len(prompt):].tolist()


@pytest.mark.parametrize("fallback", [False, True])
def test_greedy_equals_generate(tok, tiny64, fallback: bool) -> None:
    prompts = _prompts(tok)
    dec = HFCacheDecoder(tiny64, pad_id=2) if fallback else None
    ro = generate_rollouts(tiny64, tok, prompts, n=2, max_new_tokens=12, greedy=True,
                           stop_after_answer=False, decoder=dec)
    assert len(ro.completion_ids) == 6 and ro.group_size == 2
    for b, comp in enumerate(ro.completion_ids):
        assert comp == _generate_reference(tiny64, prompts[b // 2], 12)


def test_sampling_is_deterministic_for_a_seed(tok, tiny64) -> None:
    prompts = _prompts(tok)[:2]
    a = generate_rollouts(tiny64, tok, prompts, n=4, max_new_tokens=6, seed=7)
    b = generate_rollouts(tiny64, tok, prompts, n=4, max_new_tokens=6, seed=7)
    c = generate_rollouts(tiny64, tok, prompts, n=4, max_new_tokens=6, seed=8)
    assert a.completion_ids == b.completion_ids
    assert a.completion_ids != c.completion_ids
    # Samples within a group differ (a random tiny model is nearly uniform over 49k tokens).
    assert len({tuple(c) for c in a.completion_ids[:4]}) == 4


class ScriptedDecoder:
    """Logits that force each row to emit a scripted token sequence (tests stopping logic)."""

    def __init__(self, scripts: list[list[int]], vocab: int):
        self.scripts, self.vocab, self.t = scripts, vocab, 0
        self.rows = torch.arange(len(scripts))

    def _logits(self) -> torch.Tensor:
        out = torch.zeros(len(self.rows), self.vocab)
        for a, r in enumerate(self.rows.tolist()):
            out[a, self.scripts[r][self.t]] = 100.0
        return out

    def prefill(self, prompts, n):
        assert len(prompts) * n == len(self.scripts) and n == 1
        return self._logits()

    def step(self, tokens):
        self.t += 1
        return self._logits()

    def keep(self, rows):
        self.rows = self.rows[rows]


def test_stops_at_eos_and_right_after_answer(tok, tiny64) -> None:
    answer = tok.encode("I think <answer>005Wt0000000000BAAA</answer> and more text", add_special_tokens=False)
    cut = len(tok.encode("I think <answer>005Wt0000000000BAAA</answer>", add_special_tokens=False))
    eos_row = tok.encode("Hello there", add_special_tokens=False) + [2]
    long_row = list(range(100, 160))      # 60 ordinary tokens, no EOS, no tag
    scripts = [answer + [5] * 40, eos_row + [7] * 40, long_row]
    ro = generate_rollouts(tiny64, tok, [[1, 2], [3], [4]], n=1, max_new_tokens=40, greedy=True,
                           decoder=ScriptedDecoder(scripts, len(tok)))
    assert ro.completion_ids[0] == answer[:cut]
    assert ro.texts[0] == "I think <answer>005Wt0000000000BAAA</answer>"
    assert ro.completion_ids[1] == eos_row and ro.texts[1] == "Hello there"
    assert len(long_row) > 40 and ro.completion_ids[2] == long_row[:40]
    assert ro.finished == [True, True, False]
    # Without answer stopping, the first row runs to the cap.
    ro = generate_rollouts(tiny64, tok, [[1, 2], [3], [4]], n=1, max_new_tokens=40, greedy=True,
                           stop_after_answer=False, decoder=ScriptedDecoder(scripts, len(tok)))
    assert ro.completion_ids[0] == (answer + [5] * 40)[:40] and ro.finished[0] is False


def test_answer_stop_handles_split_and_merged_tags(tok) -> None:
    stop = StopRule(tok, [2], 8)
    ids = tok.encode("x</answer>\n", add_special_tokens=False)
    hits = [stop.closed(ids[:k]) for k in range(1, len(ids) + 1)]
    assert hits.index(True) == len(tok.encode("x</answer>", add_special_tokens=False)) - 1
    assert not stop.closed(tok.encode("<answer>42", add_special_tokens=False))
    assert not stop.closed(tok.encode("a > b", add_special_tokens=False))
    # byte by byte, the tag spans as many tokens as it has characters: the default window still sees it
    spelled = [i for c in "x</answer>" for i in tok.encode(c, add_special_tokens=False)]
    assert stop.closed(spelled) and not StopRule(tok, [2], 8, window=len("</answer>") - 1).closed(spelled)


def test_turn_stop_ignores_case_and_ends_on_eos(tok) -> None:
    import numpy as np

    stop = StopRule(tok, [2], 8, ("</execute>", "</answer>"), ignore_case=True)
    ids = tok.encode("SELECT 1</EXECUTE>", add_special_tokens=False)
    assert stop.closed(ids) and not StopRule(tok, [2], 8).closed(ids)
    rows = np.array([ids, ids[:-1] + [2], ids[:-1] + [5]])
    assert stop.ends(rows[:, -1], rows, np.arange(3), len(ids)).tolist() == [True, True, False]


def _chi2_critical(df: int, z: float = 3.09) -> float:
    """Upper chi-square quantile (Wilson-Hilferty; z = 3.09 is the 0.999 normal quantile)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def _nucleus_probs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The distribution nucleus sampling should follow, computed by a plain loop."""
    p = torch.softmax(logits.detach().double() / temperature, dim=-1)
    order = sorted(range(len(p)), key=lambda i: -float(p[i]))
    keep, mass = [], 0.0
    for i in order:
        keep.append(i)
        mass += float(p[i])
        if mass >= top_p:
            break
    q = torch.zeros_like(p)
    q[keep] = p[keep]
    return q / q.sum()


def test_nucleus_sampling_follows_filtered_softmax() -> None:
    logits = torch.linspace(3.0, -3.0, 30)
    expected = _nucleus_probs(logits, 0.7, 0.9)
    gen = torch.Generator().manual_seed(0)
    draws = sample_next_tokens(logits.expand(20000, -1), 0.7, 0.9, gen)
    counts = torch.bincount(draws, minlength=30).double()
    assert counts[expected == 0].sum() == 0                      # nothing outside the nucleus
    keep = expected > 0
    exp = expected[keep] * 20000
    chi2 = float(((counts[keep] - exp) ** 2 / exp).sum())
    assert chi2 < _chi2_critical(int(keep.sum()) - 1)
    assert torch.equal(sample_next_tokens(logits[None], 0.7, 0.9, None, greedy=True), torch.tensor([0]))


def test_nucleus_tiers_draw_what_a_full_sort_draws() -> None:
    """Rows whose nucleus fits the 64 candidates, needs the 1,024-token tier, or needs the full sort:
    the same generator state gives the tokens of sorting every row (the tiers are an optimisation)."""
    g = torch.Generator().manual_seed(3)
    V = 8000
    logits = torch.randn(6, V, generator=g) * 0.05                       # flat rows: full sort
    logits[0, :10] += 12.0                                               # peaked: 64 candidates
    logits[1, :10] += 12.0
    logits[2, :600] += 9.0                                               # 600 good tokens: wide tier
    logits[3, :600] += 9.0
    for seed in range(5):
        fast = sample_next_tokens(logits, 0.7, 0.9, torch.Generator().manual_seed(seed))
        full = sample_next_tokens(logits, 0.7, 0.9, torch.Generator().manual_seed(seed), candidates=V)
        assert torch.equal(fast, full), seed
        assert bool((fast[:2] < 10).all()) and bool((fast[2:4] < 600).all())


# ------------------------------------------------------------------------------------------------
# The shared-prefix decoder against Hugging Face's cache
# ------------------------------------------------------------------------------------------------

def test_qwen2_greedy_equals_generate(tok) -> None:
    model = build_tiny_model(len(tok), seed=1, arch="qwen2", dtype=torch.float64)
    prompts = _prompts(tok)
    ro = generate_rollouts(model, tok, prompts, n=1, max_new_tokens=10, greedy=True, stop_after_answer=False)
    for b, comp in enumerate(ro.completion_ids):
        assert comp == _generate_reference(model, prompts[b], 10)


def test_shared_and_fallback_sample_the_same_tokens(tok) -> None:
    """Same seed, same tokens, while rows and whole groups finish at different steps."""
    model = build_tiny_model(len(tok), seed=3, dtype=torch.float64)
    # Many stop tokens, so that rows end early and groups leave the batch at different steps.
    model.generation_config.eos_token_id = list(range(2, len(tok), 9))
    prompts = _prompts(tok)
    shared = generate_rollouts(model, tok, prompts, n=4, max_new_tokens=16, seed=11)
    fallback = generate_rollouts(model, tok, prompts, n=4, max_new_tokens=16, seed=11,
                                 decoder=HFCacheDecoder(model, pad_id=2))
    assert shared.completion_ids == fallback.completion_ids
    assert shared.finished == fallback.finished
    lengths = [len(c) for c in shared.completion_ids]
    assert len(set(lengths)) > 3 and any(shared.finished) and min(lengths) < 16


def test_first_token_frequencies_follow_nucleus_softmax(tok) -> None:
    """End to end: 4000 first tokens vs the temperature-0.7 / top-p-0.9 distribution (chi-square)."""
    model = build_tiny_model(300, seed=5, dtype=torch.float64)
    with torch.no_grad():      # spread the logits: the nucleus then holds about 100 of the 300 tokens
        model.model.norm.weight.mul_(5.0)
    prompt = [1, 45, 201, 17]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt])).logits[0, -1]
    expected = _nucleus_probs(logits, 0.7, 0.9)
    ro = generate_rollouts(model, tok, [prompt], n=4000, max_new_tokens=1, temperature=0.7, top_p=0.9, seed=3)
    counts = torch.bincount(torch.tensor([c[0] for c in ro.completion_ids]), minlength=300).double()
    assert counts[expected == 0].sum() == 0
    chi2, df = _chi2(counts, expected)
    assert 5 <= df <= 200, df
    assert chi2 < _chi2_critical(df), (chi2, df)
    # The test has power: the untempered, unfiltered softmax is rejected on the same draws.
    wrong, wrong_df = _chi2(counts, _nucleus_probs(logits, 1.0, 1.0))
    assert wrong > _chi2_critical(wrong_df)


def _chi2(counts: torch.Tensor, probs: torch.Tensor) -> tuple[float, int]:
    """Pearson chi-square of observed counts against probs; bins expecting < 5 are pooled."""
    exp = probs * counts.sum()
    big = exp >= 5
    obs_bins = torch.cat([counts[big], counts[~big].sum()[None]])
    exp_bins = torch.cat([exp[big], exp[~big].sum()[None]])
    keep = exp_bins > 0
    chi2 = float(((obs_bins[keep] - exp_bins[keep]) ** 2 / exp_bins[keep]).sum())
    return chi2, int(keep.sum()) - 1


@pytest.mark.slow
def test_smollm2_greedy_equals_generate() -> None:
    from seccrm.engine.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer("smollm2")
    chats = [[{"role": "system", "content": "Answer inside <answer></answer>."},
              {"role": "user", "content": q}]
             for q in ("Which month comes after March?", "What is 12 + 30?",
                       "Name a primary colour.", "Case 500Wt00000000001AAA is owned by which User Id?")]
    prompts = encode_prompts(tok, chats)
    ro = generate_rollouts(model, tok, prompts, n=1, max_new_tokens=24, greedy=True, stop_after_answer=False)
    for b, comp in enumerate(ro.completion_ids):
        ref = _generate_reference(model, prompts[b], 24)
        ref = ref[:ref.index(2) + 1] if 2 in ref else ref
        assert comp == ref


def test_unsupported_architecture_rolls_out_through_the_fallback(tok, caplog: pytest.LogCaptureFixture,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForCausalLM, GPT2Config

    import seccrm.engine.rollout
    monkeypatch.setattr(seccrm.logs, "_SEEN", set())  # the reason is logged once per process

    model = AutoModelForCausalLM.from_config(
        GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=len(tok), bos_token_id=1, eos_token_id=2),
        dtype=torch.float64).eval()
    prompts = _prompts(tok)
    with caplog.at_level("WARNING", logger="seccrm.engine.rollout"):
        ro = generate_rollouts(model, tok, prompts, n=2, max_new_tokens=6, greedy=True, stop_after_answer=False)
    assert "fall back" in caplog.text and "gpt2" in caplog.text
    for b, comp in enumerate(ro.completion_ids):
        assert comp == _generate_reference(model, prompts[b // 2], 6)


def test_lora_model_greedy_equals_generate(tok) -> None:
    from seccrm.engine.models import LoraSettings, apply_lora

    model = apply_lora(build_tiny_model(len(tok), seed=4, dtype=torch.float64), LoraSettings(r=4, alpha=8))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():       # peft starts B at zero; make the adapter change the outputs
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    prompts = _prompts(tok)[:2]
    ro = generate_rollouts(model, tok, prompts, n=1, max_new_tokens=8, greedy=True, stop_after_answer=False)
    with model.disable_adapter():
        base = generate_rollouts(model, tok, prompts, n=1, max_new_tokens=8, greedy=True, stop_after_answer=False)
    assert ro.completion_ids != base.completion_ids            # the adapter is in the computation
    for b, comp in enumerate(ro.completion_ids):
        assert comp == _generate_reference(model, prompts[b], 8)


def test_rollouts_and_the_fast_engine_run_the_one_decoding_loop(tok, tiny64, monkeypatch) -> None:
    """Every path samples and stops in ``decoding.decode``; decoders only compute logits."""
    import seccrm.engine.rollout as rollout
    from seccrm.engine.fast_decode import FastRollouts

    calls: list[str] = []
    real = rollout.decode
    monkeypatch.setattr(rollout, "decode", lambda dec, *a, **k: calls.append(type(dec).__name__) or real(dec, *a, **k))
    prompts = _prompts(tok)
    ref = generate_rollouts(tiny64, tok, prompts, n=2, max_new_tokens=6, greedy=True)
    fast = FastRollouts(tiny64, tok, max_rows=2).generate(prompts, 2, 6, greedy=True)    # one group per wave
    assert calls == ["FusedDecoder"] + ["FastRollouts"] * 3
    assert fast.completion_ids == ref.completion_ids
