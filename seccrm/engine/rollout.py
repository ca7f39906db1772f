"""Rollouts: sample n completions per prompt, computing each prompt once per group.

``generate_rollouts`` prefills every distinct prompt once. For the Llama / Qwen2 family the n
completions of a group then attend to that one prompt cache while they decode (the prompt's keys
and values are shared, not copied): ``seccrm.engine.shared_prefix.FusedDecoder`` for models without
adapters (a decoding step in few, large operations), ``SharedPrefixDecoder`` for LoRA models.
Other architectures fall back, with a logged reason, to Hugging Face's own KV cache: the prompt is
still prefilled once, and its cache is then repeated n times (``HFCacheDecoder``).

Sampling and stopping are ``seccrm.engine.decoding``'s one loop: a completion stops at an EOS token
(kept) or right after the first ``</answer>`` when ``stop_after_answer`` is set (the text after it is
never generated); the same seed, model and prompts give the same tokens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from transformers.modeling_outputs import CausalLMOutputWithPast

from seccrm.engine.capability import unsupported_reason
from seccrm.engine.decoding import ANSWER_CLOSE, Decoder, StopRule, decode
from seccrm.engine.models import eos_token_ids
from seccrm.engine.shared_prefix import FusedDecoder, SharedPrefixDecoder, fused_decode_reason
from seccrm.engine.tokens import pad_tokens
from seccrm.logs import warn_once

logger = logging.getLogger(__name__)

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


def encode_prompts(tokenizer: Any, messages_list: list[list[dict[str, str]]]) -> list[list[int]]:
    """Token ids of each chat (list of messages) through the tokenizer's chat template, ready to answer."""
    out = []
    for messages in messages_list:
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                            return_dict=False)
        out.append([int(i) for i in ids])
    return out


class HFCacheDecoder:
    """Any causal LM through Hugging Face's cache: prompts prefilled once (left-padded batch), the cache
    repeated n times. With ``keep_cache`` (an agentic episode: one row that grows turn by turn) the cache
    is kept between prefills, which then feed only the tokens it does not hold yet. ``fed`` counts the
    tokens the model was fed, prefill and decoding together (what a kept cache saves)."""

    def __init__(self, model: torch.nn.Module, pad_id: int, keep_cache: bool = False):
        self.model, self.pad_id, self.keep_cache = model, pad_id, keep_cache
        self.device = next(model.parameters()).device
        self.mask = torch.zeros((1, 0), dtype=torch.long)              # [B, held]: what the cache holds
        self.fed = 0

    def prefill(self, prompts: list[list[int]], n: int) -> Tensor:
        from transformers import DynamicCache

        held = self.mask.shape[1] if self.keep_cache else 0
        if held == 0:
            self.cache = DynamicCache()
        ids, new = pad_tokens([p[held:] for p in prompts], self.device, "left", self.pad_id)   # [G, P]
        mask = new.long() if held == 0 else torch.cat([self.mask, new.long()], dim=1)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, held:]               # [G, P] positions from 0 per prompt
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos,
                         **{_CACHE_KW: self.cache}, use_cache=True, logits_to_keep=1)
        self.fed += ids.numel()
        self.cache.batch_repeat_interleave(n)                         # filled in place; copies: G*n rows
        self.mask = mask.repeat_interleave(n, dim=0)                   # [B, P]
        self.next_pos = mask.sum(-1).repeat_interleave(n)              # [B] position of the next token
        return out.logits[:, -1].float()

    def step(self, tokens: Tensor) -> Tensor:
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(tokens), 1)], dim=1)
        out = self.model(input_ids=tokens[:, None], attention_mask=self.mask,
                         position_ids=self.next_pos[:, None], **{_CACHE_KW: self.cache}, use_cache=True)
        self.next_pos, self.fed = self.next_pos + 1, self.fed + len(tokens)
        return out.logits[:, -1].float()

    def keep(self, rows: Tensor) -> None:
        self.cache.batch_select_indices(rows)
        self.mask, self.next_pos = self.mask[rows], self.next_pos[rows]


def make_decoder(model: torch.nn.Module, pad_id: int, max_new_tokens: int) -> Decoder:
    """The fused shared-prefix decoder, the module-by-module one (adapters), or the HF-cache fallback."""

    reason = unsupported_reason(model)
    if reason is None:
        return SharedPrefixDecoder(model, max_new_tokens) if fused_decode_reason(model) else FusedDecoder(
            model, max_new_tokens)
    warn_once(logger, f"rollouts fall back to a repeated Hugging Face cache: {reason}")
    return HFCacheDecoder(model, pad_id)


def check_request(prompts: list[list[int]], n: int, max_new_tokens: int) -> None:
    """Raise ValueError unless n >= 1, max_new_tokens >= 1 and every prompt has a token."""
    if n < 1 or max_new_tokens < 1 or not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("need n >= 1, max_new_tokens >= 1 and at least one non-empty prompt")


@torch.no_grad()
def generate_rollouts(model: torch.nn.Module, tokenizer: Any, prompts: list[list[int]], n: int,
                      max_new_tokens: int, temperature: float = 0.7, top_p: float = 0.9, seed: int = 0,
                      stop_after_answer: bool = True, greedy: bool = False, decoder: Decoder | None = None,
                      groups_per_call: int | None = None, sample_rows: int | None = None) -> RolloutBatch:
    """Sample ``n`` completions for each prompt (token lists); see the module docstring.

    ``decoder`` overrides the automatic choice (tests compare the shared and fallback paths;
    ``FastRollouts`` passes itself, with ``groups_per_call`` groups per wave and ``sample_rows`` rows
    per sampling call).
    """
    check_request(prompts, n, max_new_tokens)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stop = StopRule(tokenizer, eos_token_ids(model, tokenizer), max_new_tokens,
                    (ANSWER_CLOSE,) if stop_after_answer else ())
    was_training = model.training
    model.eval()
    out: list[list[int]] = []
    finished: list[bool] = []
    try:
        dec = decoder or make_decoder(model, pad_id, max_new_tokens)
        gen = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
        per_call = groups_per_call or len(prompts)
        for g0 in range(0, len(prompts), per_call):
            rows, ended = decode(dec, prompts[g0:g0 + per_call], n, stop, gen, temperature, top_p, greedy,
                                 sample_rows)
            out += rows
            finished += ended
    finally:
        model.train(was_training)
    texts = tokenizer.batch_decode(out, skip_special_tokens=True)
    return RolloutBatch(prompt_ids=[list(p) for p in prompts], completion_ids=out, group_size=n,
                        texts=texts, finished=finished)
