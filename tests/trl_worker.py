"""One process of a multi-process SECGRPOTrainer run (launched by tests/test_trl_multiprocess.py through
``accelerate launch --cpu --num_processes 2``), and the scripted turns the multi-turn tests play.

Each process writes ``rank<N>.json``: per training step, the chunk of prompt rows its sampler handed
out, the arms and ids of the whole generation batch (gathered over processes, in process order) and
the bandit's state after the update; and the final ``state_dict`` of its curriculum.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any

QUERIES = ("SELECT COUNT(*) FROM Account", 'SELECT Id FROM "Case" LIMIT 1', "SELEC broken")
_ID = re.compile(r"\b[0-9A-Za-z]{15}[A-Z]{3}\b")


def scripted_turns(tokenizer: Any, start: int = 0) -> Any:
    """A stand-in for ``GRPOTrainer._generate_single_turn`` (a tiny random model never writes a tool
    call): it reads each prompt and writes a turn as the tokens of text, EOS-terminated. First turns
    cycle through four behaviours (so every group of four holds all of them): query, query, a failing
    query, answer at once, from ``start`` on (a process's first slot in the batch, so that a group split
    over processes holds the four too, and each process's share of it differs). After a tool result it answers: an id seen in the question after a working
    query, else a malformed answer. ``emitted`` keeps every turn's ids, for the mask checks."""
    counter = {"first": start}
    emitted: list[list[int]] = []

    def turn(prompt_ids: list[list[int]], images: Any, multimodal_fields: Any, num_generations: int,
             has_tool_images: bool = False) -> tuple[list[list[int]], None]:
        out = []
        for ids in prompt_ids:
            text = tokenizer.decode(ids)
            if "<tool_response>" not in text:
                k = counter["first"] % 4
                counter["first"] += 1
                if k < 3:
                    call = {"name": "sql", "arguments": {"query": QUERIES[k]}}
                    reply = f"<tool_call>\n{json.dumps(call)}\n</tool_call>"
                else:
                    reply = "I cannot tell."
            elif "error:" in text.rsplit("<tool_response>", 1)[1]:
                reply = "<answer>unknown</answer> and more <answer>"
            else:
                ids_seen = _ID.findall(text)
                reply = f"<answer>{ids_seen[0] if ids_seen else 'None'}</answer>"
            c = tokenizer(reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            emitted.append(c)
            out.append(c)
        return out, None

    turn.emitted = emitted  # type: ignore[attr-defined]
    return turn


def queried(prompts: Any, completions: list[Any], **_: Any) -> list[float]:
    """A test reward that pays 0.5 for an episode with a tool call (so that every group's rewards differ)."""
    return [0.5 if any(m.get("role") == "tool" for m in c) else 0.0 for c in completions]


def tool_template_tokenizer(tokenizer: Any) -> Any:
    """The tiny model's tokenizer (SmolLM2's ChatML tokens) with TRL's Qwen2.5 template, which renders tools."""
    from trl.chat_template_utils import qwen2_5_chat_template

    tokenizer.chat_template = qwen2_5_chat_template
    return tokenizer


def build_trainer(data: str, out: str, mode: str, steps: int, per_device: int = 2, generations: int = 4) -> Any:
    from trl import GRPOConfig

    from seccrm.engine.models import load_model_and_tokenizer
    from seccrm.integrations.trl import (
        CRMEnvironment,
        SECGRPOTrainer,
        agentic_dataset,
        reward_functions,
        suite_dataset,
    )

    model, tok = load_model_and_tokenizer("tiny", seed=0)
    common = dict(output_dir=out, per_device_train_batch_size=per_device, num_generations=generations,
                  max_steps=steps, learning_rate=1e-3, logging_steps=1, save_strategy="no", report_to=[], seed=7,
                  use_cpu=True, bf16=False, temperature=1.0, dataloader_num_workers=0)
    if mode == "single":
        args = GRPOConfig(max_completion_length=6, **common)
        return SECGRPOTrainer(model=model, processing_class=tok, reward_funcs=[*reward_functions(), varied],
                              train_dataset=short_prompts(suite_dataset(data, "train")), args=args,
                              curriculum="sec", curriculum_options={"tau": 0.5})
    args = GRPOConfig(max_completion_length=128, max_tool_calling_iterations=2, **common)
    trainer = SECGRPOTrainer(model=model, processing_class=tool_template_tokenizer(tok),
                             reward_funcs=[*reward_functions(), queried],
                             train_dataset=short_prompts(agentic_dataset(data, "train", system="Use the sql tool.")),
                             args=args, environment_factory=CRMEnvironment, curriculum="sec",
                             curriculum_options={"tau": 0.5})
    rank = int(os.environ.get("RANK", "0"))
    trainer._generate_single_turn = scripted_turns(trainer.processing_class, start=rank * per_device)
    return trainer


def short_prompts(ds: Any) -> Any:
    """The dataset with each user message cut to its last line: TRL's log-prob kernel runs over the
    whole sequence, prompt included, which on a CPU costs seconds per hundred tokens. The columns the
    curriculum and the rewards read (``id``, ``arm``, ``instance``) are unchanged."""
    def cut(row: dict[str, Any]) -> dict[str, Any]:
        return {"prompt": [{**m, "content": m["content"].strip().rsplit("\n", 1)[-1][:160]}
                           if m["role"] == "user" else m for m in row["prompt"]]}
    return ds.map(cut)


def varied(prompts: Any, completions: list[Any], **_: Any) -> list[float]:
    """A reward that differs within groups (the tiny random model never answers right)."""
    return [float(sum(map(ord, c[0]["content"])) % 5) for c in completions]


def record_steps(trainer: Any) -> list[dict[str, Any]]:
    """Wrap the trainer so that each training generation batch is recorded (see the module docstring)."""
    from accelerate.utils import gather_object

    steps: list[dict[str, Any]] = []
    sampler, update = trainer.curriculum_sampler, trainer._update_curriculum

    def spy(inputs: list[dict[str, Any]], output: dict[str, Any]) -> None:
        chunk = list(sampler.pending[0])
        update(inputs, output)
        steps.append({"chunk": chunk, "chunk_ids": [trainer.train_dataset["id"][i] for i in chunk],
                      "ids": gather_object([x["id"] for x in inputs]),
                      "arms": gather_object([x["arm"] for x in inputs]),
                      "q": dict(trainer.curriculum.q)})
    trainer._update_curriculum = spy
    return steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True, help="a built suite (agentic for --mode agentic)")
    p.add_argument("--out", required=True, help="folder for the trainer and the rank<N>.json records")
    p.add_argument("--mode", choices=("single", "agentic"), default="single")
    p.add_argument("--steps", type=int, default=3)
    a = p.parse_args()
    trainer = build_trainer(a.data, a.out, a.mode, a.steps)
    steps = record_steps(trainer)
    trainer.train()
    rank = int(os.environ.get("RANK", "0"))
    state = trainer.curriculum.state_dict()
    record = {"rank": rank, "world_size": trainer.accelerator.num_processes, "steps": steps, "state": state,
              "num_generations": trainer.num_generations}
    Path(a.out, f"rank{rank}.json").write_text(json.dumps(record))
    # Leave the gloo group before exiting: a rank that exits with its group's threads still running
    # can abort in C++ ("terminate called without an active exception") on a loaded machine.
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()   # destroys the process group


if __name__ == "__main__":
    main()
