"""A multi-turn episode: prompt -> (<execute> query -> result)* -> <answer>.

The model sees a question and the org's schema, but no records. Each turn it either writes
``<execute>SQL</execute>``, and the environment answers with the query's result (a compact table or an
error message, from `seccrm.world.sandbox`), or it writes ``<answer>...</answer>``, which ends the
episode. With ``EpisodeSettings(protocol="tools")`` the query is a native tool call instead, and the
result comes back in the ``tool`` role (`seccrm.world.protocol`, where both protocols are parsed and
rendered); the answer is scored by the same verifiers as a single-turn completion. An episode also ends
at ``max_turns`` model turns, at a budget of ``max_model_tokens`` tokens written by the model, or at a
turn with neither tag (the model stopped acting).

The sandbox queries the agents' copy of the org (`seccrm.world.agent_org`: the answer key dropped);
the verifier reads the org the instance names. Turns are parsed in linear time (``str.find``, no
backtracking regex on model output), and the token budget holds on every turn: a turn that takes the
episode past ``max_model_tokens``, an answering one included, ends it with ``token_budget``, and
:meth:`Episode.score` gives such an episode no reward (``formatted`` and ``correct`` False).

This module is text only (no model, no torch): the engine drives it with a policy that turns the
conversation so far into the model's next message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seccrm.world.agent_org import agent_org
from seccrm.world.episode_reward import EpisodeReward, pay_episode
from seccrm.world.protocol import AGENT_SYSTEM, PROTOCOLS, get_protocol
from seccrm.world.protocol import parse_turn as parse_turn  # re-exported: the tags parser lived here
from seccrm.world.rewards import REWARD_WRONG, score_details
from seccrm.world.sandbox import Sandbox, SandboxLimits, schema_text
from seccrm.world.tasks.base import definitions_for


@dataclass(frozen=True)
class EpisodeSettings:
    """Limits of one episode. Defaults suit a small model on CPU; CRMArena-Pro allows 20 turns."""

    max_turns: int = 6
    """Model turns, the answering turn included."""
    max_model_tokens: int = 1024
    """Tokens the model may write over the whole episode."""
    max_new_tokens_per_turn: int = 160
    """Tokens the model may write in one turn."""
    sandbox: SandboxLimits = field(default_factory=SandboxLimits)
    reward: EpisodeReward = field(default_factory=EpisodeReward)
    """How the episode is paid (`seccrm.world.episode_reward`): by default the 0.1 for form needs a
    query that ran before the answer."""
    protocol: str = "tags"
    """How the model queries (`seccrm.world.protocol`): 'tags' (``<execute>``, CRMArena-Pro's) or
    'tools' (a native ``sql`` tool call through the chat template, results in the ``tool`` role)."""

    def __post_init__(self) -> None:
        if self.max_turns < 1 or self.max_model_tokens < 1 or self.max_new_tokens_per_turn < 1:
            raise ValueError("max_turns, max_model_tokens and max_new_tokens_per_turn must be >= 1")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; known: {', '.join(PROTOCOLS)}")

    @classmethod
    def crmarena_pro(cls) -> EpisodeSettings:
        """The benchmark's budget: 20 turns, longer turns and results (for a GPU); values up to 256 KB,
        as an imported org's knowledge articles can be longer than seccrm's 16 KB bound."""
        return cls(max_turns=20, max_model_tokens=8192, max_new_tokens_per_turn=512,
                   sandbox=SandboxLimits(max_rows=50, max_chars=6000, max_value_bytes=262_144))


@dataclass
class Turn:
    """One model turn and what the environment said back (None on the final turn)."""

    text: str
    tokens: int
    query: str | None = None
    observation: str | None = None
    query_ok: bool | None = None


def agent_messages(question: str, schema: str, system: str = AGENT_SYSTEM) -> list[dict[str, str]]:
    """The opening conversation of an episode: the protocol and schema, then the question."""
    return [{"role": "system", "content": system.format(schema=schema)},
            {"role": "user", "content": question}]


_TABLE_TITLE = re.compile(r"^.+ \(\d+ rows?\)$")


def question_only(instance: dict[str, Any], schema: str) -> dict[str, Any]:
    """A seccrm single-turn instance as an episode: its user message without the record tables (every
    paragraph that opens with ``Title (N rows)``), i.e. the date, the context lines, the question and
    the answer format, with the definitions the question uses, under the agent's protocol and the
    org's ``schema``. The gold is unchanged.

    A generic rendering: it keeps whatever the question names (entities, ids, dates). The scripted
    analysts of `seccrm.world.oracle` solve every episode of a built agentic suite from it by queries
    alone (docs/tasks.md); imported CRMArena-Pro tasks are episodes already.
    """
    user = next(m["content"] for m in instance["messages"] if m["role"] == "user")
    kept = [p for p in user.split("\n\n") if not _TABLE_TITLE.match(p.strip().split("\n", 1)[0])]
    text = "\n\n".join(kept)
    defs = definitions_for(text)
    return {**instance, "messages": agent_messages(f"{defs}\n{text}" if defs else text, schema),
            "metadata": {**instance.get("metadata", {}), "rendering": "question_only"}}


def gold_depends_on_records_shown(instance: dict[str, Any]) -> bool:
    """True for the single-turn instances whose gold is about the records the prompt shows rather than
    the org, so that their question-only episode has no answer to find:

    - a ``knowledge_qa`` article-form question ("which of the articles above answers it?") whose gold
      is None because the answering article was left out of those shown: the org holds it;
    - an ``internal_operation_data`` question a customer may ask ("how many cases ... in the records
      below?"): the gold counts a sample of the account's cases shown in the prompt.
    """
    meta = instance.get("metadata", {})
    task = instance.get("task")
    if task == "knowledge_qa":
        return meta.get("form") == "article" and meta.get("article_shown") is False
    if task == "internal_operation_data":
        return meta.get("refuse") is False
    return False


class Episode:
    """The environment of one episode over one org. Drive it with :meth:`act`.

    >>> ep = Episode(instance, "data/tiny/org.sqlite")               # doctest: +SKIP
    >>> ep.act("<execute>SELECT COUNT(*) FROM Account</execute>")     # doctest: +SKIP
    '<result>\\nCOUNT(*)\\n60\\n</result>'
    >>> ep.act("<answer>60</answer>"), ep.done, ep.end_reason         # doctest: +SKIP
    (None, True, 'answer')
    """

    def __init__(self, instance: dict[str, Any], org_path: str | Path, settings: EpisodeSettings | None = None,
                 messages: list[dict[str, str]] | None = None):
        self.instance = instance
        self.settings = settings or EpisodeSettings()
        self.sandbox = Sandbox(agent_org(org_path), self.settings.sandbox)
        self.protocol = get_protocol(self.settings.protocol)
        self.messages: list[dict[str, str]] = self.protocol.opening(messages or instance["messages"])
        self.turns: list[Turn] = []
        self.done = False
        self.end_reason: str | None = None

    @property
    def model_tokens(self) -> int:
        return sum(t.tokens for t in self.turns)

    @property
    def failed_queries(self) -> int:
        return sum(1 for t in self.turns if t.query_ok is False)

    def act(self, text: str, tokens: int = 0) -> str | None:
        """Record the model's turn ``text`` (``tokens`` long); return the environment's reply (the
        content of the message the protocol appends: a user message, or a ``tool`` one), or None when
        the episode is over. A malformed tool call is answered with an error and the episode goes on."""
        if self.done:
            raise RuntimeError("the episode is over")
        turn = Turn(text=text, tokens=tokens)
        self.turns.append(turn)
        self.messages.append({"role": "assistant", "content": text})
        if self.model_tokens > self.settings.max_model_tokens:     # over budget: no answer counts
            self._end("token_budget")
            return None
        action = self.protocol.parse(text)
        if action.answers:
            self._end("answer")
            return None
        if action.query is None and action.error is None:
            self._end("no_action")
            return None
        if len(self.turns) >= self.settings.max_turns:
            self._end("turn_limit")
            return None
        if self.model_tokens >= self.settings.max_model_tokens:    # no token left to answer with
            self._end("token_budget")
            return None
        if action.query is None:                                     # a malformed call: an error to read
            turn.query_ok, result_text = False, f"error: {action.error}"
        else:
            turn.query = action.query
            result = self.sandbox.run(turn.query)
            turn.query_ok, result_text = result.ok, result.text
        if action.ignored_calls:
            result_text += f"\n(one query per turn: {action.ignored_calls} more tool call(s) did not run)"
        message = self.protocol.observation(result_text)
        turn.observation = message["content"]
        self.messages.append(message)
        return turn.observation

    def stop(self, reason: str) -> None:
        """End the episode from outside (a driver's own budget ran out); a no-op once it is over."""
        if not self.done:
            self._end(reason)

    def _end(self, reason: str) -> None:
        self.done, self.end_reason = True, reason
        self.sandbox.close()
        return None

    @property
    def final_text(self) -> str:
        """What the verifier reads: the model's last turn."""
        return self.turns[-1].text if self.turns else ""

    def score(self) -> dict[str, Any]:
        """The verifier's details for the episode, plus turns, failed queries, tokens and why it ended.
        An episode that ran over its token budget scores ``REWARD_WRONG``, unformatted, whatever its
        last turn says (``error`` says why)."""
        details = score_details(self.instance, self.final_text)
        if self.end_reason == "token_budget":
            details.update(reward=REWARD_WRONG, correct=False, formatted=False,
                           error=f"over the token budget ({self.model_tokens} > {self.settings.max_model_tokens})"
                           if self.model_tokens > self.settings.max_model_tokens else "token budget spent")
        queries = [(t.query, bool(t.query_ok)) for t in self.turns if t.query is not None]
        paid = pay_episode(bool(details["correct"]), bool(details["formatted"]), [q for q, _ in queries],
                           [ok for _, ok in queries], len(self.turns), self.settings.reward)
        details.update(reward=paid.pop("reward"), reward_parts=paid, turns=len(self.turns),
                       queries=sum(1 for t in self.turns if t.query_ok is not None), queries_ran=paid["queries_ran"],
                       failed_queries=self.failed_queries, model_tokens=self.model_tokens,
                       end_reason=self.end_reason)
        return details

    def trajectory(self) -> dict[str, Any]:
        """The whole episode as plain data (for saving and reading)."""
        return {"id": self.instance.get("id"), "task": self.instance.get("task"),
                "messages": self.messages, "end_reason": self.end_reason,
                "turns": [t.__dict__ for t in self.turns]}


Policy = Callable[[list[dict[str, str]]], tuple[str, int]]
"""The conversation so far -> (the model's next message, its length in tokens)."""


def run_episode(policy: Policy, instance: dict[str, Any], org_path: str | Path,
                settings: EpisodeSettings | None = None) -> Episode:
    """Play one episode to its end with ``policy``; returns the finished episode (``.score()``)."""
    ep = Episode(instance, org_path, settings)
    while not ep.done:
        text, tokens = policy(ep.messages)
        ep.act(text, tokens)
    return ep


def schema_for(org_path: str | Path) -> str:
    """The schema text the agent sees, introspected from the org file."""
    return schema_text(org_path)
