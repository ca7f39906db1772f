"""The one decoding loop: a ``Decoder`` computes next-token logits, :func:`decode` samples and stops.

Every generation path runs through :func:`decode`: single-turn rollouts and evaluation
(``rollout.generate_rollouts`` with ``HFCacheDecoder``, ``shared_prefix.SharedPrefixDecoder`` or
``FusedDecoder``), the GPU engine (``fast_decode.FastRollouts``, one wave at a time) and each model
turn of an agentic episode (``episodes.play_episode``, one cache kept across turns). The decoders
differ only in how they compute logits; sampling (:func:`sample_next_tokens`), the stop rule
(:class:`StopRule`: EOS, a closing tag, the token budget) and collecting the tokens are written once,
here. Rows that stop leave the batch (``Decoder.keep``), so the others decode faster.

Sampling uses temperature and nucleus (top-p) filtering drawn from a ``torch.Generator``: the same
seed, model and prompts give the same tokens, whichever decoder computes the logits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

ANSWER_CLOSE = "</answer>"


class Decoder(Protocol):
    """What :func:`decode` needs from a model: prefill prompts once, then decode the live rows."""

    def prefill(self, prompts: list[list[int]], n: int) -> Tensor:
        """Run the prompts; returns next-token logits [G, V] and prepares G * n decoding rows."""

    def step(self, tokens: Tensor) -> Tensor:
        """Feed one token per live row, tokens [A]; returns logits [A, V]."""

    def keep(self, rows: Tensor) -> None:
        """Keep only these live rows (indices into the current A rows), in this order."""


_CLOSERS: dict[int, tuple[Any, np.ndarray]] = {}


def _closers(tokenizer: Any) -> np.ndarray:
    """Per token id, whether its text can complete a closing tag: it has ``>`` (or is the byte-fallback
    token <0x3E>). Walking the vocabulary takes tens of ms, so it is done once per tokenizer object."""
    hit = _CLOSERS.get(id(tokenizer))
    if hit is None or hit[0] is not tokenizer:
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        table = np.array([bool(p) and (">" in p or p == "<0x3E>") for p in pieces], dtype=bool)
        hit = _CLOSERS[id(tokenizer)] = (tokenizer, table)
    return hit[1]


class StopRule:
    """When a completion (or a model's turn) ends: at an EOS token (kept, so training teaches the model
    to stop), right after the token that completes the first of ``tags``, or after ``max_tokens``.

    Only tokens whose text has ``>`` can complete a tag, so the decoded tail is checked only then.
    ``window`` is how many trailing tokens are decoded: a tag of c characters spans at most c tokens,
    so the longest tag's length by default. ``ignore_case`` matches ``</ANSWER>`` too (agent turns).
    """

    def __init__(self, tokenizer: Any, eos: Iterable[int], max_tokens: int,
                 tags: tuple[str, ...] = (ANSWER_CLOSE,), ignore_case: bool = False, window: int | None = None):
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        self.tokenizer, self.max_tokens, self.ignore_case = tokenizer, max_tokens, ignore_case
        self.eos = np.array(sorted(set(eos)), dtype=np.int64)
        self.tags = tuple(t.lower() for t in tags) if ignore_case else tuple(tags)
        self.window = window or max((len(t) for t in tags), default=0)
        self.closers = _closers(tokenizer) if tags else np.zeros(0, dtype=bool)

    def closed(self, ids: list[int]) -> bool:
        """Whether the last token of ``ids`` completes one of the tags."""
        if not ids or not self.tags or not 0 <= ids[-1] < len(self.closers) or not self.closers[ids[-1]]:
            return False
        tail = self.tokenizer.decode(ids[-self.window:], skip_special_tokens=False)
        tail = tail.lower() if self.ignore_case else tail
        return any(t in tail for t in self.tags)

    def ends(self, tokens: np.ndarray, out: np.ndarray, rows: np.ndarray, length: int) -> np.ndarray:
        """Which of the just-sampled ``tokens`` [A] end their row; ``out[rows[j], :length]`` is row j so far."""
        done = np.isin(tokens, self.eos)
        if self.tags:
            maybe = (tokens < len(self.closers)) & self.closers[np.minimum(tokens, len(self.closers) - 1)]
            for j in np.flatnonzero(maybe & ~done):
                done[j] = self.closed(out[rows[j], :length].tolist())
        return done


@torch.no_grad()
def decode(decoder: Decoder, prompts: list[list[int]], n: int, stop: StopRule, generator: torch.Generator | None,
           temperature: float = 0.7, top_p: float = 0.9, greedy: bool = False,
           sample_rows: int | None = None) -> tuple[list[list[int]], list[bool]]:
    """``n`` completions per prompt, group-major (row ``g * n + j`` is sample j of prompt g), and per row
    whether ``stop`` ended it (EOS or a tag: True; the token budget: False).

    ``sample_rows`` bounds the rows per sampling call (the sampler's [rows, V] temporaries); on CPU the
    draws are those of one call.
    """
    rows, budget = len(prompts) * n, stop.max_tokens
    out = np.zeros((rows, budget), dtype=np.int64)
    length = np.zeros(rows, dtype=np.int64)
    finished = np.zeros(rows, dtype=bool)
    live = np.arange(rows)                                              # decoder row -> output row
    logits = decoder.prefill(prompts, n).repeat_interleave(n, dim=0)   # [B, V]
    chunk = sample_rows or rows
    for step in range(budget):
        parts = [sample_next_tokens(logits[i:i + chunk], temperature, top_p, generator, greedy)
                 for i in range(0, logits.shape[0], chunk)]
        tokens = parts[0] if len(parts) == 1 else torch.cat(parts)     # [A]
        tok = tokens.cpu().numpy()
        out[live, step], length[live] = tok, step + 1
        done = stop.ends(tok, out, live, step + 1)
        finished[live[done]] = True
        if done.all() or step == budget - 1:
            break
        if done.any():
            still = torch.as_tensor(np.flatnonzero(~done), device=tokens.device)
            decoder.keep(still)
            tokens, live = tokens[still], live[~done]
        logits = decoder.step(tokens)
    return [out[r, :length[r]].tolist() for r in range(rows)], finished.tolist()


def sample_next_tokens(logits: Tensor, temperature: float, top_p: float, generator: torch.Generator | None,
                       greedy: bool = False, candidates: int = 64, wide: int = 1024) -> Tensor:
    """One token per row from logits [A, V]: argmax when greedy (or temperature 0), else nucleus sampling.

    Nucleus: keep the most probable tokens up to and including the first whose cumulative probability
    reaches ``top_p`` (so at least one token), renormalise, draw with ``generator`` (one uniform
    number per row, in row order). Returns [A].
    Sorting a 50k-150k vocabulary for every row and step costs more than the model's decoding step
    on CPU, so the ``candidates`` most probable tokens are taken first (``topk``, linear time). Only
    the rows whose nucleus is wider than that (a flat distribution) look further: at the ``wide``
    most probable tokens, and only when that is not enough either, at the whole sorted row. Every
    tier gives the same nucleus.
    """
    if greedy or temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)       # [A, V]
    u = torch.rand((probs.shape[0], 1), generator=generator, dtype=torch.float64, device=probs.device)
    if top_p >= 1.0:
        return _inverse_cdf(probs, u)
    tokens, short = _nucleus_draw(probs, top_p, u, min(candidates, probs.shape[-1]))
    if short.any():
        rows = short.nonzero().squeeze(-1)
        sub, sub_short = _nucleus_draw(probs[rows], top_p, u[rows], min(wide, probs.shape[-1]))
        if sub_short.any():                                            # flatter still: sort these rows
            rest = sub_short.nonzero().squeeze(-1)
            sub[rest] = _nucleus_draw(probs[rows[rest]], top_p, u[rows[rest]], probs.shape[-1])[0]
        tokens[rows] = sub
    return tokens


def _nucleus_draw(probs: Tensor, top_p: float, u: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Nucleus draw among each row's ``k`` most probable tokens: (tokens [A], rows whose nucleus is wider [A]).

    A row is "wider" when its ``k`` best tokens hold less than ``top_p`` (never when k is the vocabulary).
    """
    top, order = probs.topk(k, dim=-1) if k < probs.shape[-1] else probs.sort(dim=-1, descending=True)
    short = top.sum(dim=-1) < top_p if k < probs.shape[-1] else torch.zeros_like(top[:, 0], dtype=torch.bool)
    before = top.cumsum(dim=-1) - top                                  # mass of strictly better tokens
    top = top.masked_fill(before >= top_p, 0.0)
    return order.gather(-1, _inverse_cdf(top, u)[:, None]).squeeze(-1), short


def _inverse_cdf(weights: Tensor, u: Tensor) -> Tensor:
    """Index drawn from each row of non-negative weights [A, K] (unnormalised) with uniforms u [A, 1] -> [A].

    A binary search in the cumulative sum: as exact as ``torch.multinomial`` and much faster for
    large K on CPU. Zero-weight entries are never drawn.
    """
    cum = weights.double().cumsum(dim=-1)                              # [A, K]
    pick = torch.searchsorted(cum, u * cum[:, -1:], right=True)        # first index with cum > u
    return pick.clamp(max=weights.shape[-1] - 1).squeeze(-1)
