"""How the model acts in an episode: CRMArena-Pro's tags, or native tool calls.

Two protocols, chosen by ``EpisodeSettings.protocol`` (``--protocol tags|tools``):

- ``tags`` (CRMArena-Pro's): the model writes ``<execute>SQL</execute>``, the result comes back as a
  user message ``<result>...</result>``.
- ``tools``: the SQL tool (:data:`SQL_TOOL`, a JSON schema) is declared through the chat template
  (``apply_chat_template(..., tools=[SQL_TOOL])``); the model calls it in the Hermes / Qwen2.5
  tool-call block, ``<tool_call>\\n{"name": "sql", "arguments": {"query": "..."}}\\n</tool_call>``, and
  the result comes back in a message of role ``tool`` (its bare text: a template that wraps tool
  results, as Qwen2.5's ``<tool_response>``, does so itself).

Under both, the final answer is ``<answer>...</answer>``, and the same sandbox, verifiers and episode
rewards apply. The model's calls stay the text it wrote (the assistant message's ``content``, never a
structured ``tool_calls`` field that a template would re-render): token-in, token-out episodes need
the conversation rendered by appending to what was sampled.

Model output is hostile: every parser here runs in linear time (``str.find``, no backtracking regex),
and a malformed call (bad JSON, JSON nested too deep, an unknown tool, no ``query`` string) is not an
exception but an error observation (``error: ...``); the episode goes on. One query runs per turn:
the first call of a turn runs, and the observation says how many others were left out.

This module is text only (no tokenizer): `seccrm.engine.episodes` decides whether a chat template
renders ``tools`` itself or needs the declaration in the system prompt (:func:`declare_tools`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

AGENT_SYSTEM = """You are a CRM analyst with read-only SQL access to the company's Salesforce org (SQLite).
Work in turns. To look at data, write one query as <execute>SELECT ...</execute> and stop; the result
comes back in the next message. When you know the answer, write it as <answer>...</answer>.
Quote table names that are SQL keywords ("Case", "Order"). Dates are ISO text (YYYY-MM-DD...).

The org's tables:
{schema}"""
"""The system message under the ``tags`` protocol (every built or imported suite's prompts carry it)."""

TOOLS_SYSTEM = """You are a CRM analyst with read-only SQL access to the company's Salesforce org (SQLite).
Work in turns. To look at data, call the `sql` tool with one query and stop; the result comes back
as the tool's message. When you know the answer, write it as <answer>...</answer> without calling a tool.
Quote table names that are SQL keywords ("Case", "Order"). Dates are ISO text (YYYY-MM-DD...).

The org's tables:
{schema}"""
"""The system message under the ``tools`` protocol: :data:`AGENT_SYSTEM` with the tool in place of the tags."""

SQL_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "sql",
        "description": "Run one read-only SQL query (SQLite) on the company's CRM org and return its result "
                       "as a compact table, or an error message.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "A single SELECT statement. Quote table "
                                     "names that are SQL keywords (\"Case\", \"Order\")."}},
            "required": ["query"],
        },
    },
}
"""The one tool of an episode, as the JSON schema chat templates take in ``tools=[...]``."""

TOOL_OPEN, TOOL_CLOSE = "<tool_call>", "</tool_call>"


def parse_turn(text: str) -> tuple[str | None, bool]:
    """The query of a ``tags`` turn and whether it answers, in one linear pass: the query is the text
    between the first ``<execute>`` and the first ``</execute>`` after it (None without both); the turn
    answers when an ``<answer>`` tag (any case) comes before that query or there is no query.

    >>> parse_turn("<EXECUTE> SELECT 1 </execute>")
    ('SELECT 1', False)
    >>> parse_turn("<answer>42</answer> <execute>SELECT 1</execute>")
    (None, True)
    """
    low = text.translate(_ASCII_LOWER)         # ASCII only: indices stay those of ``text``
    query = None
    start = low.find("<execute>")
    if start >= 0:
        end = low.find("</execute>", start + 9)
        if end >= 0:
            query = text[start + 9:end].strip()
    answer = low.find("<answer>")
    answers = answer >= 0 and (query is None or answer < start)
    return (None if answers else query), answers


@dataclass(frozen=True)
class ToolCall:
    """One ``<tool_call>`` block: the tool's name and arguments, or why the block is malformed."""

    name: str | None
    arguments: dict[str, Any]
    error: str | None = None


def _decode_call(body: str) -> ToolCall:
    try:
        obj = json.loads(body)
    except RecursionError:
        return ToolCall(None, {}, "malformed tool call: JSON nested too deeply")
    except ValueError as e:                   # JSONDecodeError, and the int-digits limit
        return ToolCall(None, {}, f"malformed tool call: {str(e)[:160]}")
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return ToolCall(None, {}, 'malformed tool call: write {"name": "sql", "arguments": {"query": "SELECT ..."}}')
    args = obj.get("arguments", {})
    if isinstance(args, str):                  # some models send the arguments as a JSON string
        try:
            args = json.loads(args)
        except (ValueError, RecursionError):
            return ToolCall(obj["name"], {}, "malformed tool call: the arguments are not a JSON object")
    if not isinstance(args, dict):
        return ToolCall(obj["name"], {}, "malformed tool call: the arguments are not a JSON object")
    return ToolCall(obj["name"], args)


def parse_tool_calls(text: str) -> list[ToolCall]:
    """Every complete ``<tool_call>...</tool_call>`` block of ``text`` (tags in any case), in order, in
    linear time; a block whose JSON does not decode is a :class:`ToolCall` with ``error`` set.

    >>> parse_tool_calls('<tool_call>\\n{"name": "sql", "arguments": {"query": "SELECT 1"}}\\n</tool_call>')
    [ToolCall(name='sql', arguments={'query': 'SELECT 1'}, error=None)]
    >>> parse_tool_calls("<tool_call>{oops</tool_call>")[0].error[:19]
    'malformed tool call'
    """
    return [_decode_call(text[a:b]) for a, b in _call_spans(text.translate(_ASCII_LOWER))]


def _call_spans(low: str, limit: int | None = None) -> list[tuple[int, int]]:
    """Where the bodies of the complete ``<tool_call>`` blocks of ``low`` (lower-cased) are: the first
    ``limit`` of them (all by default)."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while (limit is None or len(spans) < limit) and (start := low.find(TOOL_OPEN, pos)) >= 0:
        end = low.find(TOOL_CLOSE, start + len(TOOL_OPEN))
        if end < 0:
            break                              # an unclosed block is not a call
        spans.append((start + len(TOOL_OPEN), end))
        pos = end + len(TOOL_CLOSE)
    return spans


def _count_calls(low: str, pos: int) -> int:
    """How many complete ``<tool_call>`` blocks ``low`` has from ``pos`` on (nothing allocated per block)."""
    n = 0
    while (start := low.find(TOOL_OPEN, pos)) >= 0 and (end := low.find(TOOL_CLOSE, start + len(TOOL_OPEN))) >= 0:
        n, pos = n + 1, end + len(TOOL_CLOSE)
    return n


@dataclass(frozen=True)
class Action:
    """What a model turn does: run ``query``, answer, report ``error`` back (a malformed call), or
    nothing (no query, no answer, no error: the model stopped acting)."""

    query: str | None = None
    answers: bool = False
    error: str | None = None
    ignored_calls: int = 0
    """Calls after the first of a turn, which did not run (one query per turn)."""


def _first(low: str, tag: str) -> int:
    at = low.find(tag)
    return at if at >= 0 else len(low) + 1


class Protocol:
    """The ``tags`` protocol; :class:`ToolsProtocol` overrides what differs."""

    name = "tags"
    stops: tuple[str, ...] = ("</execute>", "</answer>")
    """Strings that end a model turn (the first one in the turn's text)."""
    tools: tuple[dict[str, Any], ...] = ()
    """Tools declared through the chat template."""
    system, other_system = AGENT_SYSTEM, TOOLS_SYSTEM

    def parse(self, text: str) -> Action:
        query, answers = parse_turn(text)
        return Action(query=query, answers=answers)

    def call(self, query: str) -> str:
        """The turn a model (or a scripted analyst) writes to run ``query``."""
        return f"<execute>{query}</execute>"

    def observation(self, result: str) -> dict[str, str]:
        """The message that brings a query's result (or an error) back to the model."""
        return {"role": "user", "content": f"<result>\n{result}\n</result>"}

    def cut(self, text: str) -> str:
        """``text`` up to and including the first of :attr:`stops` (any case); all of it without one."""
        low = text.translate(_ASCII_LOWER)
        ends = [at + len(s) for s in self.stops if (at := low.find(s)) >= 0]
        return text[:min(ends)] if ends else text

    def opening(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        """An episode's opening messages under this protocol: a system message written for the other
        protocol (its fixed text, then the schema) is rewritten; any other message is kept as is."""
        head = self.other_system.split("{schema}")[0]
        out = []
        for m in messages:
            if m["role"] == "system" and m["content"].startswith(head):
                m = {**m, "content": self.system.format(schema=m["content"][len(head):])}
            out.append(dict(m))
        return out


class ToolsProtocol(Protocol):
    """Native tool calls: the ``sql`` tool declared through the chat template (module docstring)."""

    name = "tools"
    stops = (TOOL_CLOSE, "</answer>")
    tools = (SQL_TOOL,)
    system, other_system = TOOLS_SYSTEM, AGENT_SYSTEM

    def parse(self, text: str) -> Action:
        low = text.translate(_ASCII_LOWER)
        if _first(low, "<answer>") < _first(low, TOOL_OPEN):
            return Action(answers=True)
        spans = _call_spans(low, limit=1)       # only the first call is decoded: it is the one that runs
        if not spans:
            return Action()
        body_start, body_end = spans[0]
        first = _decode_call(text[body_start:body_end])
        ignored = _count_calls(low, body_end + len(TOOL_CLOSE))
        if first.error is not None:
            return Action(error=first.error, ignored_calls=ignored)
        if first.name != "sql":
            return Action(error=f"unknown tool {str(first.name)[:60]!r}: the only tool is sql", ignored_calls=ignored)
        query = first.arguments.get("query")
        if not isinstance(query, str):
            return Action(error='the sql tool takes {"query": "SELECT ..."}', ignored_calls=ignored)
        return Action(query=query.strip(), ignored_calls=ignored)

    def call(self, query: str) -> str:
        args = json.dumps({"name": "sql", "arguments": {"query": query}}, ensure_ascii=False)
        return f"{TOOL_OPEN}\n{args}\n{TOOL_CLOSE}"

    def observation(self, result: str) -> dict[str, str]:
        return {"role": "tool", "content": result}


_PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (Protocol(), ToolsProtocol())}
PROTOCOLS = tuple(_PROTOCOLS)
"""The protocols' names: ``('tags', 'tools')``."""


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; a ValueError lists the known ones."""
    if name not in _PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    return _PROTOCOLS[name]


def tools_declaration(tools: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> str:
    """The tools as a system-prompt block in the Hermes / Qwen2.5 format (``<tools>`` holding one JSON
    schema a line, then how to write a ``<tool_call>``), for chat templates that ignore ``tools``."""
    schemas = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
    return ("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n"
            f"<tools>\n{schemas}\n</tools>\n\n"
            "For each function call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags:\n"
            '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')


def declare_tools(messages: list[dict[str, str]], tools: list[dict[str, Any]] | tuple[dict[str, Any], ...]
                  ) -> list[dict[str, str]]:
    """``messages`` with :func:`tools_declaration` at the end of the system message (one is put first
    when there is none): how the tools reach a model whose chat template ignores ``tools``, such as
    SmolLM2's. Only the first message changes, so a conversation still renders by appending turns."""
    block = tools_declaration(tools)
    if messages and messages[0]["role"] == "system":
        return [{**messages[0], "content": f"{messages[0]['content']}\n\n{block}"}, *messages[1:]]
    return [{"role": "system", "content": block}, *messages]
