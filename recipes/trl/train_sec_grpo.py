"""SEC + the CRM suite inside TRL's GRPOTrainer.

    seccrm build --out data/small --size small
    python recipes/trl/train_sec_grpo.py --data data/small --model PATH --out runs/trl-sec
    accelerate launch --num_processes 4 recipes/trl/train_sec_grpo.py ...   # several GPUs

The curriculum's state is saved in every TRL checkpoint; `--resume` continues from the newest one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from trl import GRPOConfig

from seccrm.integrations.trl import SECGRPOTrainer, reward_functions, suite_dataset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="suite folder from `seccrm build`")
    p.add_argument("--model", required=True, help="a Hugging Face model folder or hub name already on disk")
    p.add_argument("--out", required=True)
    p.add_argument("--curriculum", default="sec", help="sec, sec_decay, uniform, easy2hard, hard2easy, ucb, learnability")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--prompts-per-step", type=int, default=8)
    p.add_argument("--num-generations", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-6)
    p.add_argument("--max-completion-length", type=int, default=256)
    p.add_argument("--cpu", action="store_true", help="train on the CPU in float32 (a smoke run; TRL defaults to bf16)")
    p.add_argument("--resume", action="store_true")
    a = p.parse_args()
    args = GRPOConfig(output_dir=a.out, max_steps=a.steps, learning_rate=a.lr, num_generations=a.num_generations,
                      per_device_train_batch_size=a.num_generations, gradient_accumulation_steps=a.prompts_per_step,
                      max_completion_length=a.max_completion_length, temperature=0.7, top_p=0.9, beta=0.0,
                      logging_steps=1, save_steps=25, report_to=[], seed=0,
                      **({"use_cpu": True, "bf16": False} if a.cpu else {}))
    trainer = SECGRPOTrainer(model=a.model, reward_funcs=reward_functions(),
                             train_dataset=suite_dataset(a.data, "train"), args=args, curriculum=a.curriculum,
                             curriculum_options={"alpha": 0.3, "tau": 0.5})
    last = None
    if a.resume:
        done = sorted(Path(a.out).glob("checkpoint-*"), key=lambda c: int(c.name.split("-")[1]))
        last = str(done[-1]) if done else None
    trainer.train(resume_from_checkpoint=last)
    trainer.save_model(str(Path(a.out) / "final"))
    trainer.accelerator.end_training()   # leave the process group cleanly under accelerate launch


if __name__ == "__main__":
    main()
