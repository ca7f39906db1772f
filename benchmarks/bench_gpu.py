"""Benchmark of the one-GPU path (issue 5): rollouts, training throughput, loss memory, one full step.

    python benchmarks/bench_gpu.py                 # one GPU: the whole run, appended to BENCHMARKS.md
    python benchmarks/bench_gpu.py --smoke         # any machine, seconds: every code path on a tiny model
    python benchmarks/bench_gpu.py --only rollout,train --no-write

Models are built from configs with random weights (no download): the Qwen2.5-3B architecture
(hidden 2048, 36 layers, 16 heads, 2 KV heads, intermediate 11008, vocabulary 151,936, tied
embeddings) and the SmolLM2-135M one, in bf16. Random weights give nearly flat next-token
distributions (logit std about 0.9 over 151,936 tokens), so top-p 0.9 would keep most of the
vocabulary, unlike a trained model whose nucleus holds a few tokens. The final norm is therefore
scaled so that the logits have std ``--logit-std`` (default 5; 0 leaves the model as built). Every
path samples from the same model, so the comparison is fair; ``--logit-std 0`` measures the flat case.
Random models rarely emit EOS: completions run to the length cap, the worst case for a step.

Measured in one run (each a row of the table):

- ``greedy equals generate`` and ``sampling chi-square``: the fast path against ``model.generate``
  (float32 SmolLM2 architecture) and against the exact nucleus distribution of the first token.
- ``rollout fast`` / ``rollout shared-prefix`` / ``rollout generate``: new tokens per second of
  ``seccrm.engine.fast_decode.FastRollouts`` (second call; the first one, with graph captures, is shown too),
  ``seccrm.engine.rollout.generate_rollouts`` and plain ``model.generate`` on the prompts repeated n times.
  Sequences are prompt groups of n = 8 completions (GRPO's shape); sampling at temperature 0.7,
  top-p 0.9.
- ``train fwd+bwd``: training tokens per second and utilisation by the 6N rule (N = parameters,
  tied embeddings counted once; tokens = tokens run through the model, a shared prompt once) against
  the GPU's peak dense bf16 (detected from its name, or ``--peak-tflops``); for a plain Hugging Face
  forward + backward at 4 x 2048 and for the project's path (shared prompt, chunked log-probs).
- ``loss peak memory``: the chunked log-prob + entropy loss alone at 8 x 4096 tokens, and the
  whole model's forward + backward at 8 x 4096 with gradient checkpointing.
- ``report-shaped step``: 256 prompts x 8 rollouts, 512-token prompts, up to 512 new tokens: the SEC
  bandit draws the arms and instances of a small CRM suite (built in a temporary folder), fast
  rollouts, scoring with ``seccrm.world.rewards.score_details`` (every fourth completion replaced by the
  instance's gold answer, so scoring does real work), group advantages, the bandit update, and the
  policy update (micro-batches of 4 groups, gradient checkpointing, AdamW).
"""

from __future__ import annotations

import os

# Before torch loads OpenMP (CPU runs only: --smoke, --cpu-demo): idle threads spin on a quiet
# machine and sleep when other jobs keep the cores busy (seccrm.engine.openmp).
from seccrm.engine.openmp import configure

configure()

import argparse
import datetime as dt
import gc
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

SECTION = "## One GPU (issue 5)"
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "GH200": 989.0, "A100": 312.0,
                    "L40S": 362.0, "L4": 121.0}
"""Dense bf16 peaks (TFLOP/s) from the vendor's data sheets, matched against the device name in order."""


@dataclass
class Shapes:
    """What one run measures; ``full()`` is the issue's shape, ``smoke()`` a tiny one for tests."""

    main_arch: str                                  # rollouts (first case), training, loss, the step
    dtype: torch.dtype
    rollout_cases: list[tuple[str, int, int, int]]  # (arch, sequences, prompt tokens, new tokens)
    n: int                                          # completions per prompt
    plain_train: tuple[int, int]                    # (rows, tokens per row)
    group_train: tuple[int, int]                    # (prompt tokens, completion tokens), n rows
    loss_shape: tuple[int, int]                     # (rows, tokens per row)
    step: tuple[int, int, int]                      # (prompts, prompt tokens, new tokens)
    check_arch: str                                 # the model of the correctness rows (float32)
    check: tuple[int, int, int]                     # (prompts, new tokens greedy, first-token draws)
    repeats: int                                    # timed repetitions of the training measurements

    @staticmethod
    def full() -> Shapes:
        return Shapes("qwen2.5-3b", torch.bfloat16,
                      [("qwen2.5-3b", 256, 256, 256)] + [("smollm2-135m", s, 400, 256) for s in (64, 256, 512)],
                      8, (4, 2048), (512, 512), (8, 4096), (256, 512, 512), "smollm2-135m", (8, 64, 20000), 3)

    @staticmethod
    def cpu_demo() -> Shapes:
        """Rollouts only, the embedded SmolLM2-135M-Instruct in float32 at the cpu-demo preset's shape."""
        return Shapes("smollm2", torch.float32, [("smollm2", 32, 250, 32)], 8, (0, 0), (0, 0), (0, 0),
                      (0, 0, 0), "smollm2", (0, 0, 0), 1)

    @staticmethod
    def smoke() -> Shapes:
        return Shapes("tiny", torch.float32, [("tiny", 4, 16, 8)], 2, (2, 32), (16, 8), (2, 64), (4, 16, 8),
                      "tiny", (2, 8, 2000), 1)


def build_model(arch: str, dtype: torch.dtype, device: torch.device, logit_std: float, seed: int = 0) -> Any:
    """A random-weight causal LM of ``arch`` on ``device``; see the module docstring for ``logit_std``."""
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    from seccrm.engine.models import build_tiny_model, load_model_and_tokenizer, load_tokenizer

    model: Any
    if arch == "tiny":
        model = build_tiny_model(len(load_tokenizer("tiny")), seed=seed, dtype=dtype)
    elif arch == "smollm2":                   # the embedded model's real weights: no logit scaling
        return load_model_and_tokenizer("smollm2", dtype=dtype, device=device)[0].eval()
    else:
        if arch == "qwen2.5-3b":
            # rope_theta as a keyword works in transformers 4.x and 5.x (5.x files it in rope_parameters).
            config: Any = Qwen2Config(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                                      num_attention_heads=16, num_key_value_heads=2, vocab_size=151936,
                                      tie_word_embeddings=True, max_position_embeddings=32768,
                                      rms_norm_eps=1e-6, eos_token_id=2, pad_token_id=2, **_rope(1e6))
        elif arch == "smollm2-135m":
            config = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                                 num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                                 tie_word_embeddings=True, max_position_embeddings=8192, rms_norm_eps=1e-5,
                                 eos_token_id=2, pad_token_id=2, **_rope(1e5))
        else:
            raise ValueError(f"unknown architecture {arch!r}; known: qwen2.5-3b, smollm2-135m, tiny")
        torch.manual_seed(seed)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
    model = model.to(device).eval()
    if logit_std > 0:
        with torch.no_grad():
            ids = torch.randint(100, 1000, (2, 32), device=device)
            std = model(input_ids=ids).logits[:, -8:].float().std().item()
            model.get_decoder().norm.weight.mul_(logit_std / std)
    return model


def _rope(theta: float) -> dict[str, Any]:
    return {"rope_theta": theta}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0


def random_prompts(count: int, length: int, vocab: int, seed: int) -> list[list[int]]:
    """Prompts of exactly ``length`` ordinary token ids (the special ids below 100 are avoided)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(100, min(vocab, 49152), (count, length), generator=g).tolist()


# ------------------------------------------------------------------------------------------------
# Correctness on the device
# ------------------------------------------------------------------------------------------------

CHECK_LOGIT_STD = 3.5
"""Logit std of the correctness model: its nucleus then holds tens of tokens, a chi-square with power."""


def check_rows(arch: str, shapes: Shapes, device: torch.device, tok: Any,
               engine_opts: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Greedy equality with ``generate`` and a chi-square of first tokens, float32."""
    from seccrm.engine.fast_decode import FastRollouts

    model = build_model(arch, torch.float32, device, CHECK_LOGIT_STD, seed=1)
    count, new, draws = shapes.check
    prompts = [random_prompts(1, 24 + 7 * i, 49152, seed=i)[0] for i in range(count)]      # ragged
    ro = FastRollouts(model, tok, **engine_opts).generate(prompts, 1, new, greedy=True, stop_after_answer=False)
    equal = 0
    for p, c in zip(prompts, ro.completion_ids, strict=True):
        ref = model.generate(torch.tensor([p], device=device), max_new_tokens=new, do_sample=False,
                             eos_token_id=2, pad_token_id=2)[0, len(p):].tolist()
        ref = ref[:ref.index(2) + 1] if 2 in ref else ref
        equal += int(ref == c)
    rows = [("greedy equals generate", f"{arch} float32, {count} ragged prompts, {new} new tokens",
             f"{equal}/{count} sequences identical", "all")]
    prompt = prompts[0]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt], device=device)).logits[0, -1].double()
    probs = torch.softmax(logits / 0.7, dim=-1)
    sorted_p, order = probs.sort(descending=True)
    keep = order[(sorted_p.cumsum(0) - sorted_p) < 0.9]
    expected = torch.zeros_like(probs)
    expected[keep] = probs[keep] / probs[keep].sum()
    ro = FastRollouts(model, tok, **engine_opts).generate([prompt], draws, 1, seed=3)
    counts = torch.bincount(torch.tensor([c[0] for c in ro.completion_ids]), minlength=len(probs)).double()
    exp = expected.cpu() * draws
    big = exp >= 5
    obs_b = torch.cat([counts[big], counts[~big].sum()[None]])
    exp_b = torch.cat([exp[big], exp[~big].sum()[None]])
    ok = exp_b > 0
    chi2, df = float(((obs_b[ok] - exp_b[ok]) ** 2 / exp_b[ok]).sum()), int(ok.sum()) - 1
    outside = int(counts[expected.cpu() == 0].sum())
    if df > 0:
        crit = df * (1 - 2 / (9 * df) + 3.09 * (2 / (9 * df)) ** 0.5) ** 3      # Wilson-Hilferty, 0.999
        fit = f"chi2 {chi2:.1f} on {df} df (0.999 critical {crit:.1f})"
    else:
        fit = "one bin: no chi-square"
    rows.append(("sampling chi-square", f"{arch} float32, {draws} first tokens, nucleus of {len(keep)}",
                 f"{fit}; {outside} draws outside the nucleus", "below critical, 0 outside"))
    return rows


# ------------------------------------------------------------------------------------------------
# Rollouts
# ------------------------------------------------------------------------------------------------

def plain_generate(model: Any, prompts: list[list[int]], n: int, new: int) -> int:
    """``model.generate`` on every prompt repeated n times; returns the new tokens (up to EOS)."""
    rows = [p for p in prompts for _ in range(n)]
    ids = torch.tensor(rows, device=model.device)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=0.7,
                         top_p=0.9, top_k=0, max_new_tokens=new, pad_token_id=2, eos_token_id=2)
    comp = out[:, ids.shape[1]:]
    ended = (comp == 2).long().cumsum(1)
    return int(((ended == 0) | ((ended == 1) & (comp == 2))).sum())


def rollout_rows(case: tuple[str, int, int, int], shapes: Shapes, device: torch.device, logit_std: float,
                 tok: Any, engine_opts: dict[str, Any]) -> tuple[list[tuple[str, str, str, str]], float]:
    from seccrm.engine.fast_decode import FastRollouts
    from seccrm.engine.rollout import generate_rollouts

    arch, seqs, plen, new = case
    n = shapes.n
    model = build_model(arch, shapes.dtype, device, logit_std)
    prompts = random_prompts(seqs // n, plen, model.config.vocab_size, seed=seqs)
    shape = f"{arch}, {seqs} seqs ({seqs // n} prompts x {n}), {plen}-token prompts, {new} new"
    engine = FastRollouts(model, tok, **engine_opts)
    first, t_first = timed(lambda: engine.generate(prompts, n, new, seed=0, stop_after_answer=False), device)
    ro, t_fast = timed(lambda: engine.generate(prompts, n, new, seed=1, stop_after_answer=False), device)
    fast = sum(len(c) for c in ro.completion_ids) / t_fast
    rows = [("rollout fast", shape, f"{fast:,.0f} new tok/s ({t_fast:.1f} s; first call {t_first:.1f} s, "
             f"{engine.stats['graphs_captured']} graphs captured)", "")]
    engine.release()
    generate_rollouts(model, tok, prompts[:1], n=n, max_new_tokens=4, stop_after_answer=False)       # warm-up
    ro, t = timed(lambda: generate_rollouts(model, tok, prompts, n=n, max_new_tokens=new, seed=1,
                                            stop_after_answer=False), device)
    rows.append(("rollout shared-prefix", shape, f"{sum(len(c) for c in ro.completion_ids) / t:,.0f} new tok/s "
                 f"({t:.1f} s)", ""))
    plain_generate(model, prompts[:1], n, 4)                                                          # warm-up
    tokens, t = timed(lambda: plain_generate(model, prompts, n, new), device)
    rows.append(("rollout generate", shape, f"{tokens / t:,.0f} new tok/s ({t:.1f} s)", ""))
    rows[0] = (*rows[0][:3], f"{fast / (tokens / t):.1f}x generate")
    return rows, fast


# ------------------------------------------------------------------------------------------------
# Training throughput and memory
# ------------------------------------------------------------------------------------------------

def peak_flops(device: torch.device, override: float) -> tuple[float, str]:
    if override > 0:
        return override * 1e12, f"{override:.0f} TFLOP/s (given)"
    if device.type != "cuda":
        return 0.0, "no GPU peak"
    name = torch.cuda.get_device_name(device)
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in name:
            return tflops * 1e12, f"{name}: {tflops:.0f} TFLOP/s"
    return 0.0, f"{name}: peak unknown (pass --peak-tflops)"


def n_params(model: Any) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def train_rows(model: Any, shapes: Shapes, device: torch.device, peak: tuple[float, str]
               ) -> list[tuple[str, str, str, str]]:
    from seccrm.engine.forward import completion_logprobs

    N, (flops, peak_note) = n_params(model), peak
    model.train()
    vocab = model.config.vocab_size
    rows_out = []

    def plain() -> int:
        r, t = shapes.plain_train
        ids = torch.randint(100, vocab, (r, t), device=device)
        model(input_ids=ids, labels=ids).loss.backward()
        return r * t

    def grouped(share: bool) -> Callable[[], int]:
        p, c = shapes.group_train
        prompt = random_prompts(1, p, vocab, seed=1)
        comps = random_prompts(shapes.n, c, vocab, seed=2)

        def run() -> int:
            logp, _, mask = completion_logprobs(model, prompt, comps, shapes.n, with_entropy=True, share_prompt=share)
            (-(logp * mask).sum() / mask.sum()).backward()
            return p + shapes.n * c if share else shapes.n * (p + c)
        return run

    cases = [("plain HF loss", plain, False), ("shared prompt, chunked log-probs", grouped(True), False),
             ("shared prompt, chunked log-probs, checkpointing", grouped(True), True)]
    for label, fn, ckpt in cases:
        if ckpt:
            model.gradient_checkpointing_enable()
        fn()                                                                           # warm-up
        times, tokens = [], 0
        for _ in range(shapes.repeats):
            tokens, t = timed(fn, device)
            times.append(t)
        model.zero_grad(set_to_none=True)
        if ckpt:
            model.gradient_checkpointing_disable()
        t = statistics.median(times)
        util = f", {6 * N * tokens / t / flops:.0%} of peak by 6N" if flops else ""
        shape = (f"{shapes.plain_train[0]} x {shapes.plain_train[1]}" if label == "plain HF loss" else
                 f"1 prompt of {shapes.group_train[0]} + {shapes.n} x {shapes.group_train[1]}")
        rows_out.append(("train fwd+bwd", f"{shapes.main_arch}, {label}, {shape} tokens",
                         f"{tokens / t:,.0f} tok/s{util} ({peak_note})", ">= 45% of peak"))
    model.eval()
    return rows_out


def loss_memory_rows(model: Any, shapes: Shapes, device: torch.device) -> list[tuple[str, str, str, str]]:
    """Peak memory of the chunked loss alone, and of the whole model's step, at ``loss_shape``."""
    from seccrm.engine.forward import completion_logprobs
    from seccrm.engine.logprobs import chunked_logprobs_entropy

    cuda = device.type == "cuda"

    def peak_gib(fn: Callable[[], None], base: int = 0) -> str:
        if not cuda:
            fn()
            return "not tracked on CPU"
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        return f"{(torch.cuda.max_memory_allocated(device) - base) / 2**30:.1f} GiB"

    rows, T = shapes.loss_shape
    _, weight, _ = _head(model)
    inputs = {"hidden": torch.randn(rows * T, weight.shape[1], device=device, dtype=weight.dtype,
                                    requires_grad=True),
              "targets": torch.randint(0, weight.shape[0], (rows * T,), device=device)}

    def loss_alone() -> None:
        lp, ent = chunked_logprobs_entropy(inputs["hidden"], weight, inputs["targets"], chunk_size=1024,
                                           with_entropy=True)
        assert ent is not None
        (-(lp.mean()) - 0.01 * ent.mean()).backward()

    if cuda:
        torch.cuda.empty_cache()
    loss_peak = peak_gib(loss_alone, torch.cuda.memory_allocated(device) if cuda else 0)
    inputs.clear()
    model.zero_grad(set_to_none=True)
    prompt = random_prompts(1, min(512, T // 2), model.config.vocab_size, seed=3)
    comps = random_prompts(rows, T - len(prompt[0]), model.config.vocab_size, seed=4)

    def whole_model() -> None:
        logp, _, mask = completion_logprobs(model, prompt, comps, rows, with_entropy=True)
        (-(logp * mask).sum() / mask.sum()).backward()

    model.train()
    model.gradient_checkpointing_enable()
    if cuda:
        torch.cuda.empty_cache()
    model_peak = peak_gib(whole_model)
    model.gradient_checkpointing_disable()
    model.zero_grad(set_to_none=True)
    model.eval()
    return [("loss peak memory", f"chunked log-prob + entropy alone, {rows} x {T} tokens, 1024-token chunks",
             f"{loss_peak} above its inputs", "< 40 GiB"),
            ("loss peak memory", f"{shapes.main_arch} forward + backward, {rows} x {T} tokens "
             f"(1 shared prompt of {len(prompt[0])}), checkpointing",
             f"{model_peak} peak, weights and gradients included", "")]


def _head(model: Any) -> tuple[Any, torch.Tensor, torch.Tensor | None]:
    from seccrm.engine.anatomy import decoder_and_head

    return decoder_and_head(model)


# ------------------------------------------------------------------------------------------------
# One step of the report's shape
# ------------------------------------------------------------------------------------------------

def report_step_rows(model: Any, tok: Any, shapes: Shapes, device: torch.device, suite: Path,
                     engine_opts: dict[str, Any], mode: str = "mixed") -> list[tuple[str, str, str, str]]:
    """Bandit draw, fast rollouts, scoring, advantages, bandit update and the policy update, timed.

    ``mode`` as the trainer resolves ``--bf16``: ``mixed`` (the trainer's default on GPUs) keeps float32
    master weights and AdamW state, decodes from a bf16 copy and refreshes it after the step; ``pure``
    trains the bf16 weights directly (half the memory; small updates round away).
    """
    from seccrm.curriculum import SEC
    from seccrm.curriculum.pools import ArmPools
    from seccrm.data import load_split
    from seccrm.engine import precision
    from seccrm.engine.fast_decode import FastRollouts
    from seccrm.engine.forward import completion_logprobs
    from seccrm.rl.grpo import group_advantages, policy_loss
    from seccrm.world.rewards import gold_completion, score_details

    prompts_n, plen, new = shapes.step
    n, micro = shapes.n, 4
    instances = {r["id"]: r for r in load_split(suite, "train")}
    by_arm: dict[str, list[str]] = {}
    for iid, inst in sorted(instances.items()):
        by_arm.setdefault(inst["arm"], []).append(iid)
    curriculum, pools = SEC(sorted(by_arm), seed=0), ArmPools(by_arm, seed=0)
    twin = None
    if mode == "pure" and model.dtype != torch.bfloat16:
        model = model.to(torch.bfloat16)
    if mode == "mixed":
        model = model.float()                 # the float32 master (in place: exact from bf16)
        twin = precision.inference_copy(model)
    engine = FastRollouts(model if twin is None else twin, tok, **engine_opts)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    times: dict[str, float] = {}
    sync(device)
    t0 = time.perf_counter()
    arms = curriculum.sample(prompts_n)
    batch = [instances[pools.draw(a)] for a in arms]
    # The report's shape: 512-token prompts (the suite's own prompts vary from 300 to 10,000 tokens).
    prompts = random_prompts(prompts_n, plen, model.config.vocab_size, seed=5)
    times["bandit draw"] = time.perf_counter() - t0
    ro, times["rollouts"] = timed(lambda: engine.generate(prompts, n, new, seed=0), device)
    engine.release()                          # the decode buffers' memory goes to the update
    t = time.perf_counter()
    texts = [gold_completion(batch[i // n]) if i % 4 == 0 else text for i, text in enumerate(ro.texts)]
    rewards = torch.tensor([score_details(batch[i // n], x)["reward"] for i, x in enumerate(texts)])
    times["scoring"] = time.perf_counter() - t
    t = time.perf_counter()
    adv = group_advantages(rewards, n)
    curriculum.update([arms[i // n] for i in range(len(texts))], adv.tolist(), rewards=rewards.tolist())
    times["advantages + bandit update"] = time.perf_counter() - t

    def update() -> None:
        model.train()
        model.gradient_checkpointing_enable()
        n_tokens = sum(len(c) for c in ro.completion_ids)
        a = adv.to(device)
        for g0 in range(0, prompts_n, micro):
            rows = list(range(g0 * n, (g0 + micro) * n))
            with precision.autocast(mode, device):
                logp, ent, mask = completion_logprobs(model, prompts[g0:g0 + micro],
                                                      [ro.completion_ids[r] for r in rows], n, with_entropy=True)
            loss, _ = policy_loss(logp, logp.detach(), a[rows], mask, entropy=ent, num_tokens=n_tokens)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if twin is not None:
            precision.sync_copy(model, twin)
        model.gradient_checkpointing_disable()
        model.eval()

    _, times["policy update"] = timed(update, device)
    total = time.perf_counter() - t0
    new_tokens = sum(len(c) for c in ro.completion_ids)
    kind = "float32 master, bf16 autocast + bf16 decoding copy" if mode == "mixed" else "pure bf16 weights"
    shape = (f"{shapes.main_arch}, {prompts_n} prompts x {n}, {plen}-token prompts, up to {new} new "
             f"({new_tokens:,} generated), {kind}")
    parts = "; ".join(f"{k} {v:.1f} s" for k, v in times.items())
    return [("report-shaped step", shape, f"{total:.1f} s ({parts}; rollouts {new_tokens / times['rollouts']:,.0f} "
             f"new tok/s)", "< 150 s (report: 675 s on 2 GPUs)")]


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------

def write_section(path: Path, body: str) -> None:
    """Append ``body`` at the end of this benchmark's section of ``path``, other sections untouched."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n"
    start = text.index(SECTION) + len(SECTION)
    nxt = text.find("\n## ", start)
    end = len(text) if nxt < 0 else nxt
    section = text[start:end].rstrip("\n") + "\n\n" + body.strip("\n") + "\n"
    path.write_text(text[:start] + section + ("" if nxt < 0 else "\n" + text[end:].lstrip("\n")))


def header(args: argparse.Namespace, device: torch.device, argv: list[str] | None, seconds: float,
           load: float) -> list[str]:
    """Title (date, device, torch), command and conditions of a run, and the table's head."""
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = (f"no GPU: CPU, {os.cpu_count()} cores, load average {load:.1f} at the start and "
                 f"{os.getloadavg()[0]:.1f} at the end (a shared machine)")
    kind = " (smoke run: tiny model, tiny shapes)" if args.smoke else (
        " (cpu-demo shape, rollouts only)" if args.cpu_demo else "")
    command = shlex.join(["python", "benchmarks/bench_gpu.py", *(argv if argv is not None else sys.argv[1:])])
    weights = "real weights" if args.cpu_demo else f"random weights, logit std {args.logit_std:g}"
    return [f"### {dt.date.today().isoformat()}: {where}, torch {torch.__version__}{kind}", "",
            f"Command: `{command}`; {weights}; {seconds:.0f} s in all.", "",
            "| measurement | shape | result | goal / comparison |", "|---|---|---|---|"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true",
                    help="tiny model, tiny shapes, any device (CPU included): checks every code path in seconds")
    ap.add_argument("--cpu-demo", action="store_true",
                    help="rollouts only, embedded SmolLM2 in float32 at the cpu-demo shape, on this device")
    ap.add_argument("--only", default="check,rollout,train,memory,step",
                    help="comma list of: check, rollout, train, memory, step")
    ap.add_argument("--logit-std", type=float, default=5.0,
                    help="scale the final norm so that logits have this std (0: leave the random model flat)")
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="the GPU's dense bf16 peak, if not detected")
    ap.add_argument("--max-rows", type=int, default=None, help="fast path: rows decoded at once (default: fit memory)")
    ap.add_argument("--no-graphs", action="store_true", help="fast path without CUDA graphs")
    ap.add_argument("--out", default=None, help="markdown file to append to (default: BENCHMARKS.md; "
                    "--smoke writes only when --out is given)")
    ap.add_argument("--pure-bf16", action="store_true",
                    help="report-shaped step with bf16 weights (as --bf16 pure); default: the trainer's mixed precision")
    ap.add_argument("--no-write", action="store_true")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cpu_demo:
        args.smoke, args.only = False, "rollout"
    elif not args.smoke and not torch.cuda.is_available():
        print("bench_gpu.py measures one CUDA GPU and none is available here. Run it on a GPU machine, "
              "or run `python benchmarks/bench_gpu.py --smoke` to check every code path on a tiny model.",
              file=sys.stderr)
        return 2
    from seccrm.data import build_suite
    from seccrm.engine.models import load_tokenizer

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    shapes = Shapes.cpu_demo() if args.cpu_demo else Shapes.smoke() if args.smoke else Shapes.full()
    only = set(args.only.split(","))
    tok = load_tokenizer("tiny")                  # SmolLM2's tokenizer; ids past its 49,152 decode to ''
    engine_opts: dict[str, Any] = {"max_rows": args.max_rows}
    if args.no_graphs:
        engine_opts.update(cuda_graphs=False, buckets=True)
    started, load = time.perf_counter(), os.getloadavg()[0]
    rows: list[tuple[str, str, str, str]] = []
    if "check" in only:
        rows += check_rows(shapes.check_arch, shapes, device, tok, engine_opts)
    if "rollout" in only:
        for case in shapes.rollout_cases:
            rows += rollout_rows(case, shapes, device, args.logit_std, tok, engine_opts)[0]
            print("\n".join(" | ".join(r) for r in rows[-3:]), flush=True)
            gc.collect()                      # the case's model and engine buffers go before the next
            if device.type == "cuda":
                torch.cuda.empty_cache()
    model = build_model(shapes.main_arch, shapes.dtype, device, args.logit_std) if only & {"train", "memory", "step"} else None
    if "train" in only:
        rows += train_rows(model, shapes, device, peak_flops(device, args.peak_tflops))
    if "memory" in only:
        rows += loss_memory_rows(model, shapes, device)
    if "step" in only:
        with tempfile.TemporaryDirectory() as suite:
            build_suite(suite, seed=0, size="tiny", train_per_task=12, test_per_task=1, progress=False)
            mode = "pure" if args.pure_bf16 else "mixed"
            rows += report_step_rows(model, tok, shapes, device, Path(suite), engine_opts, mode)
    lines = header(args, device, argv, time.perf_counter() - started, load)
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    table = "\n".join(lines)
    print(table)
    out = args.out or (None if args.smoke or args.cpu_demo else "BENCHMARKS.md")
    if out and not args.no_write:
        write_section(Path(out), table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
