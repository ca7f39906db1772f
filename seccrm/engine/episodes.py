"""Models as agents in multi-turn episodes (`seccrm.world.episode`).

Two ways to play an episode with a model:

- :func:`play_episode` (the default for training and evaluation): token in, token out. The episode is
  one token sequence: the prompt, then each model turn as the tokens it sampled, then the
  environment's reply as the chat template renders it (:func:`turn_suffix_ids`), and so on. Each turn
  is the one decoding loop (`seccrm.engine.decoding.decode`) over an ``HFCacheDecoder`` that keeps its
  cache across turns, so a turn feeds only the reply's tokens before decoding again; nothing is
  prefilled twice. A turn stops (``StopRule``) at its first ``</execute>`` or ``</answer>`` (any case),
  EOS, or the turn's token limit (what is left of the episode's budget caps it). With ``reuse_cache=False`` the same function is the plain loop
  that prefills the whole history at every turn: the same tokens, more compute (a test and
  ``benchmarks/bench_episodes.py`` compare the two).
- :func:`model_policy`: a policy over messages (re-encodes the whole conversation with the chat
  template each turn); ``seccrm play --model`` and any caller of ``run_episode`` use it.

Both speak the episode's protocol (``EpisodeSettings.protocol``, `seccrm.world.protocol`). Under
``tools`` every rendering goes through :func:`chat_view`: the ``sql`` tool is passed to the template as
``tools=[SQL_TOOL]`` where the template renders tools (Qwen2.5's, Hermes-style ones), and written into
the system message in the same Hermes / Qwen2.5 format where it ignores them (SmolLM2's); results are
``tool`` messages as the template renders them (SmolLM2's: a ``<|im_start|>tool`` turn; Qwen2.5's:
``<tool_response>`` inside a user turn). A turn stops at the protocol's first closing tag
(``</tool_call>`` or ``</answer>``), and the loss mask is 1 on exactly the sampled tokens either way.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from seccrm.engine.decoding import StopRule, decode
from seccrm.engine.models import eos_token_ids
from seccrm.engine.rollout import HFCacheDecoder, RolloutBatch, encode_prompts, generate_rollouts
from seccrm.logs import warn_once
from seccrm.world.episode import Episode, EpisodeSettings, Policy, run_episode
from seccrm.world.protocol import SQL_TOOL, declare_tools, get_protocol

logger = logging.getLogger(__name__)


def cut_turn(text: str, protocol: str = "tags") -> str:
    """The model's turn up to and including its first closing tag: ``</execute>`` or ``</answer>``
    (``</tool_call>`` or ``</answer>`` under ``tools``)."""
    return get_protocol(protocol).cut(text)


_RENDERS_TOOLS: dict[str, bool] = {}


def renders_tools(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template puts ``tools`` into the prompt (Qwen2.5's does; SmolLM2's
    ignores them). Decided once per template by rendering a probe with and without the tool."""
    template = str(getattr(tokenizer, "chat_template", None) or "")
    if template not in _RENDERS_TOOLS:
        probe = [{"role": "user", "content": "x"}]
        try:
            with_tool = tokenizer.apply_chat_template(probe, tools=[SQL_TOOL], tokenize=False)
        except (TypeError, ValueError):          # a template (or a stand-in) that takes no tools
            _RENDERS_TOOLS[template] = False
        else:
            _RENDERS_TOOLS[template] = with_tool != tokenizer.apply_chat_template(probe, tokenize=False)
    return _RENDERS_TOOLS[template]


def chat_view(tokenizer: Any, messages: list[dict[str, str]], protocol: str = "tags"
              ) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The messages and the extra ``apply_chat_template`` arguments that show an episode to the model
    under ``protocol``: unchanged for ``tags``; for ``tools``, ``tools=[SQL_TOOL]`` where the template
    renders tools, else the same messages with the tool declared in the system message
    (`seccrm.world.protocol.declare_tools`, the Hermes / Qwen2.5 format). Only the system message
    differs between the two, so a view of a longer conversation extends the view of a shorter one."""
    tools = get_protocol(protocol).tools
    if not tools:
        return messages, {}
    if renders_tools(tokenizer):
        return messages, {"tools": list(tools)}
    return declare_tools(messages, tools), {}


def render_chat(tokenizer: Any, messages: list[dict[str, str]], protocol: str = "tags", **kwargs: Any) -> Any:
    """``tokenizer.apply_chat_template`` over the :func:`chat_view` of ``messages``."""
    view, extra = chat_view(tokenizer, messages, protocol)
    return tokenizer.apply_chat_template(view, **extra, **kwargs)


def opening_ids(tokenizer: Any, messages: list[dict[str, str]], protocol: str = "tags") -> list[int]:
    """Token ids of an episode's opening ``messages`` under ``protocol`` (the system message rewritten
    for it, `seccrm.world.protocol.Protocol.opening`), ready for the model's first turn. Under ``tags``
    they are ``encode_prompts``'s."""
    if protocol == "tags":
        return encode_prompts(tokenizer, [messages])[0]
    opened = get_protocol(protocol).opening(messages)
    ids = render_chat(tokenizer, opened, protocol, add_generation_prompt=True, tokenize=True, return_dict=False)
    return [int(i) for i in ids]


def model_policy(model: torch.nn.Module, tokenizer: Any, max_new_tokens: int = 160, greedy: bool = True,
                 temperature: float = 0.7, top_p: float = 0.9, seed: int = 0, protocol: str = "tags") -> Policy:
    """An episode policy backed by ``model``: greedy by default, else sampled (seeded per turn)."""
    calls = [0]

    def policy(messages: list[dict[str, str]]) -> tuple[str, int]:
        prompt = [opening_ids(tokenizer, messages, protocol)]
        ro = generate_rollouts(model, tokenizer, prompt, n=1, max_new_tokens=max_new_tokens, greedy=greedy,
                               temperature=temperature, top_p=top_p, seed=seed + calls[0],
                               stop_after_answer=True)
        calls[0] += 1
        text = cut_turn(ro.texts[0], protocol)
        tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text != ro.texts[0] \
            else len(ro.completion_ids[0])
        return text, tokens

    return policy


def conversation_tokens(tokenizer: Any, messages: list[dict[str, str]], n_prompt: int,
                        protocol: str = "tags") -> tuple[list[int], list[int]]:
    """Token ids of a whole episode (the chat template over ``messages``) and a mask that is 1 on the
    tokens of the model's own turns (assistant contents) and 0 on everything the environment wrote.

    The ids are the tokenizer's own tokenization of the rendered conversation, so the model's turns
    are re-tokenised from their text (the sampled ids may split differently). The first ``n_prompt``
    messages are the prompt: their ids are the prefix of the result and carry no loss, even an
    assistant message among them (a few-shot example). ``protocol`` picks the rendering (:func:`chat_view`).
    """
    text = render_chat(tokenizer, messages, protocol, tokenize=False, add_generation_prompt=False)
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


def turn_suffix_ids(tokenizer: Any, before: list[dict[str, str]], turn_text: str, reply: str | dict[str, str],
                    protocol: str = "tags") -> list[int]:
    """The tokens the chat template puts after a model turn ``turn_text``: the end of that turn, the
    environment's ``reply`` (a message; a string is a user message), and the opening of the next
    assistant turn, rendered under ``protocol`` (:func:`chat_view`).

    ``before`` is the conversation up to the turn. Raises ValueError when the template does not render
    the conversation by appending (it rewrites earlier turns): token-in, token-out episodes need that.
    """
    reply_msg = {"role": "user", "content": reply} if isinstance(reply, str) else reply
    turn = {"role": "assistant", "content": turn_text}
    opened = render_chat(tokenizer, before, protocol, tokenize=False, add_generation_prompt=True)
    closed = render_chat(tokenizer, [*before, turn], protocol, tokenize=False)
    nxt = render_chat(tokenizer, [*before, turn, reply_msg], protocol, tokenize=False, add_generation_prompt=True)
    head = opened + turn_text
    if not (closed.startswith(head) and nxt.startswith(head)):
        raise ValueError("the chat template does not render a conversation by appending turns")
    return [int(i) for i in tokenizer(nxt[len(head):], add_special_tokens=False)["input_ids"]]


@torch.no_grad()
def play_episode(model: torch.nn.Module, tokenizer: Any, instance: dict[str, Any], org_path: str | Path,
                 settings: EpisodeSettings, temperature: float = 0.7, top_p: float = 0.9, greedy: bool = False,
                 seed: int = 0, reuse_cache: bool = True,
                 prompt_ids: list[int] | None = None) -> tuple[Episode, list[int], list[int], int]:
    """Play one episode token in, token out (module docstring).

    Returns the finished episode, its completion ids (everything after the prompt), the loss mask over
    them (1 on sampled tokens, 0 on the environment's) and how many tokens the model was fed (prefill
    and decoding together: what the cache saves).
    """
    was_training = model.training
    model.eval()
    try:
        ep = Episode(instance, org_path, settings)
        protocol = settings.protocol
        ids = list(prompt_ids) if prompt_ids is not None else opening_ids(tokenizer, ep.messages, protocol)
        n_prompt = len(ids)
        dec = HFCacheDecoder(model, 0, keep_cache=reuse_cache)                 # one row: never padded
        gen = torch.Generator(device=dec.device).manual_seed(seed)
        eos = eos_token_ids(model, tokenizer)
        mask: list[int] = []
        while not ep.done:
            # a turn never runs past the episode's token budget: what is left of it caps the turn
            limit = max(1, min(settings.max_new_tokens_per_turn, settings.max_model_tokens - ep.model_tokens))
            stop = StopRule(tokenizer, eos, limit, ep.protocol.stops, ignore_case=True)
            (turn,), _ = decode(dec, [ids], 1, stop, gen, temperature, top_p, greedy)
            ids.extend(turn)
            mask.extend([1] * len(turn))
            text = cut_turn(tokenizer.decode(turn, skip_special_tokens=True), protocol)
            before = ep.messages[:]
            reply = ep.act(text, len(turn))
            if reply is None:
                break
            suffix = turn_suffix_ids(tokenizer, before, text, ep.messages[-1], protocol)
            ids.extend(suffix)
            mask.extend([0] * len(suffix))
        return ep, ids[n_prompt:], mask, dec.fed
    finally:
        model.train(was_training)


def play_or_fall_back(model: torch.nn.Module, tokenizer: Any, inst: dict[str, Any], org: Any,
                      settings: EpisodeSettings, temperature: float = 0.7, top_p: float = 0.9, greedy: bool = False,
                      seed: int = 0, prompt_ids: list[int] | None = None,
                      tokens: bool = True) -> tuple[Episode, list[int], list[int]]:
    """One episode, its completion ids and loss mask, as training and every agentic evaluation play it:
    :func:`play_episode`; where the chat template does not append turns, with a logged reason, the
    message loop (:func:`model_policy`), whose model turns are re-tokenised from their text
    (:func:`conversation_tokens`; ValueError when the prompt is then not a prefix of the episode).
    ``tokens=False`` (evaluation): the message loop's episode is not re-tokenised (ids and mask empty)."""
    try:
        ep, ids, mask, _ = play_episode(model, tokenizer, inst, org, settings, temperature, top_p, greedy, seed,
                                        prompt_ids=prompt_ids)
        return ep, ids, mask
    except ValueError as err:
        warn_once(logger, f"episodes fall back to the message loop (re-tokenised turns): {err}")
    policy = model_policy(model, tokenizer, max_new_tokens=settings.max_new_tokens_per_turn, greedy=greedy,
                          temperature=temperature, top_p=top_p, seed=seed, protocol=settings.protocol)
    ep = run_episode(policy, inst, org, settings)
    if not tokens:
        return ep, [], []
    base = prompt_ids if prompt_ids is not None else opening_ids(tokenizer, inst["messages"], settings.protocol)
    ids, mask = conversation_tokens(tokenizer, ep.messages, len(inst["messages"]), settings.protocol)
    if ids[:len(base)] != base:
        raise ValueError("the chat template does not render the prompt as a prefix of the episode; "
                         "agentic training needs a template that appends turns")
    return ep, ids[len(base):], mask[len(base):]


def episode_rollouts(model: torch.nn.Module, tokenizer: Any, instances: list[dict[str, Any]], n: int,
                     settings: Any, temperature: float = 0.7, top_p: float = 0.9, seed: int = 0,
                     org_path: Any = None) -> tuple[Any, list[dict[str, Any]], list[Any]]:
    """``n`` sampled episodes per instance (:func:`play_or_fall_back`): (a RolloutBatch whose completions
    are the whole episodes after the prompt, with ``loss_mask`` marking the model's tokens; the
    verifier's details per episode, with turns, failed queries and tokens; the episodes)."""
    prompt_ids, completion_ids, loss_mask, texts, details, episodes = [], [], [], [], [], []
    for g, inst in enumerate(instances):
        base = opening_ids(tokenizer, inst["messages"], settings.protocol)
        prompt_ids.append(base)
        for j in range(n):
            ep, ids, mask = play_or_fall_back(model, tokenizer, inst, org_path(inst), settings, temperature, top_p,
                                              seed=seed + 1000 * (g * n + j), prompt_ids=base)
            completion_ids.append(ids)
            loss_mask.append(mask)
            texts.append(ep.final_text)
            details.append(ep.score())
            episodes.append(ep)
    ro = RolloutBatch(prompt_ids=prompt_ids, completion_ids=completion_ids, group_size=n, texts=texts,
                      finished=[ep.end_reason == "answer" for ep in episodes], loss_mask=loss_mask)
    return ro, details, episodes
