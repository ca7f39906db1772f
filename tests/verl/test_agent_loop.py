"""seccrm's SQL episodes as a VERL agent loop, against the installed VERL (0.9's agent-loop interface).

The inference server is scripted (it returns fixed turns); everything else is real: VERL's agent-loop
base class and its Continuous Token builder with the SmolLM2 chat template, an agentic suite exported
for VERL, the sandbox over its org, and VERL's reward function on the decoded response; under both
protocols (``<execute>`` tags and native ``sql`` tool calls).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("verl.protocol")
agent_loop_module = pytest.importorskip("verl.experimental.agent_loop.agent_loop")
if not hasattr(agent_loop_module.AgentLoopBase, "ct_merge_context_msg"):  # VERL <= 0.8: another interface
    pytest.skip("this VERL's agent loops have no Continuous Token interface", allow_module_level=True)

import pyarrow.parquet as pq  # noqa: E402
from verl.experimental.agent_loop.agent_loop import DictConfigWrap  # noqa: E402
from verl.utils.dataset.rl_dataset import RLHFDataset  # noqa: E402
from verl.workers.rollout.replica import TokenOutput  # noqa: E402

from seccrm.data.importers.crmarena_pro import import_crmarena_pro  # noqa: E402
from seccrm.integrations.verl.agent_loop import STOP, SQLAgentLoop  # noqa: E402
from seccrm.integrations.verl.export import export_verl  # noqa: E402
from seccrm.integrations.verl.reward import compute_score, instance_from_extra_info  # noqa: E402
from seccrm.world.episode import Episode, EpisodeSettings  # noqa: E402
from seccrm.world.protocol import get_protocol  # noqa: E402
from seccrm.world.rewards import org_path  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1]))
from test_crmarena_pro import write_fixture  # noqa: E402

TURNS = ['<execute>SELECT COUNT(*) FROM "Case"</execute>', "<execute>SELEC nothing</execute>", "<answer>None</answer>"]
TOOL_TURNS = [get_protocol("tools").call('SELECT COUNT(*) FROM "Case"'), get_protocol("tools").call("SELEC nothing"),
              "<answer>None</answer>"]


class ScriptedServer:
    """Stands in for VERL's LLM server client: returns the scripted turns in order, records each call."""

    def __init__(self, tokenizer: Any, turns: list[str]):
        self.turns = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in turns]
        self.calls: list[tuple[list[int], dict[str, Any]]] = []

    async def generate(self, *, request_id: str, prompt_ids: list[int], sampling_params: dict[str, Any],
                       **kwargs: Any) -> TokenOutput:
        self.calls.append((list(prompt_ids), dict(sampling_params)))
        return TokenOutput(token_ids=self.turns[len(self.calls) - 1])


@pytest.fixture(scope="module")
def agentic_row(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("agent_loop")
    tasks, org = write_fixture(d / "src")
    import_crmarena_pro(tasks, org, d / "suite", train_share=0.6)
    export_verl(d / "suite", d / "verl")
    return pq.read_table(d / "verl" / "train.parquet").to_pylist()[0]


@pytest.mark.parametrize("protocol", ["tags", "tools"])
def test_an_episode_through_verl_agent_loop(agentic_row: dict[str, Any], tokenizer: Any,
                                            verl_config: Callable[..., Any], protocol: str) -> None:
    config = verl_config("actor_rollout_ref.rollout.response_length=1024")
    turns = TURNS if protocol == "tags" else TOOL_TURNS
    server = ScriptedServer(tokenizer, turns)

    async def play() -> Any:
        loop = SQLAgentLoop(trainer_config=DictConfigWrap(config), server_manager=server, tokenizer=tokenizer,
                            processor=None, dataset_cls=RLHFDataset, data_config=DictConfigWrap(config.data),
                            max_turns=5, protocol=protocol)
        return await loop.run({"temperature": 1.0}, raw_prompt=agentic_row["prompt"],
                              extra_info=agentic_row["extra_info"])

    out = asyncio.run(play())
    assert out.extra_fields["seccrm_episode"] == {"turns": 3, "failed_queries": 1, "end_reason": "answer"}
    stops = STOP if protocol == "tags" else ["</tool_call>", "</answer>"]
    assert all(p["stop"] == stops and p["include_stop_str_in_output"] and p["temperature"] == 1.0
               for _, p in server.calls)
    prompt = tokenizer.decode(server.calls[0][0])
    assert ("call the `sql` tool" in prompt and '"name": "sql"' in prompt) == (protocol == "tools")
    # Every turn continues the token sequence of the one before: nothing is re-rendered.
    for (before, _), (after, _) in zip(server.calls, server.calls[1:], strict=False):
        assert after[: len(before)] == before and len(after) > len(before)
    # The mask: 1 on exactly the scripted tokens, 0 on the sandbox's replies.
    model_ids = [t for t, m in zip(out.response_ids, out.response_mask, strict=True) if m]
    assert model_ids == [t for turn in server.turns for t in turn]
    env_text = tokenizer.decode([t for t, m in zip(out.response_ids, out.response_mask, strict=True) if not m])
    # The same turns played directly against the sandbox give the same replies and the same reward.
    instance = instance_from_extra_info(agentic_row["extra_info"])
    ep = Episode(instance, org_path(instance), EpisodeSettings(max_turns=5, protocol=protocol))
    replies = [ep.act(t) for t in turns]
    assert replies[-1] is None and all(r and r.strip("\n") in env_text for r in replies[:-1])
    assert env_text.count("<|im_start|>user\n<result>" if protocol == "tags" else "<|im_start|>tool\n") == 2
    assert "no such" in replies[1].lower() or "error" in replies[1].lower()
    solution = tokenizer.decode(out.response_ids, skip_special_tokens=True)
    score = compute_score(agentic_row["data_source"], solution, agentic_row["reward_model"]["ground_truth"],
                          agentic_row["extra_info"])
    assert score["score"] == ep.score()["reward"]
