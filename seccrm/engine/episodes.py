"""Models as agents in multi-turn episodes (`seccrm.world.episode`).

`model_policy` turns a model into an episode policy: each turn it encodes the whole conversation with
the chat template and decodes the next message, cut after the first ``</execute>`` or ``</answer>``.
This is the plain loop (the conversation is prefilled again every turn); decoding that keeps each
episode's cache across turns is not built yet.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from seccrm.engine.rollout import encode_prompts, generate_rollouts
from seccrm.world.episode import Policy

_STOP = re.compile(r"</execute>|</answer>", re.I)


def cut_turn(text: str) -> str:
    """The model's turn up to and including its first ``</execute>`` or ``</answer>`` tag."""
    m = _STOP.search(text)
    return text[:m.end()] if m else text


def model_policy(model: torch.nn.Module, tokenizer: Any, max_new_tokens: int = 160, greedy: bool = True,
                 temperature: float = 0.7, top_p: float = 0.9, seed: int = 0) -> Policy:
    """An episode policy backed by ``model``: greedy by default, else sampled (seeded per turn)."""
    calls = [0]

    def policy(messages: list[dict[str, str]]) -> tuple[str, int]:
        prompt = encode_prompts(tokenizer, [messages])
        ro = generate_rollouts(model, tokenizer, prompt, n=1, max_new_tokens=max_new_tokens, greedy=greedy,
                               temperature=temperature, top_p=top_p, seed=seed + calls[0],
                               stop_after_answer=True)
        calls[0] += 1
        text = cut_turn(ro.texts[0])
        tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text != ro.texts[0] \
            else len(ro.completion_ids[0])
        return text, tokens

    return policy


def conversation_tokens(tokenizer: Any, messages: list[dict[str, str]], n_prompt: int) -> tuple[list[int], list[int]]:
    """Token ids of a whole episode (the chat template over ``messages``) and a mask that is 1 on the
    tokens of the model's own turns (assistant contents) and 0 on everything the environment wrote.

    The ids are the tokenizer's own tokenization of the rendered conversation, so the model's turns
    are re-tokenised from their text (the sampled ids may split differently). The first ``n_prompt``
    messages are the prompt: their ids are the prefix of the result and carry no loss, even an
    assistant message among them (a few-shot example).
    """
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
    spans, pos = [], 0
    for i, m in enumerate(messages):
        at = text.find(m["content"], pos) if m["content"] else -1
        if at < 0:
            continue
        if m["role"] == "assistant" and i >= n_prompt:   # assistant turns inside the prompt are not the model's
            spans.append((at, at + len(m["content"])))
        pos = at + len(m["content"])
    mask = [int(any(s <= a and b <= e and b > a for s, e in spans)) for a, b in offsets]
    return ids, mask


def episode_rollouts(model: torch.nn.Module, tokenizer: Any, instances: list[dict[str, Any]], n: int,
                     settings: Any, temperature: float = 0.7, top_p: float = 0.9, seed: int = 0,
                     org_path: Any = None) -> tuple[Any, list[dict[str, Any]], list[Any]]:
    """``n`` sampled episodes per instance: (a RolloutBatch whose completions are the whole episodes
    after the prompt, with ``loss_mask`` marking the model's tokens; the verifier's details per
    episode, with turns, failed queries and tokens; the episodes)."""
    from seccrm.engine.rollout import RolloutBatch
    from seccrm.world.episode import run_episode

    prompt_ids, completion_ids, loss_mask, texts, details, episodes = [], [], [], [], [], []
    for g, inst in enumerate(instances):
        base = encode_prompts(tokenizer, [inst["messages"]])[0]
        prompt_ids.append(base)
        for j in range(n):
            policy = model_policy(model, tokenizer, max_new_tokens=settings.max_new_tokens_per_turn, greedy=False,
                                  temperature=temperature, top_p=top_p, seed=seed + 1000 * (g * n + j))
            ep = run_episode(policy, inst, org_path(inst), settings)
            ids, mask = conversation_tokens(tokenizer, ep.messages, len(inst["messages"]))
            if ids[:len(base)] != base:
                raise ValueError("the chat template does not render the prompt as a prefix of the episode; "
                                 "agentic training needs a template that appends turns")
            completion_ids.append(ids[len(base):])
            loss_mask.append(mask[len(base):])
            texts.append(ep.final_text)
            details.append(ep.score())
            episodes.append(ep)
    ro = RolloutBatch(prompt_ids=prompt_ids, completion_ids=completion_ids, group_size=n, texts=texts,
                      finished=[ep.end_reason == "answer" for ep in episodes], loss_mask=loss_mask)
    return ro, details, episodes
