"""seccrm's SQL episodes as a VERL agent loop (VERL 0.9's agent-loop interface), over the same sandbox.

Each rollout of a row exported from an agentic suite (``seccrm build --mode agentic`` or an imported
CRMArena-Pro, then ``seccrm export verl``) plays one episode of :class:`seccrm.world.episode.Episode`:
the model writes ``<execute>SQL</execute>``, the sandbox over the org answers, the reply is appended
as a user message, until ``<answer>``, the turn limit, or the response budget
(``actor_rollout_ref.rollout.response_length``). Token handling is VERL's own (its Continuous Token
builder merges the sampled tokens and the rendered replies), so ``response_mask`` is 1 on the
model's tokens and 0 on the sandbox's. The reward stays VERL's reward function
(:mod:`.reward`), which reads the last ``<answer>`` of the response, as ``seccrm train`` does.

Wiring (a YAML list of agent loops, as VERL's ``agent_loop_config_path`` expects)::

    # recipes/verl/config/agent_loops.yaml
    - name: seccrm_sql
      _target_: seccrm.integrations.verl.agent_loop.SQLAgentLoop
      max_turns: 20

    actor_rollout_ref.rollout.agent.agent_loop_config_path=recipes/verl/config/agent_loops.yaml
    actor_rollout_ref.rollout.agent.default_agent_loop=seccrm_sql

Each turn ends at its first ``</execute>`` or ``</answer>``: the loop asks the inference server to stop
there (``stop`` and ``include_stop_str_in_output``, vLLM's sampling parameters; set
``stop_strings: false`` for a server that does not take them, and the text after the tag is then cut
from what the sandbox sees but stays in the tokens).

``protocol: tools`` speaks native tool calls instead (`seccrm.world.protocol`): the exported prompt's
system message is rewritten for the ``sql`` tool, the tool goes to VERL's Continuous Token builder as
``tools=[SQL_TOOL]`` (or into the system message, for a template that ignores tools:
`seccrm.engine.episodes.chat_view`), the model's ``<tool_call>`` blocks run in the sandbox, results
come back as ``tool`` messages, and turns stop at ``</tool_call>`` or ``</answer>``. VERL's own tool
list is not used.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput

from seccrm.engine.episodes import chat_view, cut_turn
from seccrm.integrations.verl.reward import instance_from_extra_info
from seccrm.world.episode import Episode, EpisodeSettings
from seccrm.world.protocol import get_protocol
from seccrm.world.rewards import org_path
from seccrm.world.sandbox import SandboxLimits

STOP = ["</execute>", "</answer>"]
"""Where a turn ends under the ``tags`` protocol (``get_protocol(name).stops`` for either)."""


class SQLAgentLoop(AgentLoopBase):
    """One seccrm episode per rollout: queries through the sandbox, then an answer."""

    def __init__(self, *args: Any, max_turns: int = 20, max_rows: int = 50, max_chars: int = 6000,
                 stop_strings: bool = True, protocol: str = "tags", **kwargs: Any) -> None:
        kwargs.pop("tools", None)                         # VERL passes its tool list; episodes use the sandbox
        super().__init__(*args, **kwargs)
        self.response_length = int(self.rollout_config.response_length)
        self.settings = EpisodeSettings(max_turns=max_turns, max_model_tokens=self.response_length,
                                        max_new_tokens_per_turn=self.response_length,
                                        sandbox=SandboxLimits(max_rows=max_rows, max_chars=max_chars),
                                        protocol=protocol)
        self.stop_strings = stop_strings
        self.stops = list(get_protocol(protocol).stops)

    def _view(self, messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[dict[str, Any]] | None]:
        """The messages and tools VERL's token builder renders (`seccrm.engine.episodes.chat_view`)."""
        view, extra = chat_view(self.tokenizer, messages, self.settings.protocol)
        return view, extra.get("tools")

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        raw = [dict(m) for m in kwargs["raw_prompt"]]
        instance = instance_from_extra_info(dict(kwargs["extra_info"]))
        episode = await self.loop.run_in_executor(None, lambda: Episode(instance, org_path(instance), self.settings,
                                                                        messages=raw))
        messages = [dict(m) for m in episode.messages]      # the prompt, its system message the protocol's
        params = {**sampling_params, "stop": self.stops, "include_stop_str_in_output": True} if self.stop_strings \
            else dict(sampling_params)
        view, tools = self._view(messages)
        tokens = await self.ct_build_initial_tokens(view, tools=tools)
        mask: list[int] = []
        logprobs: list[float] | None = None
        request_id = uuid4().hex
        while True:
            out = await self.server_manager.generate(request_id=request_id, prompt_ids=tokens,
                                                     sampling_params=params)
            merged, mask, logprobs = await self.ct_merge_assistant_token(
                tokens, out.token_ids, mask, logprobs if (logprobs or out.log_probs) else None,
                assistant_logprobs=out.log_probs or None)
            tokens = merged.token_ids
            text = cut_turn(self.tokenizer.decode(out.token_ids, skip_special_tokens=True), self.settings.protocol)
            before = [dict(m) for m in episode.messages]
            reply = await self.loop.run_in_executor(None, episode.act, text, len(out.token_ids))
            if reply is None:
                break
            if len(mask) >= self.response_length:       # the budget is spent: the episode stops here
                episode.stop("token_budget")
                break
            old, tools = self._view([*before, {"role": "assistant", "content": text}])
            new, _ = self._view(episode.messages)
            merged, mask, logprobs = await self.ct_merge_context_msg(old, new, tokens, mask, logprobs, tools=tools)
            tokens = merged.token_ids
        if not episode.done:
            episode.stop("token_budget")
        n = len(mask)
        prompt_ids = tokens[: len(tokens) - n] if n else tokens
        details = {"turns": len(episode.turns), "failed_queries": episode.failed_queries,
                   "end_reason": episode.end_reason}
        return AgentLoopOutput(
            prompt_ids=prompt_ids, response_ids=tokens[len(prompt_ids):][: self.response_length],
            response_mask=mask[: self.response_length],
            response_logprobs=logprobs[: self.response_length] if logprobs else None,
            num_turns=len(episode.messages) - len(messages) + 1,
            metrics={}, extra_fields={"seccrm_episode": details, "turn_scores": [], "tool_rewards": []})

