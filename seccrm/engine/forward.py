"""Log-probabilities of sampled completions under a model, for the policy loss.

``completion_logprobs`` runs the base model (no LM head) to get final hidden states, picks the
positions that predict completion tokens, and turns them into log-probs (and optionally entropy)
with ``seccrm.engine.logprobs.chunked_logprobs_entropy``, so the float32 ``[tokens, vocabulary]`` logits are
never built whole.

Two ways to get the hidden states, equal up to float rounding:

- shared (``share_prompt=True``, Llama / Qwen2 family): each group's prompt runs once, with
  gradients; the group's completions attend to its keys and values, and autograd sums their
  gradients into that one prompt pass (``shared_hidden``, on ``seccrm.engine.shared_prefix.LlamaLike``).
- unshared: every row is ``prompt + completion``, right-padded, run through the model's own forward.
  Used for other architectures (with a logged reason) and as the reference in tests.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from seccrm.engine.anatomy import decoder_and_head
from seccrm.engine.capability import unsupported_reason
from seccrm.engine.logprobs import chunked_logprobs_entropy
from seccrm.engine.shared_prefix import LlamaLike
from seccrm.engine.tokens import pad_tokens
from seccrm.logs import warn_once

logger = logging.getLogger(__name__)


def unshared_hidden(model: torch.nn.Module, prompt_ids: list[list[int]], completion_ids: list[list[int]],
                    group_size: int) -> Tensor:
    """Hidden states [B, T, H] at the positions predicting each completion token (row = prompt + completion).

    Position t of row b is the hidden state after token ``len(prompt) - 1 + t`` of the concatenated
    row, which predicts completion token t. Rows are right-padded; positions start at 0 in each row.
    """
    decoder, weight, _ = decoder_and_head(model)
    device = weight.device
    rows = [prompt_ids[b // group_size] + completion_ids[b] for b in range(len(completion_ids))]
    width = max(len(r) for r in rows)
    ids, valid = pad_tokens(rows, device, "right")                                         # [B, S]
    pos = torch.arange(width, device=device).expand(len(rows), -1)
    hidden = decoder(input_ids=ids, attention_mask=valid.long(), position_ids=pos,
                     use_cache=False).last_hidden_state                                    # [B, S, H]
    t_max = max((len(c) for c in completion_ids), default=0)
    starts = torch.tensor([len(prompt_ids[b // group_size]) - 1 for b in range(len(rows))])
    index = (starts[:, None] + torch.arange(t_max)[None, :]).clamp(max=width - 1).to(device)  # [B, T]
    return hidden.gather(1, index[..., None].expand(-1, -1, hidden.shape[-1]))


def shared_hidden(model: torch.nn.Module, prompt_ids: list[list[int]], completion_ids: list[list[int]],
                  group_size: int, prompt_padding: str = "left") -> Tensor:
    """Hidden states [B, T, E] predicting each completion token, each prompt run once per group.

    Column 0 is the prompt's last hidden state (it predicts the first completion token), shared by
    the group's rows; column t > 0 is the completion pass's hidden state after token t - 1.
    """
    net = LlamaLike(model)
    device = net.head_weight.device
    p_ids, p_valid = pad_tokens(prompt_ids, device, prompt_padding)             # [G, P]
    c_ids, c_valid = pad_tokens(completion_ids, device, "right")               # [B, T]
    B, T = c_ids.shape
    h_prompt, prefix = net.prompt_pass(p_ids, p_valid)                        # [G, P, E]
    lengths = p_valid.sum(-1)                                                 # [G]
    last = (p_valid.long().cumsum(-1) == lengths[:, None]) & p_valid          # one True per row
    h_last = h_prompt[last].repeat_interleave(group_size, dim=0)              # [B, E]
    if T == 1:
        return h_last[:, None]
    ids, valid = c_ids[:, :-1], c_valid[:, :-1]                               # the last token predicts nothing
    pos = lengths.repeat_interleave(group_size)[:, None] + torch.arange(T - 1, device=device)
    idx = torch.arange(T - 1, device=device)
    allowed = (idx[None, :, None] >= idx[None, None, :]) & valid[:, None, :]  # [B, T-1, T-1]
    h_comp = net.completion_pass(ids, pos, allowed, prefix, p_valid)          # [B, T-1, E]
    return torch.cat([h_last[:, None], h_comp], dim=1)


def completion_logprobs(model: torch.nn.Module, prompt_ids: list[list[int]], completion_ids: list[list[int]],
                        group_size: int, chunk_size: int = 1024, with_entropy: bool = False,
                        share_prompt: bool = True, temperature: float = 1.0
                        ) -> tuple[Tensor, Tensor | None, Tensor]:
    """Log-probs of each completion token under ``model``: ``(logp [B, T], entropy [B, T] | None, mask [B, T])``.

    ``completion_ids`` is group-major (row ``g * group_size + j`` answers ``prompt_ids[g]``);
    T is the longest completion; padded positions hold 0 in logp and entropy and False in ``mask``
    (a float tensor of 0/1, ready to multiply). Gradients flow when the model is in grad mode.
    ``temperature`` divides the logits, as the sampler did.
    """
    if len(completion_ids) != len(prompt_ids) * group_size:
        raise ValueError(f"{len(completion_ids)} completions for {len(prompt_ids)} prompts x "
                         f"group_size {group_size}: expected {len(prompt_ids) * group_size}")
    if any(len(p) == 0 for p in prompt_ids):
        raise ValueError("every prompt needs at least one token")
    _, weight, bias = decoder_and_head(model)
    targets, mask = pad_tokens(completion_ids, weight.device, "right")    # [B, T]
    B, T = targets.shape
    if T == 0:
        empty = weight.new_zeros((B, 0), dtype=torch.float32)
        return empty, (empty if with_entropy else None), empty
    hidden = _hidden(model, prompt_ids, completion_ids, group_size, share_prompt)          # [B, T, H]
    flat = mask.reshape(-1).nonzero().squeeze(-1)                                          # [N]
    h = hidden.reshape(B * T, -1).index_select(0, flat)                                    # [N, H]
    lp, ent = chunked_logprobs_entropy(h, weight, targets.reshape(-1)[flat], chunk_size=chunk_size,
                                       temperature=temperature, with_entropy=with_entropy, bias=bias)
    logp = lp.new_zeros(B * T).index_copy(0, flat, lp).view(B, T)
    entropy = None if ent is None else ent.new_zeros(B * T).index_copy(0, flat, ent).view(B, T)
    return logp, entropy, mask.to(logp.dtype)


def _hidden(model: torch.nn.Module, prompt_ids: list[list[int]], completion_ids: list[list[int]],
            group_size: int, share_prompt: bool) -> Tensor:
    """[B, T, H] hidden states predicting the completion tokens, shared when the model allows it."""
    if share_prompt:
        reason = unsupported_reason(model)
        if reason is None:
            return shared_hidden(model, prompt_ids, completion_ids, group_size)
        warn_once(logger, f"log-probs fall back to the unshared forward: {reason}")
    return unshared_hidden(model, prompt_ids, completion_ids, group_size)

