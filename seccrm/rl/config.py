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
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seccrm.curriculum.registry import CURRICULA
from seccrm.world.episode import EpisodeSettings
from seccrm.world.episode_reward import EpisodeReward
from seccrm.world.protocol import PROTOCOLS

LOSS_AGGS = ("token-mean", "seq-mean-token-mean")   # --loss-agg: how the policy loss averages its tokens


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
    curriculum: str = _f("sec", f"Curriculum: {', '.join(CURRICULA)}.")
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
    loss_agg: str = _f("token-mean", "How the policy loss averages: 'token-mean' (every sampled token of the batch "
                       "weighs the same; DAPO, verl's default) or 'seq-mean-token-mean' (each completion or "
                       "episode weighs the same, its tokens averaged within it; verl's name), so that a long "
                       "episode does not outvote a short one turn by turn.")
    kl_coef: float = _f(0.0, "k3 KL penalty to the frozen initial model (0 = none, as the SEC authors ran).")
    entropy_coef: float = _f(0.0, "Entropy bonus (0 = none).")
    mini_batches: int = _f(1, "Optimizer steps per rollout batch (the batch is split into this many).")
    micro_batch_groups: int = _f(1, "Prompt groups per forward/backward pass (gradient accumulation).")
    micro_batch_completions: int = _f(0, "At most this many completions of one group per forward/backward pass "
                                      "(0 = whole groups): for long completions, such as agentic episodes on a "
                                      "CPU, whose activations would not fit. The loss and gradients are the same.")
    logits_chunk: int = _f(1024, "Tokens per chunk when computing log-probs and entropy.")
    share_prompt: bool = _f(True, "Compute each prompt once per group in rollouts and training.")
    rollout_backend: str = _f("auto", "Rollouts: 'auto' (the fast engine with CUDA graphs on a GPU, the "
                              "shared-prompt path on CPU), 'fast' or 'shared'.")
    mode: str = _f("single", "'single': one answer per prompt; 'agentic': each rollout is an episode in which "
                   "the model queries the org (<execute>SQL</execute>) before it answers; the loss covers the "
                   "model's own tokens of every turn, not the query results.")
    max_turns: int = _f(6, "Agentic: model turns per episode, the answer included (--max-new-tokens per turn).")
    protocol: str = _f("tags", "Agentic: how the model queries: 'tags' (<execute>SQL</execute>, results as "
                       "<result> user messages; CRMArena-Pro's) or 'tools' (a native `sql` tool call through "
                       "the chat template, results in the tool role; seccrm/world/protocol.py).")
    form_needs_query: bool = _f(True, "Agentic: the 0.1 for a well-formed wrong answer is earned by a well-formed "
                                "episode, at least one query that ran and then the answer (off: the report's "
                                "rule, any well-formed answer; see seccrm/world/episode_reward.py).")
    query_bonus: float = _f(0.0, "Agentic: reward added per query that ran, up to --query-bonus-cap (0 = off).")
    query_bonus_cap: float = _f(0.0, "Agentic: most the per-query bonus adds over one episode.")
    repeat_penalty: float = _f(0.0, "Agentic: reward subtracted per query repeating an earlier one (0 = off).")
    turn_penalty: float = _f(0.0, "Agentic: reward subtracted per model turn (0 = off).")
    variance_keep: float = _f(1.0, "Share of each step's groups the update keeps, those whose rewards vary most "
                              "(RAGEN's reward-variance filter against multi-turn collapse; 1 = every group).")
    # --- optimiser -----------------------------------------------------------------------------
    lr: float = _f(1e-6, "AdamW learning rate.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    grad_clip: float = _f(1.0, "Gradient norm clip.")
    lora_r: int = _f(0, "LoRA rank (0 = full fine-tuning).")
    lora_alpha: int = _f(32, "LoRA alpha.")
    bf16: str = _f("auto", "Precision: 'on' = float32 master weights and AdamW state, bf16 autocast compute, "
                   "rollouts and evaluation from a bf16 copy; 'pure' = bf16 weights (half the memory; small "
                   "updates round away); 'off' = float32; 'auto' = 'on' on GPUs and on CPUs with bf16 matrix "
                   "units (AMX tiles), else 'off'.")
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
    overwrite: bool = _f(False, "Start afresh in a run directory that already holds a run: the old run is moved "
                         "aside to OUT.replaced-<time> (never mixed with the new one).")

    def __post_init__(self) -> None:
        problems = validate(self)
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def episode_settings(self) -> EpisodeSettings:
        """Agentic mode: one episode's limits, protocol and reward terms from this config."""
        reward = EpisodeReward(form_needs_query=self.form_needs_query, per_query=self.query_bonus,
                               max_query_bonus=self.query_bonus_cap, repeat_penalty=self.repeat_penalty,
                               turn_penalty=self.turn_penalty)
        return EpisodeSettings(max_turns=self.max_turns, max_new_tokens_per_turn=self.max_new_tokens,
                               max_model_tokens=self.max_turns * self.max_new_tokens, reward=reward,
                               protocol=self.protocol)

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        raw = json.loads(Path(path).read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{path}: unknown config keys {unknown}")
        return cls(**raw)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def validate(cfg: TrainConfig) -> list[str]:
    """Every problem with ``cfg``, each naming its flag, so that all are reported at once.

    Numbers must be finite and in range; choices must be known; the batch must split evenly. What
    depends on the model (the context length) is checked by the trainer once the model is loaded.
    """
    problems: list[str] = []
    types = {f.name: str(f.type) for f in dataclasses.fields(cfg)}
    for name, kind in types.items():
        v = getattr(cfg, name)
        ok = (isinstance(v, bool) if kind == "bool" else
              isinstance(v, int) and not isinstance(v, bool) if kind == "int" else
              isinstance(v, (int, float)) and not isinstance(v, bool) if kind == "float" else isinstance(v, str))
        if not ok:
            problems.append(f"--{name.replace('_', '-')} must be a {kind}, got {v!r}")
    if problems:
        return problems

    def need(cond: bool, msg: str) -> None:
        if not cond:
            problems.append(msg)

    for name in ("lr", "temperature", "top_p", "clip_eps", "grad_clip", "alpha", "tau", "kl_coef", "entropy_coef",
                 "weight_decay"):
        need(_finite(getattr(cfg, name)), f"--{name.replace('_', '-')} must be a finite number, "
             f"got {getattr(cfg, name)!r}")
    if problems:
        return problems
    need(cfg.steps >= 1, "--steps must be >= 1")
    need(cfg.group_size >= 2, "--group-size must be >= 2: GRPO compares completions of one prompt")
    need(cfg.prompts_per_step >= 1, "--prompts-per-step must be >= 1")
    if cfg.mini_batches < 1 or cfg.prompts_per_step % cfg.mini_batches:
        problems.append(f"--prompts-per-step ({cfg.prompts_per_step}) must split evenly into "
                        f"--mini-batches ({cfg.mini_batches}) of whole prompt groups")
    elif cfg.micro_batch_groups < 1:
        problems.append(f"--micro-batch-groups must be >= 1, got {cfg.micro_batch_groups}")
    elif (cfg.prompts_per_step // cfg.mini_batches) % cfg.micro_batch_groups:
        problems.append(f"a mini-batch of {cfg.prompts_per_step // cfg.mini_batches} prompt groups "
                        f"(--prompts-per-step / --mini-batches) does not split into micro-batches of "
                        f"--micro-batch-groups {cfg.micro_batch_groups}")
    need(0 < cfg.temperature <= 10, "--temperature must be in (0, 10] for sampling rollouts")
    need(0 < cfg.top_p <= 1, "--top-p must be in (0, 1]")
    need(0 < cfg.lr <= 1, "--lr must be in (0, 1]")
    need(0 < cfg.clip_eps <= 10, "--clip-eps must be in (0, 10]")
    need(cfg.grad_clip > 0, "--grad-clip must be > 0 (a negative clip would flip the gradient's sign)")
    need(cfg.weight_decay >= 0 and cfg.kl_coef >= 0 and cfg.entropy_coef >= 0,
         "--weight-decay, --kl-coef and --entropy-coef must be >= 0")
    need(0 < cfg.alpha <= 1, "--alpha must be in (0, 1]")
    need(cfg.tau > 0, "--tau must be > 0")
    need(cfg.unsampled in ("hold", "decay"), "--unsampled must be 'hold' or 'decay'")
    need(cfg.curriculum_signal in ("advantage", "unscaled", "correctness"),
         "--curriculum-signal must be advantage, unscaled or correctness")
    need(cfg.dynamic_sampling >= 0, "--dynamic-sampling must be >= 0 (extra draw rounds)")
    need(cfg.rollout_backend in ("auto", "fast", "shared"), "--rollout-backend must be auto, fast or shared")
    need(cfg.mode in ("single", "agentic"), "--mode must be single or agentic")
    need(cfg.loss_agg in LOSS_AGGS, f"--loss-agg must be one of {', '.join(LOSS_AGGS)}")
    need(cfg.protocol in PROTOCOLS, f"--protocol must be one of {', '.join(PROTOCOLS)}")
    need(cfg.max_turns >= 1, "--max-turns must be >= 1")
    need(0.0 < cfg.variance_keep <= 1.0, "--variance-keep must be in (0, 1]: the share of groups kept")
    for name in ("query_bonus", "query_bonus_cap", "repeat_penalty", "turn_penalty"):
        need(0.0 <= getattr(cfg, name) <= 1.0, f"--{name.replace('_', '-')} must be within [0, 1]")
    need(cfg.bf16 in ("auto", "on", "off", "mixed", "pure"), "--bf16 must be auto, on, off or pure")
    need(cfg.micro_batch_completions >= 0, "--micro-batch-completions must be >= 0")
    need(cfg.gradient_checkpointing in ("auto", "on", "off"), "--gradient-checkpointing must be auto, on or off")
    need(re.fullmatch(r"auto|cpu|cuda(:\d+)?", cfg.device) is not None,
         f"--device must be auto, cpu, cuda or cuda:N, got {cfg.device!r}")
    need(cfg.max_new_tokens >= 1 and cfg.eval_max_new_tokens >= 1 and cfg.logits_chunk >= 1,
         "--max-new-tokens, --eval-max-new-tokens and --logits-chunk must be >= 1")
    need(cfg.max_prompt_tokens >= 0, "--max-prompt-tokens must be >= 0 (0 = no limit)")
    need(cfg.lora_r >= 0 and cfg.lora_alpha > 0, "--lora-r must be >= 0 (0 = full fine-tuning) and --lora-alpha > 0")
    need(cfg.eval_every >= 0 and cfg.eval_limit >= 0, "--eval-every and --eval-limit must be >= 0 (0 = off / all)")
    need(cfg.save_every >= 1, "--save-every must be >= 1")
    need(cfg.keep_checkpoints >= 0, "--keep-checkpoints must be >= 0")
    need(cfg.max_nan_steps >= 0, "--max-nan-steps must be >= 0")
    need(not (cfg.resume and cfg.overwrite), "--resume and --overwrite exclude each other")
    need(cfg.curriculum.strip().lower().replace("-", "_") in CURRICULA,
         f"--curriculum must be one of {', '.join(CURRICULA)}, got {cfg.curriculum!r}")
    return problems


PRESETS: dict[str, dict[str, Any]] = {
    # lr 3e-5 without std scaling: docs/results.md has the trials. 64 new tokens: a CRUD JSON action
    # takes about 55 tokens, so 32 cut every one of them short.
    "cpu-demo": dict(model="smollm2", steps=30, prompts_per_step=4, group_size=8, max_new_tokens=64,
                     max_prompt_tokens=1024, micro_batch_groups=4, lr=3e-5, scale_adv_by_std=False,
                     eval_limit=48, eval_max_new_tokens=64, save_every=5),
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
