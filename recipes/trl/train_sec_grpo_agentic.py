"""SEC + multi-turn CRM episodes inside TRL's GRPOTrainer: the model calls a `sql` tool through its chat
template, seccrm's sandbox runs each query on the instance's org, the verifiers score the last message.

    seccrm build --out data/agentic --size small --mode agentic
    python recipes/trl/train_sec_grpo_agentic.py --data data/agentic --model PATH --out runs/trl-agentic
    accelerate launch --num_processes 4 recipes/trl/train_sec_grpo_agentic.py ...   # several GPUs

The model's chat template must render tool calls (Qwen2.5, Qwen3, Llama 3.1 and others do); for a
ChatML model whose template has none (SmolLM2), `--chat-template qwen2_5` puts TRL's Qwen2.5 template
in its place. The curriculum's state is saved in every TRL checkpoint; `--resume` continues from the
newest one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transformers import AutoTokenizer
from trl import GRPOConfig

from seccrm.integrations.trl import CRMEnvironment, SECGRPOTrainer, agentic_dataset, reward_functions


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="agentic suite folder from `seccrm build --mode agentic`")
    p.add_argument("--model", required=True, help="a Hugging Face model folder or hub name already on disk")
    p.add_argument("--out", required=True, help="TRL's output folder (checkpoints, logs)")
    p.add_argument("--curriculum", default="sec", help="sec, sec_decay, uniform, easy2hard, hard2easy, ucb, learnability")
    p.add_argument("--steps", type=int, default=200, help="optimizer steps")
    p.add_argument("--prompts-per-step", type=int, default=8, help="episodes' prompts per step (groups)")
    p.add_argument("--num-generations", type=int, default=8, help="episodes per prompt (the GRPO group)")
    p.add_argument("--lr", type=float, default=1e-6, help="learning rate")
    p.add_argument("--max-completion-length", type=int, default=2048,
                   help="tokens of a whole episode after the prompt: the model's turns and the tool results")
    p.add_argument("--max-tool-calls", type=int, default=6, help="tool-calling turns per episode (TRL's "
                   "max_tool_calling_iterations); the turn after the last one must answer")
    p.add_argument("--chat-template", choices=("model", "qwen2_5"), default="model",
                   help="the model's own chat template, or TRL's Qwen2.5 one (for ChatML models without tools)")
    p.add_argument("--cpu", action="store_true", help="train on the CPU in float32 (a smoke run; TRL defaults to bf16)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    a = p.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(a.model)
    if a.chat_template == "qwen2_5":
        from trl.chat_template_utils import qwen2_5_chat_template
        tokenizer.chat_template = qwen2_5_chat_template
    args = GRPOConfig(output_dir=a.out, max_steps=a.steps, learning_rate=a.lr, num_generations=a.num_generations,
                      per_device_train_batch_size=a.num_generations, gradient_accumulation_steps=a.prompts_per_step,
                      max_completion_length=a.max_completion_length, max_tool_calling_iterations=a.max_tool_calls,
                      temperature=0.7, top_p=0.9, beta=0.0, logging_steps=1, save_steps=25, report_to=[], seed=0,
                      **({"use_cpu": True, "bf16": False} if a.cpu else {}))
    trainer = SECGRPOTrainer(model=a.model, processing_class=tokenizer, reward_funcs=reward_functions(agentic=True),
                             train_dataset=agentic_dataset(a.data, "train"), environment_factory=CRMEnvironment,
                             args=args, curriculum=a.curriculum, curriculum_options={"alpha": 0.3, "tau": 0.5})
    last = None
    if a.resume:
        done = sorted(Path(a.out).glob("checkpoint-*"), key=lambda c: int(c.name.split("-")[1]))
        last = str(done[-1]) if done else None
    trainer.train(resume_from_checkpoint=last)
    trainer.save_model(str(Path(a.out) / "final"))
    trainer.accelerator.end_training()   # leave the process group cleanly under accelerate launch


if __name__ == "__main__":
    main()
