"""Native tool calls (``--protocol tools``) beside CRMArena-Pro's tags: parsing that hostile output
cannot slow down or crash, the loss mask on exactly the sampled tokens under both protocols with two
real chat-template families (SmolLM2's and a Qwen2.5-style one), the scripted analysts solving every
episode under both, and a tiny model playing a tool-calling episode end to end."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from seccrm.data import build_suite, load_split
from seccrm.engine.episodes import (
    conversation_tokens,
    episode_rollouts,
    opening_ids,
    play_episode,
    render_chat,
    renders_tools,
)
from seccrm.engine.models import load_model_and_tokenizer, load_tokenizer
from seccrm.world.episode import Episode, EpisodeSettings
from seccrm.world.oracle import ORACLE_SETTINGS, oracle_table
from seccrm.world.protocol import (
    AGENT_SYSTEM,
    SQL_TOOL,
    TOOLS_SYSTEM,
    ToolCall,
    get_protocol,
    parse_tool_calls,
)
from seccrm.world.rewards import org_path

TOOLS = get_protocol("tools")

# A chat template written for these tests after Qwen2.5's published format (it is not Qwen's file):
# ChatML turns; with tools, the system turn ends with a "# Tools" section that lists each tool's JSON
# schema inside <tools></tools> and shows the <tool_call> block to write; an assistant's structured
# tool_calls are rendered as <tool_call> blocks; consecutive "tool" messages are one user turn, each
# result wrapped in <tool_response></tool_response>. (Qwen's own default system text is left out.)
QWEN25_STYLE = (
    "{%- if tools %}{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0].role == 'system' %}{{- messages[0].content }}{%- else %}{{- 'You are a helpful assistant.' }}"
    "{%- endif %}"
    "{{- '\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}"
    "{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}\\n</tool_call><|im_end|>\\n' }}"
    "{%- elif messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}{{- '<|im_start|>assistant' }}"
    "{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}"
    "{%- for call in message.tool_calls or [] %}"
    "{{- '\\n<tool_call>\\n{\"name\": \"' + call.function.name + '\", \"arguments\": ' + "
    "(call.function.arguments | tojson) + '}\\n</tool_call>' }}{%- endfor %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


@pytest.fixture(scope="module")
def agentic_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("protocol") / "agentic"
    build_suite(path, seed=0, size="tiny", train_per_task=6, test_per_task=4, progress=False, mode="agentic",
                optional_skills=("CONFIDENTIALITY",))
    return path


def _call(query: str) -> str:
    return TOOLS.call(query)


# ---------------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------------

def test_a_well_formed_call_is_parsed() -> None:
    text = 'Let me look.\n<tool_call>\n{"name": "sql", "arguments": {"query": "SELECT 1"}}\n</tool_call>'
    assert parse_tool_calls(text) == [ToolCall("sql", {"query": "SELECT 1"})]
    action = TOOLS.parse(text)
    assert action.query == "SELECT 1" and not action.answers and action.error is None
    # arguments sent as a JSON string (OpenAI's wire format) are read too; tags in any case
    assert TOOLS.parse('<TOOL_CALL>{"name": "sql", "arguments": "{\\"query\\": \\"SELECT 2\\"}"}</Tool_Call>'
                       ).query == "SELECT 2"
    assert TOOLS.parse(_call('SELECT "x" FROM "Case"')).query == 'SELECT "x" FROM "Case"'


def test_answers_and_calls_follow_the_order_they_are_written() -> None:
    assert TOOLS.parse("<answer>42</answer>").answers
    assert TOOLS.parse(f"<answer>42</answer>{_call('SELECT 1')}").answers
    assert TOOLS.parse(f"{_call('SELECT 1')}<answer>42</answer>").query == "SELECT 1"
    # the other protocol's tag is not a call: an <execute> turn under tools does nothing
    no_op = TOOLS.parse("<execute>SELECT 1</execute>")
    assert no_op.query is None and no_op.error is None and not no_op.answers
    assert TOOLS.parse("<tool_call>\n{\"name\": \"sql\"").query is None       # unclosed: not a call


@pytest.mark.parametrize("body,why", [
    ('{"name": "sql", "arguments": {"query": "SELECT 1"}', "malformed tool call"),   # no closing brace
    ("SELECT 1", "malformed tool call"),
    ('["sql"]', "malformed tool call"),
    ('{"name": "sql", "arguments": 3}', "not a JSON object"),
    ('{"name": "python", "arguments": {"code": "1"}}', "unknown tool"),
    ('{"name": "sql", "arguments": {"sql": "SELECT 1"}}', 'takes {"query"'),
    ("[" * 50_000 + "]" * 50_000, "nested too deeply"),
    ('{"name": "sql", "arguments": {"query": ' + "9" * 10_000 + "}}", "malformed tool call"),
])
def test_a_malformed_call_is_an_error_to_read(body: str, why: str) -> None:
    action = TOOLS.parse(f"<tool_call>{body}</tool_call>")
    assert action.query is None and not action.answers and action.error is not None and why in action.error


def test_several_calls_are_parsed_and_only_the_first_runs(agentic_suite: Path) -> None:
    text = "".join(_call(f"SELECT {i}") for i in range(3)) + "<tool_call>{bad</tool_call>"
    calls = parse_tool_calls(text)
    assert [c.arguments.get("query") for c in calls] == ["SELECT 0", "SELECT 1", "SELECT 2", None]
    assert calls[3].error is not None
    inst = load_split(agentic_suite, "train")[0]
    ep = Episode(inst, agentic_suite / "org.sqlite", EpisodeSettings(protocol="tools"))
    reply = ep.act(text)
    assert ep.turns[0].query == "SELECT 0" and ep.turns[0].query_ok
    assert reply is not None and reply.startswith("0\n0") and "3 more tool call(s) did not run" in reply


def test_an_episode_goes_on_after_a_malformed_call(agentic_suite: Path) -> None:
    inst = load_split(agentic_suite, "train")[0]
    ep = Episode(inst, agentic_suite / "org.sqlite", EpisodeSettings(protocol="tools"))
    assert ep.messages[0]["content"].startswith(TOOLS_SYSTEM.split("{schema}")[0])     # the tool's system text
    reply = ep.act('<tool_call>{"name": "sql", "arguments": {"query": "SELECT 1"</tool_call>')
    assert reply is not None and reply.startswith("error: malformed tool call") and not ep.done
    assert ep.messages[-1] == {"role": "tool", "content": reply}
    assert ep.failed_queries == 1 and ep.turns[0].query is None
    assert ep.act(_call('SELECT COUNT(*) AS n FROM "Account"')) is not None and ep.turns[1].query_ok
    assert ep.act("<answer>None</answer>") is None and ep.end_reason == "answer"
    d = ep.score()
    assert d["turns"] == 3 and d["failed_queries"] == 1 and "reward" in d


def _seconds(fn: Any, text: str) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        fn(text)
        best = min(best, time.perf_counter() - t0)
    return best


@pytest.mark.parametrize("unit", [
    "<tool_call>",                                             # openers without closers
    "<tool_call></tool_call>",                                 # many empty (malformed) calls
    "<tool_call>{\"a\":</tool_call>",
    "<tool_call><answer",                                      # near-misses of every tag
    "<TOOL_CALL>{" + '"x": [' * 3 + "</tool_call>",
])
def test_hostile_long_turns_parse_in_linear_time(unit: str) -> None:
    """10 times the text takes about 10 times as long (quadratic work would take 100 times), and
    under a second for half a megabyte or more (a turn is a few hundred tokens)."""
    small, large = unit * 2_000, unit * 20_000
    for fn in (TOOLS.parse, parse_tool_calls, TOOLS.cut):
        t_small, t_large = _seconds(fn, small), _seconds(fn, large)
        assert t_large < 1.0, f"{fn.__name__} took {t_large:.2f} s on {len(large)} characters"
        assert t_large < 30 * t_small + 0.01, f"{fn.__name__}: {t_small:.4f} s -> {t_large:.4f} s for 10x the text"


def test_unknown_protocols_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="tags, tools"):
        EpisodeSettings(protocol="json")
    with pytest.raises(ValueError, match="tags, tools"):
        get_protocol("json")


def test_the_system_message_is_rewritten_for_the_protocol() -> None:
    tags = [{"role": "system", "content": AGENT_SYSTEM.format(schema="Account(Id)")}, {"role": "user", "content": "q"}]
    tools = TOOLS.opening(tags)
    assert tools[0]["content"] == TOOLS_SYSTEM.format(schema="Account(Id)") and tools[1] == tags[1]
    assert TOOLS.opening(tools) == tools and get_protocol("tags").opening(tools) == tags


# ---------------------------------------------------------------------------------------------------
# Masks under both protocols, with SmolLM2's template and a Qwen2.5-style one
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def templates() -> dict[str, Any]:
    smol = load_tokenizer("smollm2")
    qwen = copy.deepcopy(smol)
    qwen.chat_template = QWEN25_STYLE
    return {"smollm2": smol, "qwen2.5-style": qwen}


def test_which_templates_render_tools(templates: dict[str, Any]) -> None:
    smol, qwen = templates["smollm2"], templates["qwen2.5-style"]
    assert not renders_tools(smol) and renders_tools(qwen)
    msgs = TOOLS.opening([{"role": "system", "content": AGENT_SYSTEM.format(schema="S")}, {"role": "user", "content": "q"}])
    schema = json.dumps(SQL_TOOL)
    for tok in (smol, qwen):             # declared once, through the template or in the system message
        text = render_chat(tok, msgs, "tools", tokenize=False, add_generation_prompt=True)
        assert text.count("<tools>\n{") == 1 and schema in text and "<execute>" not in text
    assert "<tools>" not in render_chat(smol, msgs, "tags", tokenize=False)


class ScriptedModel(torch.nn.Module):
    """Stands in for a model: each forward call puts all the mass on the next token of ``script``."""

    def __init__(self, script: list[int], vocab: int):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.script, self.vocab, self.calls = script, vocab, 0

    def forward(self, input_ids: torch.Tensor, **_: Any) -> Any:
        logits = torch.full((1, 1, self.vocab), -1e4)
        logits[0, -1, self.script[min(self.calls, len(self.script) - 1)]] = 0.0
        self.calls += 1
        return type("Out", (), {"logits": logits})()


def _turns(protocol: str) -> list[str]:
    write = get_protocol(protocol).call
    return [write('SELECT COUNT(*) AS n FROM "Case"'), write("SELEC nothing"), "<answer>None</answer>"]


@pytest.mark.parametrize("protocol", ["tags", "tools"])
@pytest.mark.parametrize("template", ["smollm2", "qwen2.5-style"])
def test_the_loss_mask_covers_exactly_the_sampled_tokens(templates: dict[str, Any], agentic_suite: Path,
                                                           template: str, protocol: str) -> None:
    tok = templates[template]
    inst = load_split(agentic_suite, "train")[0]
    turns = _turns(protocol)
    sampled = [tok(t, add_special_tokens=False)["input_ids"] for t in turns]
    model = ScriptedModel([i for t in sampled for i in t], len(tok))
    settings = EpisodeSettings(max_turns=5, max_model_tokens=10_000, max_new_tokens_per_turn=200, protocol=protocol)
    ep, ids, mask, _ = play_episode(model, tok, inst, org_path(inst), settings, greedy=True)
    assert [t.text for t in ep.turns] == turns and ep.end_reason == "answer"
    assert [t.query_ok for t in ep.turns] == [True, False, None]
    # 1 on exactly the sampled tokens, in order; 0 on everything the environment and the template wrote
    assert [i for i, m in zip(ids, mask, strict=True) if m] == [i for t in sampled for i in t]
    assert sum(mask) == ep.model_tokens and mask[-1] == 1
    # the whole sequence is the template's rendering of the conversation, by appending
    prompt = opening_ids(tok, inst["messages"], protocol)
    rendered = render_chat(tok, ep.messages[:-1], protocol, tokenize=False, add_generation_prompt=True) + turns[-1]
    assert tok.decode(prompt + ids) == rendered
    env = tok.decode([i for i, m in zip(ids, mask, strict=True) if not m])
    wrapped = {("tags", "smollm2"): "<|im_start|>user\n<result>", ("tags", "qwen2.5-style"): "<|im_start|>user\n<result>",
               ("tools", "smollm2"): "<|im_start|>tool\n", ("tools", "qwen2.5-style"): "<|im_start|>user\n<tool_response>\n"}
    assert env.count(wrapped[(protocol, template)]) == 2
    assert all(t.observation and t.observation in env for t in ep.turns[:-1])
    assert "<tool_call>" not in env and "<execute>" not in env
    # the message loop's re-tokenised episode masks the same text
    ids2, mask2 = conversation_tokens(tok, ep.messages, len(inst["messages"]), protocol)
    assert tok.decode([i for i, m in zip(ids2, mask2, strict=True) if m]) == "".join(turns)


def test_a_template_without_tools_declares_them_in_the_system_message(templates: dict[str, Any], agentic_suite: Path
                                                                      ) -> None:
    """SmolLM2's template ignores ``tools``: the episode's prompt carries the declaration all the same."""
    tok, inst = templates["smollm2"], load_split(agentic_suite, "train")[0]
    text = tok.decode(opening_ids(tok, inst["messages"], "tools"))
    system = text.split("<|im_end|>")[0]
    assert "call the `sql` tool" in system and "<tools>" in system and '"name": "sql"' in system
    assert text == tok.decode(opening_ids(templates["qwen2.5-style"], inst["messages"], "tools"))  # same prompt text


# ---------------------------------------------------------------------------------------------------
# Scripted analysts and a tiny model
# ---------------------------------------------------------------------------------------------------

def test_the_scripted_analysts_solve_every_episode_under_both_protocols(agentic_suite: Path) -> None:
    insts = [i for s in ("train", "val", "test") for i in load_split(agentic_suite, s)]
    org = agentic_suite / "org.sqlite"
    by_protocol = {}
    for protocol in ("tags", "tools"):
        settings = EpisodeSettings(max_turns=ORACLE_SETTINGS.max_turns, max_model_tokens=ORACLE_SETTINGS.max_model_tokens,
                                   max_new_tokens_per_turn=ORACLE_SETTINGS.max_new_tokens_per_turn, protocol=protocol)
        rows = oracle_table(insts, org, settings)
        failed = [r for r in rows if not r["correct"]]
        assert not failed, (protocol, failed[:3])
        by_protocol[protocol] = rows
    assert len(by_protocol["tools"]) == len(insts) > 100 and len({r["task"] for r in by_protocol["tools"]}) >= 20
    # the same analyst work under either protocol: the same queries and turns per episode
    assert [(r["queries"], r["turns"], r["sql_chars"]) for r in by_protocol["tags"]] == \
           [(r["queries"], r["turns"], r["sql_chars"]) for r in by_protocol["tools"]]


def test_a_tiny_model_plays_a_tool_calling_episode(agentic_suite: Path) -> None:
    """A tiny random model taught (150 steps) to open a turn with a ``sql`` tool call plays
    episodes under ``tools`` end to end: its calls run in the sandbox, the results come back in the
    tool role, and the rollouts the trainer gets mask exactly its own tokens."""
    torch.manual_seed(0)
    model, tok = load_model_and_tokenizer("tiny", seed=0)
    inst = {**load_split(agentic_suite, "train")[0], "messages": [     # a short prompt: the test stays quick
        {"role": "system", "content": AGENT_SYSTEM.format(schema='"Account"(Id, Name)')},
        {"role": "user", "content": "How many accounts are there?"}]}
    call = _call('SELECT COUNT(*) AS n FROM "Account"')
    prompt, script = opening_ids(tok, inst["messages"], "tools"), tok(call, add_special_tokens=False)["input_ids"]
    seq = torch.tensor([prompt + script])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(150):                   # the loss only where the call is taught
        logits = model.lm_head(model.model(input_ids=seq).last_hidden_state[0, len(prompt) - 1:-1])
        loss = torch.nn.functional.cross_entropy(logits, seq[0, len(prompt):])
        opt.zero_grad()
        loss.backward()
        opt.step()
    settings = EpisodeSettings(max_turns=2, max_model_tokens=400, max_new_tokens_per_turn=len(script) + 8,
                               protocol="tools")
    ep, ids, mask, _ = play_episode(model, tok, inst, org_path(inst), settings, greedy=True)
    assert ep.turns[0].text == call and ep.turns[0].query_ok
    assert ep.messages[3]["role"] == "tool" and ep.messages[3]["content"] == ep.turns[0].observation
    assert ep.end_reason in ("turn_limit", "answer", "no_action") and sum(mask) == ep.model_tokens
    ro, details, episodes = episode_rollouts(model, tok, [inst], 2, settings, seed=1, org_path=org_path)
    assert ro.loss_mask is not None and len(details) == 2 and ro.prompt_ids[0] == prompt
    for e, m in zip(episodes, ro.loss_mask, strict=True):
        assert sum(m) == e.model_tokens and all(t.query is None or t.text.startswith("<tool_call>") for t in e.turns)
