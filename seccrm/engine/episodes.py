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
