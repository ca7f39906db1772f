"""Rollouts: sample n completions per prompt, computing each prompt once per group.

``generate_rollouts`` prefills every distinct prompt once. For the Llama / Qwen2 family the n
completions of a group then attend to that one prompt cache while they decode (the prompt's keys
and values are shared, not copied): ``seccrm.engine.shared_prefix.FusedDecoder`` for models without
adapters (a decoding step in few, large operations), ``SharedPrefixDecoder`` for LoRA models.
Other architectures fall back, with a logged reason, to Hugging Face's own KV cache: the prompt is
still prefilled once, and its cache is then repeated n times (``HFCacheDecoder``).

A completion stops at an EOS token (kept, so training teaches the model to stop) or right after the
first ``</answer>`` when ``stop_after_answer`` is set (the text after it is never generated); rows
that stop leave the batch, so the others decode faster. Sampling uses temperature and nucleus
(top-p) filtering drawn from a ``torch.Generator`` seeded with ``seed``: the same seed, model and
prompts give the same tokens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor
from transformers.modeling_outputs import CausalLMOutputWithPast

from seccrm.engine.capability import unsupported_reason
from seccrm.engine.models import eos_token_ids
from seccrm.engine.shared_prefix import FusedDecoder, SharedPrefixDecoder, fused_decode_reason
from seccrm.engine.tokens import pad_tokens
from seccrm.logs import warn_once

logger = logging.getLogger(__name__)

ANSWER_CLOSE = "</answer>"
# transformers 5.2x renamed the cache argument and output field `past_key_values` -> `cache`.
_CACHE_KW = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


@dataclass
class RolloutBatch:
    """The completions of one rollout call, group-major: row ``g * group_size + j`` is sample j of prompt g."""

    prompt_ids: list[list[int]]
    """One token list per group (per distinct prompt)."""
    completion_ids: list[list[int]]
    """B = groups * group_size token lists; an EOS that ended a completion is included."""
    group_size: int
    texts: list[str]
    """The completions decoded without special tokens."""
    finished: list[bool]
    """True when the completion ended by EOS or ``</answer>``; False when it hit ``max_new_tokens``."""
    loss_mask: list[list[int]] | None = None
    """Agentic episodes only: per completion token, 1 when the model wrote it and 0 when the
    environment did (query results); the policy loss covers the 1s only."""

    @property
    def num_groups(self) -> int:
        return len(self.prompt_ids)

    def select_groups(self, groups: list[int]) -> RolloutBatch:
        """The rollouts of ``groups`` only, in that order (group-major rows)."""
        n = self.group_size
        rows = [g * n + j for g in groups for j in range(n)]
        return RolloutBatch(prompt_ids=[self.prompt_ids[g] for g in groups],
                            completion_ids=[self.completion_ids[r] for r in rows], group_size=n,
                            texts=[self.texts[r] for r in rows], finished=[self.finished[r] for r in rows],
                            loss_mask=None if self.loss_mask is None else [self.loss_mask[r] for r in rows])

    @classmethod
    def concat(cls, batches: list[RolloutBatch]) -> RolloutBatch:
        """One batch of the groups of ``batches`` in order (all with the same group size)."""
        if len({b.group_size for b in batches}) != 1:
            raise ValueError("batches of different group sizes cannot be joined")
        masks = [b.loss_mask for b in batches]
        return cls(prompt_ids=[p for b in batches for p in b.prompt_ids],
                   completion_ids=[c for b in batches for c in b.completion_ids], group_size=batches[0].group_size,
                   texts=[t for b in batches for t in b.texts], finished=[f for b in batches for f in b.finished],
                   loss_mask=None if any(m is None for m in masks) else [r for m in masks if m for r in m])


class PromptDecoder(Protocol):
    """What ``generate_rollouts`` needs from a model: prefill prompts once, then decode rows."""

    def prefill(self, prompts: list[list[int]], n: int) -> Tensor:
        """Run the prompts; returns next-token logits [G, V] and prepares G * n decoding rows."""

    def step(self, tokens: Tensor) -> Tensor:
        """Feed one token per live row, tokens [A]; returns logits [A, V]."""

    def keep(self, rows: Tensor) -> None:
        """Keep only these live rows (indices into the current A rows), in this order."""


def encode_prompts(tokenizer: Any, messages_list: list[list[dict[str, str]]]) -> list[list[int]]:
    """Token ids of each chat (list of messages) through the tokenizer's chat template, ready to answer."""
    out = []
    for messages in messages_list:
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                            return_dict=False)
        out.append([int(i) for i in ids])
    return out


class HFCacheDecoder:
    """Fallback for any causal LM: prompts prefilled once (left-padded batch), cache repeated n times."""

    def __init__(self, model: torch.nn.Module, pad_id: int):
        self.model, self.pad_id = model, pad_id
        self.device = next(model.parameters()).device

    def prefill(self, prompts: list[list[int]], n: int) -> Tensor:
        from transformers import DynamicCache

        ids, mask = pad_tokens(prompts, self.device, "left", self.pad_id)        # [G, P]
        pos = (mask.long().cumsum(-1) - 1).clamp(min=0)                # [G, P] positions from 0 per prompt
        out = self.model(input_ids=ids, attention_mask=mask.long(), position_ids=pos,
                         **{_CACHE_KW: DynamicCache()}, use_cache=True, logits_to_keep=1)
        self.cache = getattr(out, _CACHE_KW)
        self.cache.batch_repeat_interleave(n)                         # copies: G*n rows
        self.mask = mask.long().repeat_interleave(n, dim=0)            # [B, P]
        self.next_pos = mask.sum(-1).repeat_interleave(n)              # [B] position of the next token
        return out.logits[:, -1].float()

    def step(self, tokens: Tensor) -> Tensor:
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(tokens), 1)], dim=1)
        out = self.model(input_ids=tokens[:, None], attention_mask=self.mask,
                         position_ids=self.next_pos[:, None], **{_CACHE_KW: self.cache}, use_cache=True)
        self.next_pos = self.next_pos + 1
        return out.logits[:, -1].float()

    def keep(self, rows: Tensor) -> None:
        self.cache.batch_select_indices(rows)
        self.mask, self.next_pos = self.mask[rows], self.next_pos[rows]


def make_decoder(model: torch.nn.Module, pad_id: int, max_new_tokens: int) -> PromptDecoder:
    """The fused shared-prefix decoder, the module-by-module one (adapters), or the HF-cache fallback."""

    reason = unsupported_reason(model)
    if reason is None:
        return SharedPrefixDecoder(model, max_new_tokens) if fused_decode_reason(model) else FusedDecoder(
            model, max_new_tokens)
    warn_once(logger, f"rollouts fall back to a repeated Hugging Face cache: {reason}")
    return HFCacheDecoder(model, pad_id)




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


class AnswerStop:
    """Detects the token that completes the first ``</answer>`` of a completion.

    Only tokens whose text contains ``>`` can complete it, so the decoded tail is checked only then.
    """

    WINDOW = 16   # tokens decoded to look for the closing tag; a tag spans at most 9 of them

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        # '>' itself, or a byte-fallback token for it (<0x3E>).
        self.candidates = {i for i, p in enumerate(pieces) if p and (">" in p or p == "<0x3E>")}

    def __call__(self, ids: list[int]) -> bool:
        if not ids or ids[-1] not in self.candidates:
            return False
        return ANSWER_CLOSE in self.tokenizer.decode(ids[-self.WINDOW:], skip_special_tokens=False)


_STOPPERS: dict[int, AnswerStop] = {}


def _answer_stop(tokenizer: Any) -> AnswerStop:
    # Building the candidate set walks the vocabulary (tens of ms); do it once per tokenizer object.
    key = id(tokenizer)
    if key not in _STOPPERS or _STOPPERS[key].tokenizer is not tokenizer:
        _STOPPERS[key] = AnswerStop(tokenizer)
    return _STOPPERS[key]


@torch.no_grad()
def generate_rollouts(model: torch.nn.Module, tokenizer: Any, prompts: list[list[int]], n: int,
                      max_new_tokens: int, temperature: float = 0.7, top_p: float = 0.9, seed: int = 0,
                      stop_after_answer: bool = True, greedy: bool = False,
                      decoder: PromptDecoder | None = None) -> RolloutBatch:
    """Sample ``n`` completions for each prompt (token lists); see the module docstring.

    ``decoder`` overrides the automatic choice (tests compare the shared and fallback paths).
    """
    if n < 1 or max_new_tokens < 1 or not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("need n >= 1, max_new_tokens >= 1 and at least one non-empty prompt")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    try:
        dec = decoder or make_decoder(model, pad_id, max_new_tokens)
        device = next(model.parameters()).device
        gen = torch.Generator(device=device).manual_seed(seed)
        stop_eos = set(eos_token_ids(model, tokenizer))
        stop_answer = _answer_stop(tokenizer) if stop_after_answer else None

        rows = len(prompts) * n
        out: list[list[int]] = [[] for _ in range(rows)]
        finished = [False] * rows
        live = list(range(rows))                                      # batch row -> output row
        logits = dec.prefill(prompts, n).repeat_interleave(n, dim=0)  # [B, V]
        for step in range(max_new_tokens):
            tokens = sample_next_tokens(logits, temperature, top_p, gen, greedy)    # [A]
            still: list[int] = []
            for a, t in enumerate(tokens.tolist()):
                r = live[a]
                out[r].append(t)
                if t in stop_eos or (stop_answer is not None and stop_answer(out[r])):
                    finished[r] = True
                else:
                    still.append(a)
            if not still or step == max_new_tokens - 1:
                break
            if len(still) < len(live):
                idx = torch.tensor(still, device=device)
                dec.keep(idx)
                tokens = tokens[idx]
                live = [live[a] for a in still]
            logits = dec.step(tokens)
    finally:
        model.train(was_training)
    texts = tokenizer.batch_decode(out, skip_special_tokens=True)
    return RolloutBatch(prompt_ids=[list(p) for p in prompts], completion_ids=out, group_size=n,
                        texts=texts, finished=finished)
