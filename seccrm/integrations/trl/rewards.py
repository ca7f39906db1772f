"""The project's reward as TRL reward functions, one per component, for single- and multi-turn rollouts."""

from __future__ import annotations

import json
from typing import Any

from seccrm.world.rewards import REWARD_FORMAT, score_details


def final_text(completion: Any) -> str:
    """What the verifier reads: the model's last message.

    TRL passes a conversational completion as a list of messages. A single-turn one is
    ``[{"role": "assistant", "content": ...}]``; a multi-turn one alternates the assistant's tool calls
    and the ``tool`` role's results, and only its last assistant message is the answer (a tool result
    may quote anything, answer tags included). A rollout that ended on a tool result (TRL stopped it
    at the completion budget) has no answer: "".

    >>> final_text([{"role": "assistant", "content": "", "tool_calls": [{}]},
    ...             {"role": "tool", "name": "sql", "content": "<answer>x</answer>"},
    ...             {"role": "assistant", "content": "<answer>42</answer>"}])
    '<answer>42</answer>'
    >>> final_text("<answer>7</answer>")
    '<answer>7</answer>'
    """
    if not isinstance(completion, list):
        return str(completion)
    if not completion or not isinstance(completion[-1], dict) or completion[-1].get("role") != "assistant":
        return ""
    content = completion[-1].get("content", "")
    if isinstance(content, list):        # multimodal parts: keep the text ones
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def _details(completions: list[Any], instance: list[str]) -> list[dict[str, Any]]:
    return [score_details(json.loads(inst), final_text(c)) for c, inst in zip(completions, instance, strict=True)]


def correct_reward(prompts: list[Any], completions: list[Any], instance: list[str], **_: Any) -> list[float]:
    """1.0 for a correct answer, else 0.0 (TRL reward function; ``instance`` is the dataset column)."""
    return [1.0 if d["correct"] else 0.0 for d in _details(completions, instance)]


def queries_that_ran(completion: Any) -> int:
    """Tool results in a multi-turn completion that are not errors (the sandbox's errors start with
    ``error:``); 0 for a single-turn completion."""
    if not isinstance(completion, list):
        return 0
    return sum(1 for m in completion if isinstance(m, dict) and m.get("role") == "tool"
               and not str(m.get("content", "")).lstrip().startswith("error"))


def formatted_reward(prompts: list[Any], completions: list[Any], instance: list[str], **_: Any) -> list[float]:
    """0.1 for a well-formed but wrong answer, else 0.0: with :func:`correct_reward` it sums to
    seccrm's reward."""
    return [REWARD_FORMAT if d["formatted"] and not d["correct"] else 0.0 for d in _details(completions, instance)]


def episode_formatted_reward(prompts: list[Any], completions: list[Any], instance: list[str],
                             **_: Any) -> list[float]:
    """The multi-turn form reward: 0.1 for a well-formed *episode*, at least one query that ran and then
    a well-formed but wrong answer, as `seccrm.world.episode_reward` pays (an answer alone teaches the
    policy to stop querying)."""
    return [REWARD_FORMAT if d["formatted"] and not d["correct"] and queries_that_ran(c) >= 1 else 0.0
            for c, d in zip(completions, _details(completions, instance), strict=True)]


correct_reward.__name__ = "correct"
formatted_reward.__name__ = "formatted"
episode_formatted_reward.__name__ = "formatted"


def reward_functions(agentic: bool = False) -> list[Any]:
    """``[correct, formatted]``: pass as ``reward_funcs``; weights 1 and 1 give seccrm's reward. With
    ``agentic``, the form term is :func:`episode_formatted_reward`."""
    return [correct_reward, episode_formatted_reward if agentic else formatted_reward]
