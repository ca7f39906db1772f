"""One documented training config, with presets for the common cases.

Every field carries its own help (shown by ``seccrm train --help``). ``TrainConfig.__post_init__``
refuses settings that cannot work and says why. Presets:

- ``cpu-demo``: the embedded SmolLM2-135M-Instruct on a laptop-class CPU, minutes per run.
- ``gpu``: one GPU, Qwen2.5-3B or any local model path; bf16, gradient checkpointing.
- ``report``: the technical report's settings (256 prompts x 8 rollouts, lr 1e-6, clip 1.0, ...).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _f(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    # --- what to train -----------------------------------------------------------------------
    data: str = _f("", "Suite directory written by `seccrm build` (org.sqlite, train/val/test.jsonl).")
    model: str = _f("smollm2", "Model: 'smollm2' (embedded default), 'tiny' (random, for tests) or a "
                    "local Hugging Face model folder.")
    out: str = _f("", "Run directory: metrics.jsonl, checkpoints/, config.json, eval files.")
    seed: int = _f(0, "Seed of everything (curriculum draws, rollouts); other seeds are derived from it.")
    # --- the curriculum ----------------------------------------------------------------------
    curriculum: str = _f("sec", "Curriculum: sec, sec_decay, uniform, easy2hard, hard2easy, ucb, learnability.")
    alpha: float = _f(0.3, "SEC: TD(0) learning rate of the arm values Q.")
    tau: float = _f(0.5, "SEC: softmax temperature over Q.")
    unsampled: str = _f("hold", "SEC: what happens to arms not drawn in a step: 'hold' or 'decay' (r = 0).")
    curriculum_signal: str = _f("correctness", "What the curriculum learns from, per completion: 'advantage' "
                                "(the training advantage, as the SEC paper), 'unscaled' (reward minus the group "
                                "mean, no std scaling) or 'correctness' (the std-scaled advantage of the 1/0 "
                                "correctness reward: format-only differences of 0.1 vs 0.0 carry no signal).")
    # --- GRPO ---------------------------------------------------------------------------------
    steps: int = _f(20, "Total training steps of the run (a resumed run continues up to it).")
    prompts_per_step: int = _f(4, "Prompts drawn per step (each gets its own arm draw).")
    group_size: int = _f(8, "Completions per prompt (n).")
    max_new_tokens: int = _f(48, "Maximum response length in tokens.")
    max_prompt_tokens: int = _f(0, "Skip training instances whose prompt is longer (0 = keep all).")
    temperature: float = _f(0.7, "Sampling temperature of rollouts.")
    top_p: float = _f(0.9, "Nucleus sampling of rollouts.")
    scale_adv_by_std: bool = _f(True, "Divide advantages by the group's std (off = Dr. GRPO).")
    skip_zero_adv: bool = _f(True, "Skip the forward and backward of groups whose advantages are all 0 when "
                             "no KL or entropy term is on (exact: the loss and gradients are unchanged).")
    dynamic_sampling: int = _f(0, "Extra rounds of prompt draws per step (0 = off): draw and roll out more "
                               "prompts until --prompts-per-step groups mix correct and wrong answers, as "
                               "DAPO / verl's filter_groups do; the curriculum still learns from every "
                               "drawn group.")
    clip_eps: float = _f(0.2, "PPO ratio clip.")
    kl_coef: float = _f(0.0, "k3 KL penalty to the frozen initial model (0 = none, as the SEC authors ran).")
    entropy_coef: float = _f(0.0, "Entropy bonus (0 = none).")
    mini_batches: int = _f(1, "Optimizer steps per rollout batch (the batch is split into this many).")
    micro_batch_groups: int = _f(1, "Prompt groups per forward/backward pass (gradient accumulation).")
    logits_chunk: int = _f(1024, "Tokens per chunk when computing log-probs and entropy.")
    share_prompt: bool = _f(True, "Compute each prompt once per group in rollouts and training.")
    rollout_backend: str = _f("auto", "Rollouts: 'auto' (the fast engine with CUDA graphs on a GPU, the "
                              "shared-prompt path on CPU), 'fast' or 'shared'.")
    # --- optimiser -----------------------------------------------------------------------------
    lr: float = _f(1e-6, "AdamW learning rate.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    grad_clip: float = _f(1.0, "Gradient norm clip.")
    lora_r: int = _f(0, "LoRA rank (0 = full fine-tuning).")
    lora_alpha: int = _f(32, "LoRA alpha.")
    bf16: str = _f("auto", "Precision: 'on' = float32 master weights and AdamW state, bf16 autocast compute, "
                   "rollouts and evaluation from a bf16 copy; 'pure' = bf16 weights (half the memory; small "
                   "updates round away); 'off' = float32; 'auto' = 'on' on GPUs and on CPUs with bf16 matrix "
                   "units (AMX / AVX512-BF16), else 'off'.")
    gradient_checkpointing: str = _f("auto", "'auto' (on GPU), 'on', 'off'.")
    device: str = _f("auto", "'auto', 'cpu', 'cuda' or 'cuda:N'.")
    # --- evaluation, checkpoints, logging ----------------------------------------------------
    eval_every: int = _f(0, "Evaluate on validation every N steps (0 = only at the end).")
    eval_limit: int = _f(64, "Validation instances per periodic evaluation (0 = all).")
    eval_max_new_tokens: int = _f(48, "Maximum response length when evaluating.")
    save_every: int = _f(5, "Checkpoint every N steps (and always at the end).")
    keep_checkpoints: int = _f(2, "How many recent checkpoints to keep.")
    max_nan_steps: int = _f(3, "Stop after this many steps skipped for a non-finite loss.")
    tensorboard: bool = _f(False, "Also log to TensorBoard (RUN_DIR/tb).")
    resume: bool = _f(False, "Continue from the newest complete checkpoint in the run directory.")

    def __post_init__(self) -> None:
        problems = []
        if self.steps < 1:
            problems.append("--steps must be >= 1")
        if self.group_size < 2:
            problems.append("--group-size must be >= 2: GRPO compares completions of one prompt")
        if self.prompts_per_step < 1:
            problems.append("--prompts-per-step must be >= 1")
        if self.mini_batches < 1 or self.prompts_per_step % self.mini_batches:
            problems.append(f"--prompts-per-step ({self.prompts_per_step}) must split evenly into "
                            f"--mini-batches ({self.mini_batches}) of whole prompt groups")
        elif self.micro_batch_groups < 1 or (self.prompts_per_step // self.mini_batches) % self.micro_batch_groups:
            problems.append(f"a mini-batch of {self.prompts_per_step // max(self.mini_batches, 1)} prompt groups "
                            f"does not split into micro-batches of {self.micro_batch_groups} groups")
        if not 0 < self.temperature:
            problems.append("--temperature must be > 0 for sampling rollouts")
        if not 0 < self.top_p <= 1:
            problems.append("--top-p must be in (0, 1]")
        if not 0 < self.alpha <= 1:
            problems.append("--alpha must be in (0, 1]")
        if self.tau <= 0:
            problems.append("--tau must be > 0")
        if self.curriculum_signal not in ("advantage", "unscaled", "correctness"):
            problems.append("--curriculum-signal must be advantage, unscaled or correctness")
        if self.dynamic_sampling < 0:
            problems.append("--dynamic-sampling must be >= 0 (extra draw rounds)")
        if self.unsampled not in ("hold", "decay"):
            problems.append("--unsampled must be 'hold' or 'decay'")
        if self.rollout_backend not in ("auto", "fast", "shared"):
            problems.append("--rollout-backend must be auto, fast or shared")
        if self.bf16 not in ("auto", "on", "off", "mixed", "pure"):
            problems.append("--bf16 must be auto, on, off or pure")
        if self.gradient_checkpointing not in ("auto", "on", "off"):
            problems.append("--gradient-checkpointing must be auto, on or off")
        if self.lr <= 0 or self.max_new_tokens < 1 or self.logits_chunk < 1:
            problems.append("--lr, --max-new-tokens and --logits-chunk must be positive")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        raw = json.loads(Path(path).read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{path}: unknown config keys {unknown}")
        return cls(**raw)


PRESETS: dict[str, dict[str, Any]] = {
    "cpu-demo": dict(model="smollm2", steps=12, prompts_per_step=4, group_size=8, max_new_tokens=32,
                     max_prompt_tokens=1024, micro_batch_groups=4, lr=1e-5, eval_limit=48, eval_max_new_tokens=32, save_every=4),
    "gpu": dict(steps=100, prompts_per_step=64, group_size=8, max_new_tokens=256, lr=1e-6,
                micro_batch_groups=4, mini_batches=1, bf16="auto", gradient_checkpointing="auto",
                eval_every=20, eval_limit=300, eval_max_new_tokens=256, save_every=20),
    "report": dict(steps=4, prompts_per_step=256, group_size=8, max_new_tokens=512, lr=1e-6, grad_clip=1.0,
                   temperature=0.7, top_p=0.9, micro_batch_groups=4, mini_batches=1, bf16="on",
                   gradient_checkpointing="on", eval_limit=0, eval_max_new_tokens=512, save_every=2),
}


def add_config_args(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """Add one ``--flag`` per config field (help from the field), defaulting to None (= not given)."""
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="Start from a preset; explicit flags override it.")
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_ = f"{f.metadata['help']} (default: {f.default})"
        if f.type in ("bool", bool):
            parser.add_argument(flag, dest=f.name, default=None, action=argparse.BooleanOptionalAction, help=help_)
        else:
            typ = {"int": int, "float": float, "str": str}.get(str(f.type), str)
            parser.add_argument(flag, dest=f.name, type=typ, default=None, help=help_)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values: dict[str, Any] = dict(PRESETS.get(getattr(args, "preset", None) or "", {}))
    for f in dataclasses.fields(TrainConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    return TrainConfig(**values)
