"""SEC inside TRL's GRPOTrainer: a tiny-model run whose arm draws follow the bandit, whose Q values
equal seccrm.curriculum.SEC fed the same advantages, and whose resume continues the bandit exactly;
multi-turn episodes through TRL's tool calling, whose loss covers the assistant's tokens only.
Several processes: tests/test_trl_multiprocess.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

trl = pytest.importorskip("trl")

from seccrm.curriculum import SEC  # noqa: E402
from seccrm.data import load_split  # noqa: E402
from seccrm.integrations.trl import (  # noqa: E402
    STATE_FILE,
    SECGRPOTrainer,
    correct_reward,
    formatted_reward,
    reward_functions,
    suite_dataset,
)
from seccrm.world.rewards import score  # noqa: E402


def test_reward_functions_sum_to_the_project_reward(tiny_suite: Path) -> None:
    ds = suite_dataset(tiny_suite, "train")
    rows = load_split(tiny_suite, "train")[:6]
    comps = [[{"role": "assistant", "content": c}] for c in
             (f"<answer>{rows[0]['answer'][0]}</answer>", "<answer>None</answer>", "no block", "<answer>x</answer>",
              f"<answer>{rows[4]['answer'][0]}</answer>", "")]
    inst = ds["instance"][:6]
    c, f = correct_reward(None, comps, inst), formatted_reward(None, comps, inst)
    assert [a + b for a, b in zip(c, f, strict=True)] == [score(r, x[0]["content"]) for r, x in zip(rows, comps, strict=True)]
    assert c[0] == 1.0 and f[2] == 0.0
    assert [fn.__name__ for fn in reward_functions()] == ["correct", "formatted"]


def varied(prompts: Any, completions: list[Any], **_: Any) -> list[float]:
    """A reward that differs within groups (the tiny random model never answers right), so that the
    advantages, and with them the bandit, move."""
    return [float(sum(map(ord, c[0]["content"])) % 5) for c in completions]


def _short(ds: Any, n: int = 48) -> Any:
    """The n instances with the shortest prompts, each cut to its last line: TRL's log-prob kernel runs
    over the prompt too and is slow on CPU for long ones (the rewards read the ``instance`` column)."""
    from trl_worker import short_prompts
    lengths = [sum(len(m["content"]) for m in p) for p in ds["prompt"]]
    return short_prompts(ds.select(sorted(range(len(ds)), key=lambda i: lengths[i])[:n]))


def _trainer(tiny_suite: Path, out: Path, steps: int, **kw: Any) -> SECGRPOTrainer:
    from trl import GRPOConfig

    from seccrm.engine.models import load_model_and_tokenizer
    model, tok = load_model_and_tokenizer("tiny", seed=0)
    args = GRPOConfig(output_dir=str(out), per_device_train_batch_size=4, num_generations=4,
                      max_completion_length=6, max_steps=steps, learning_rate=1e-3, logging_steps=1,
                      save_steps=1, save_strategy="steps", report_to=[], seed=7, use_cpu=True,
                      bf16=False, temperature=1.0, dataloader_num_workers=0, **kw)
    return SECGRPOTrainer(model=model, processing_class=tok, reward_funcs=[*reward_functions(), varied],
                          train_dataset=_short(suite_dataset(tiny_suite, "train")), args=args, curriculum="sec",
                          curriculum_options={"alpha": 0.3, "tau": 0.5})


@pytest.mark.slow
def test_the_bandit_in_trl_equals_seccrm_sec_fed_the_same_advantages(tiny_suite: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = _trainer(tiny_suite, tmp_path / "run", steps=3)
    mirror = SEC(trainer.curriculum.arms, alpha=0.3, tau=0.5)
    seen: list[tuple[list[str], list[float]]] = []
    real_update = trainer.curriculum.update

    def spy(arms: list[str], advantages: list[float], **k: Any) -> Any:
        seen.append((list(arms), list(advantages)))
        probs_before = trainer.curriculum.probs()
        out = real_update(arms, advantages, **k)
        mirror.update(arms, advantages)
        for a in mirror.arms:
            assert abs(mirror.q[a] - trainer.curriculum.q[a]) < 1e-6
        assert set(probs_before) == set(mirror.arms)
        return out
    monkeypatch.setattr(trainer.curriculum, "update", spy)
    trainer.train()
    assert any(abs(x) > 0 for _, adv in seen for x in adv)              # the bandit had something to learn
    assert any(abs(q) > 1e-3 for q in trainer.curriculum.q.values())
    assert len(seen) == 3 and all(len(a) == 4 for a, _ in seen)          # one group of 4 per step
    for arms, _ in seen:
        assert len(set(arms)) == 1                                       # a group shares its prompt's arm
    logged = [h for h in trainer.state.log_history if any(k.startswith("curriculum/p/") for k in h)]
    assert logged and all(abs(sum(v for k, v in h.items() if k.startswith("curriculum/p/")) - 1) < 1e-4
                          for h in logged)
    assert any(k.startswith("rewards/correct") for h in trainer.state.log_history for k in h)


@pytest.mark.slow
def test_resume_from_a_trl_checkpoint_continues_the_bandit_exactly(tiny_suite: Path, tmp_path: Path) -> None:
    full = _trainer(tiny_suite, tmp_path / "full", steps=3)
    full.train()
    from transformers import TrainerCallback

    class StopAfterOne(TrainerCallback):   # the same 3-step run (same schedule), stopped after step 1
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            control.should_training_stop = state.global_step >= 1
            return control
    half = _trainer(tiny_suite, tmp_path / "half", steps=3)
    half.add_callback(StopAfterOne())
    half.train()
    ck = tmp_path / "half" / "checkpoint-1"
    assert (ck / STATE_FILE).is_file()
    state = json.loads((ck / STATE_FILE).read_text())
    assert state["pending"]                         # the loader had drawn ahead: kept for the resume
    resumed = _trainer(tiny_suite, tmp_path / "half", steps=3)
    resumed.train(resume_from_checkpoint=str(ck))
    assert resumed.curriculum.state_dict() == full.curriculum.state_dict()
    assert any(abs(q) > 1e-3 for q in full.curriculum.q.values())
    assert resumed.curriculum_sampler.pools.state_dict() == full.curriculum_sampler.pools.state_dict()


def test_the_sampler_draws_arms_at_the_bandits_probabilities(tiny_suite: Path) -> None:
    from seccrm.curriculum import build_curriculum
    from seccrm.integrations.trl import CurriculumSampler, arm_pools

    ds = suite_dataset(tiny_suite, "train")
    pools, arms = arm_pools(ds, 0)
    cur = build_curriculum("sec", arms, 0, {"tau": 0.5})
    cur.update([arms[0]] * 8, [1.0] * 8)                  # favour one arm
    probs = cur.probs()
    sampler = CurriculumSampler(ds, cur, pools, batch_size=5, mini_repeat_count=3, repeat_count=2)
    rows = list(sampler)
    assert len(rows) == len(sampler)
    first = rows[:30]
    assert first[:3] == [first[0]] * 3 and first[:15] == first[15:30]   # TRL's repeat layout
    counts: dict[str, int] = {}
    chunks = [rows[i:i + 30:3] for i in range(0, len(rows), 30)]
    for chunk in chunks:
        for idx in chunk[:5]:
            counts[ds["arm"][idx]] = counts.get(ds["arm"][idx], 0) + 1
    n = sum(counts.values())
    assert abs(counts.get(arms[0], 0) / n - probs[arms[0]]) < 4 * (probs[arms[0]] * (1 - probs[arms[0]]) / n) ** 0.5


@pytest.mark.parametrize("recipe", ["train_sec_grpo.py", "train_sec_grpo_agentic.py"])
def test_the_recipe_scripts_explain_themselves(recipe: str) -> None:
    import subprocess
    import sys
    done = subprocess.run([sys.executable, f"recipes/trl/{recipe}", "--help"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert done.returncode == 0 and "GRPOTrainer" in done.stdout and "--curriculum" in done.stdout


# ------------------------------------------------------------------------------------ multi-turn
@pytest.fixture(scope="module")
def agentic_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from seccrm.data import build_suite
    out = tmp_path_factory.mktemp("agentic")
    build_suite(out, seed=0, size="tiny", train_per_task=6, test_per_task=2, progress=False, mode="agentic")
    return out


def test_rewards_read_the_last_assistant_message_of_an_episode(tiny_suite: Path) -> None:
    ds = suite_dataset(tiny_suite, "train")
    gold = load_split(tiny_suite, "train")[0]["answer"][0]
    call = {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "sql"}}]}
    result = {"role": "tool", "name": "sql", "content": f"<answer>{gold}</answer>"}
    episodes = [[call, result, {"role": "assistant", "content": f"<answer>{gold}</answer>"}],
                [call, result],                                       # stopped at the budget: no answer
                [call, result, {"role": "assistant", "content": "nothing"}]]
    inst = [ds["instance"][0]] * 3
    assert correct_reward(None, episodes, inst) == [1.0, 0.0, 0.0]   # a tool result that quotes the gold earns nothing


def test_agentic_dataset_wants_an_agentic_suite_and_names_the_tool(tiny_suite: Path, agentic_suite: Path) -> None:
    from seccrm.integrations.trl import agentic_dataset
    with pytest.raises(ValueError, match="--mode agentic"):
        agentic_dataset(tiny_suite)
    ds = agentic_dataset(agentic_suite, "train")
    system, user = ds["prompt"][0][0], ds["prompt"][0][1]
    assert system["role"] == "system" and "`sql` tool" in system["content"] and '"Case"' in system["content"]
    assert "<execute>" not in system["content"] and user["role"] == "user"


def test_the_environment_runs_queries_through_the_sandbox(agentic_suite: Path) -> None:
    from seccrm.integrations.trl import CRMEnvironment, agentic_dataset
    row = agentic_dataset(agentic_suite, "train")[0]
    env = CRMEnvironment()
    with pytest.raises(RuntimeError, match="reset"):
        env.sql("SELECT 1")
    env.reset(**row)
    counted = env.sql("SELECT COUNT(*) FROM Account")
    assert "COUNT(*)" in counted and not counted.startswith("error")
    assert env.sql("DELETE FROM Account").startswith("error") and env.sql("SELEC x").startswith("error")
    assert (env.queries, env.failed_queries) == (3, 2)
    env.reset(**row)
    assert (env.queries, env.failed_queries) == (0, 0)


@pytest.mark.slow
def test_multi_turn_episodes_train_on_the_assistants_tokens_and_feed_the_bandit(agentic_suite: Path,
                                                                                tmp_path: Path) -> None:
    from trl_worker import build_trainer
    trainer = build_trainer(str(agentic_suite), str(tmp_path / "run"), "agentic", steps=2, per_device=4)
    batches: list[tuple[list[str], list[float], dict[str, Any]]] = []
    update = trainer._update_curriculum

    def spy(inputs: list[dict[str, Any]], output: dict[str, Any]) -> None:
        batches.append(([x["arm"] for x in inputs], output["advantages"].tolist(), output))
        update(inputs, output)
    trainer._update_curriculum = spy
    mirror = SEC(trainer.curriculum.arms, alpha=0.3, tau=0.5)
    trainer.train()
    emitted = {tuple(c) for c in trainer._generate_single_turn.emitted}
    tok = trainer.processing_class
    with_tool = 0
    for arms, advantages, out in batches:
        for ids, keep, tool in zip(out["completion_ids"], out["completion_mask"], out["tool_mask"], strict=True):
            ids = ids[keep.bool()].tolist()
            loss = [i for i, t in zip(ids, tool[:len(ids)].tolist(), strict=True) if t]   # what the loss sees
            outside = tok.decode([i for i, t in zip(ids, tool[:len(ids)].tolist(), strict=True) if not t])
            turns = [c for c in emitted if tuple(loss[:len(c)]) == c]
            assert turns, f"the loss covers tokens the policy did not write: {tok.decode(loss)!r}"
            rest = tuple(loss[len(turns[0]):])
            assert not rest or rest in emitted, f"the loss covers tokens the policy did not write: {tok.decode(loss)!r}"
            assert "tool_response" not in tok.decode(loss)
            if rest:                                  # two turns: a tool result between them, out of the loss
                with_tool += 1
                assert "<tool_response>" in outside and "</tool_response>" in outside
        mirror.update(arms, advantages)
    assert with_tool >= 2
    drawn = {a for arms, _, _ in batches for a in arms}
    q = trainer.curriculum.q
    assert all(abs(q[a] - mirror.q[a]) < 1e-6 for a in q)
    assert {a for a in q if q[a] != 0.0} == drawn                   # drawn arms moved, the others held
    logged = [h for h in trainer.state.log_history if "agent/queries" in h]
    assert logged and all(0 < h["agent/queries"] <= 1 for h in logged)


def test_the_agentic_form_reward_needs_a_query_that_ran(tiny_suite: Path) -> None:
    from seccrm.integrations.trl.rewards import episode_formatted_reward
    ds = suite_dataset(tiny_suite, "train")
    golds = {a for r in load_split(tiny_suite, "train") for a in r["answer"]}
    inst = load_split(tiny_suite, "train")[0]
    wrong = next(g for g in sorted(golds) if g not in inst["answer"] and g != "None")
    call = {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "sql"}}]}
    ran = {"role": "tool", "name": "sql", "content": "n\n3"}
    failed = {"role": "tool", "name": "sql", "content": "error: no such table: Foo"}
    answer = {"role": "assistant", "content": f"<answer>{wrong}</answer>"}
    episodes = [[answer], [call, failed, answer], [call, ran, answer]]
    forms = formatted_reward(None, episodes, [ds["instance"][0]] * 3)
    assert episode_formatted_reward(None, episodes, [ds["instance"][0]] * 3) == [0.0, 0.0, forms[2]]
    assert forms[2] == pytest.approx(0.1)
    assert [fn.__name__ for fn in reward_functions(agentic=True)] == ["correct", "formatted"]
