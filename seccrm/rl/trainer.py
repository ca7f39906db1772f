"""The GRPO training loop with a curriculum choosing what to practise.

One step: curriculum draw (one arm per prompt slot) -> an instance from each arm's pool -> n rollouts
per prompt -> rewards from the task verifiers -> group advantages -> curriculum update -> policy
update (AdamW, gradient clipping, mini-batches of whole prompt groups, micro-batch accumulation).

Where this departs from ``shared/specs/sec-grpo.md`` and why:

- The curriculum is updated *before* the policy update, from the advantages of this step's batch,
  as the SEC paper does; the spec's order ("advantages -> bandit update -> policy update") is the same.
- With one mini-batch per step (the default) the batch is exactly on-policy: the "old" log-probs are
  the current ones detached, the ratio is 1 and the clip never binds; that saves a forward pass. With
  several mini-batches the old log-probs come from a separate no-grad pass before the first update.
- The KL term (default off) uses a frozen copy of the starting model (with LoRA: the adapter disabled).
- Log-probabilities, entropy and KL are taken at the rollout temperature (logits / T), the
  distribution the completions were sampled from, as verl and TRL do.
- Groups whose advantages are all zero are left out of the forward and backward when no KL or
  entropy term is on (``skip_zero_adv``): they add exactly 0 to the loss and its gradient, and the
  token-mean normaliser still counts their tokens, so the update is the same, with less compute.
  Token-mean metrics (``loss/*``, ``policy/*``) then cover the groups that ran.
- The curriculum's signal defaults to *correctness* (``curriculum_signal``): the std-scaled advantage
  of the 1/0 correctness reward (mean |A| 0.6-1 for groups that mix right and wrong, else 0). The
  paper's training |A| weighs groups that differ only by the 0.1 format reward as much (std scaling
  makes both ~1), and SEC rated 0%-accuracy arms learnable; ``advantage`` restores it.
- ``dynamic_sampling`` (off by default) draws up to that many extra rounds of prompts per step and
  trains on the groups that mix correct and wrong answers first (DAPO; verl's ``filter_groups``);
  the curriculum learns from every drawn group.
- Prompts longer than ``max_prompt_tokens`` are left out of the arm pools (counted in the run's
  ``config.json`` companion ``data_stats.json``), so a CPU preset never stalls on a 4,000-token prompt.
"""

from __future__ import annotations

import copy
import json
import math
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from seccrm.curriculum import ArmPools, build_curriculum
from seccrm.data import load_split, suite_mode
from seccrm.engine import precision
from seccrm.engine.capability import unsupported_reason
from seccrm.engine.episodes import episode_rollouts
from seccrm.engine.fast_decode import FastRollouts
from seccrm.engine.forward import completion_logprobs
from seccrm.engine.models import (
    LoraSettings,
    apply_lora,
    enable_activation_checkpointing,
    load_model_and_tokenizer,
    mapped_large_blocks,
    peak_memory_gb,
    pick_device,
    release_memory,
)
from seccrm.engine.rollout import RolloutBatch, encode_prompts, generate_rollouts
from seccrm.evaluation.agentic import evaluate_model_episodes
from seccrm.evaluation.evaluate import evaluate_instances
from seccrm.rl.batching import (
    correctness,
    gather_rows,
    length_buckets,
    loss_mask,
    micro_batches,
    model_tokens,
    rollout_metrics,
    row_weights,
    variance_filter,
)
from seccrm.rl.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_optimizer_state,
    save_checkpoint,
    verify_checkpoint,
)
from seccrm.rl.config import TrainConfig
from seccrm.rl.grpo import group_advantages, group_has_signal, policy_loss, signal_advantages
from seccrm.rl.metrics import JsonlLogger, MetricLogger, MultiLogger, TensorBoardLogger
from seccrm.rl.run_dir import RunLock, StopFlag, holds_run, move_aside
from seccrm.seeding import derive_seed
from seccrm.world.arms import ALL_ARMS
from seccrm.world.rewards import org_path, score_details


class Trainer:
    def __init__(self, cfg: TrainConfig, logger: MetricLogger | None = None):

        self.cfg = cfg
        self.run_dir = Path(cfg.out)
        if cfg.mode == "single" and suite_mode(cfg.data) == "agentic":
            raise ValueError(f"{cfg.data} is an agentic suite (question-only instances: the records are not in "
                             "the prompts); train on it with --mode agentic")
        self.lock = RunLock(self.run_dir)
        if not cfg.resume and holds_run(self.run_dir):
            if not cfg.overwrite:
                self.lock.release()
                raise ValueError(f"{self.run_dir} already holds a run; continue it with --resume, or start afresh "
                                 "with --overwrite (the old run is moved aside, not mixed), or use another --out")
            aside = move_aside(self.run_dir)
            print(f"[seccrm] --overwrite: the previous run in {self.run_dir} moved to {aside}", file=sys.stderr)
        self.device = pick_device(cfg.device)
        # torch's global generator: nothing in a step draws from it today, but its state is saved and
        # restored with every checkpoint, so it starts from the run's seed (a resumed run then matches).
        torch.manual_seed(derive_seed(cfg.seed, "torch") % 2**63)
        on_gpu = self.device.type == "cuda"
        self.precision = precision.resolve(cfg.bf16, self.device)
        precision.warn_if_pure_loses_updates(self.precision, cfg.lr)
        self.grad_ckpt = cfg.gradient_checkpointing == "on" or (cfg.gradient_checkpointing == "auto" and on_gpu)

        resume_from = self._find_resume()
        self.instances = {r["id"]: r for r in load_split(cfg.data, "train")}
        dtype = precision.weight_dtype(self.precision)
        self.model: Any  # a Hugging Face causal LM (peft-wrapped with LoRA)
        self.model, self.tokenizer = load_model_and_tokenizer(cfg.model, dtype=dtype, device=str(self.device))
        if cfg.lora_r > 0:
            self._apply_lora(resume_from)
        elif resume_from is not None:
            self.model, _ = load_model_and_tokenizer(str(resume_from), dtype=dtype, device=str(self.device))
        # Rollouts and evaluation decode from a bf16 twin of the float32 master weights (mixed precision,
        # full fine-tuning); with LoRA, or in fp32 / pure bf16, they decode from the model itself.
        self.decoder = (precision.inference_copy(self.model)
                        if self.precision == "mixed" and cfg.lora_r == 0 else None)
        if self.grad_ckpt:
            enable_activation_checkpointing(self.model)
        self._check_context()
        self.ref_model = self._make_ref() if cfg.kl_coef > 0 else None
        self.rollout_engine = self._make_rollout_engine()

        pools, stats = self._arm_pools()
        # the report's 12 arms in their order, then any optional-skill arms the suite holds (CONFIDENTIALITY)
        arms = [a for a in ALL_ARMS if pools.get(a)] + sorted(a for a in pools if a not in ALL_ARMS and pools[a])
        self.pools = ArmPools(pools, seed=derive_seed(cfg.seed, "pools"))
        self.curriculum = build_curriculum(cfg.curriculum, arms, derive_seed(cfg.seed, "curriculum"),
                                          {"alpha": cfg.alpha, "tau": cfg.tau, "unsampled": cfg.unsampled})
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.999))
        self.step = 0
        self.nan_steps = 0
        self.val_instances = self._val_subset()

        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume_from is not None:
            self._load_state(resume_from)
        (self.run_dir / "config.json").write_text(cfg.to_json())
        (self.run_dir / "data_stats.json").write_text(json.dumps(stats, indent=1, sort_keys=True))
        self.logger = logger or self._make_logger()

    # ------------------------------------------------------------------ set-up helpers
    def _find_resume(self) -> Path | None:
        ckpt = latest_checkpoint(self.run_dir) if self.cfg.resume else None
        if ckpt is None and self.cfg.resume:
            print(f"[seccrm] --resume: no checkpoint in {self.run_dir}; starting afresh", file=sys.stderr)
        if ckpt is not None:
            verify_checkpoint(ckpt)
        return ckpt

    def _check_context(self) -> None:
        """Refuse lengths the model cannot hold, before any work (a 100,000-token limit would hang)."""
        ctx = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        if not isinstance(ctx, int):
            return
        cfg = self.cfg
        worst = max(cfg.max_new_tokens, cfg.eval_max_new_tokens) + (cfg.max_prompt_tokens or 1)
        if worst > ctx:
            raise ValueError(f"--max-new-tokens {cfg.max_new_tokens} / --eval-max-new-tokens "
                             f"{cfg.eval_max_new_tokens} with --max-prompt-tokens {cfg.max_prompt_tokens} need up to "
                             f"{worst} positions; the model holds {ctx}")

    def _apply_lora(self, resume_from: Path | None) -> None:
        from peft import PeftModel
        if resume_from is not None:
            self.model = PeftModel.from_pretrained(self.model, str(resume_from / "adapter"), is_trainable=True)
        else:
            self.model = apply_lora(self.model, LoraSettings(r=self.cfg.lora_r, alpha=self.cfg.lora_alpha,
                                                             target_modules="all-linear"))

    def _make_rollout_engine(self) -> Any:
        """The fast decode engine (static KV buffers, CUDA graphs) where it applies, else None (always
        in agentic mode: episodes decode turn by turn)."""
        backend = self.cfg.rollout_backend
        if self.cfg.mode == "agentic" or backend == "shared" or (backend == "auto" and self.device.type != "cuda"):
            return None
        reason = unsupported_reason(self.model)
        if reason is not None:
            print(f"[seccrm] fast rollouts unavailable ({reason}); using the shared-prompt path", file=sys.stderr)
            return None
        return FastRollouts(self._decoding_model(), self.tokenizer)

    def _decoding_model(self) -> Any:
        return self.model if self.decoder is None else self.decoder

    def _autocast(self) -> Any:
        """bf16 autocast in mixed precision (a no-op otherwise)."""
        return precision.autocast(self.precision, self.device)

    def _make_ref(self) -> Any:
        if self.cfg.lora_r > 0:
            return None  # the adapter is disabled for reference passes
        if self.precision == "mixed":  # run under autocast like the policy; bf16 storage halves its memory
            return precision.inference_copy(self.model)
        ref = copy.deepcopy(self.model).eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        return ref

    def _prompt_ids(self, inst: dict[str, Any]) -> list[int]:
        cache = self.__dict__.setdefault("_prompt_cache", {})
        if inst["id"] not in cache:
            cache[inst["id"]] = encode_prompts(self.tokenizer, [inst["messages"]])[0]
        ids: list[int] = cache[inst["id"]]
        return ids

    def _arm_pools(self) -> tuple[dict[str, list[str]], dict[str, Any]]:
        pools: dict[str, list[str]] = defaultdict(list)
        skipped: dict[str, int] = defaultdict(int)
        for iid in sorted(self.instances):
            inst = self.instances[iid]
            if self.cfg.max_prompt_tokens and len(self._prompt_ids(inst)) > self.cfg.max_prompt_tokens:
                skipped[inst["arm"]] += 1
                continue
            pools[inst["arm"]].append(iid)
        if not pools:
            raise ValueError(f"no training instance fits --max-prompt-tokens {self.cfg.max_prompt_tokens}")
        stats = {"pool_sizes": {a: len(v) for a, v in sorted(pools.items())},
                 "skipped_long_prompts": dict(sorted(skipped.items()))}
        return dict(pools), stats

    def _val_subset(self) -> list[dict[str, Any]]:
        val = load_split(self.cfg.data, "val")
        random.Random(derive_seed(self.cfg.seed, "val-subset")).shuffle(val)
        return val[: self.cfg.eval_limit] if self.cfg.eval_limit else val

    def _make_logger(self) -> MetricLogger:
        loggers: list[MetricLogger] = [JsonlLogger(self.run_dir / "metrics.jsonl",
                                                   truncate_after_step=self.step)]
        if self.cfg.tensorboard:
            loggers.append(TensorBoardLogger(self.run_dir / "tb"))
        return MultiLogger(loggers)

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> dict[str, Any]:
        return {"curriculum": self.curriculum.state_dict(), "pools": self.pools.state_dict(),
                "nan_steps": self.nan_steps, "config": json.loads(self.cfg.to_json()),
                "torch_rng": torch.get_rng_state().tolist()}

    def save(self) -> Path:
        return save_checkpoint(self.run_dir, self.step, self.model, self.tokenizer, self.optimizer,
                               self._state(), keep=self.cfg.keep_checkpoints)

    def _load_state(self, ckpt: Path) -> None:
        state = verify_checkpoint(ckpt)
        saved = dict(state.get("config", {}))
        mine = json.loads(self.cfg.to_json())
        differ = [k for k in ("curriculum", "prompts_per_step", "group_size", "seed", "lora_r", "data")
                  if k in saved and saved[k] != mine[k]]
        if differ:
            raise CheckpointError(f"{ckpt} was written with other settings ({', '.join(differ)}); "
                                  "resume with the same settings or use a new --out")
        try:
            self.curriculum.load_state_dict(state["curriculum"])
            self.pools.load_state_dict(state["pools"])
            rng = torch.tensor(state["torch_rng"], dtype=torch.uint8)
            step, nan_steps = int(state["step"]), int(state.get("nan_steps", 0))
        except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as e:
            raise CheckpointError(f"{ckpt}: trainer_state.json holds a state of the wrong shape "
                                  f"({type(e).__name__}: {e}); remove this checkpoint to resume from an "
                                  f"earlier one, or start afresh") from e
        load_optimizer_state(ckpt, self.optimizer)
        torch.set_rng_state(rng)
        self.step, self.nan_steps = step, nan_steps
        print(f"[seccrm] resumed from {ckpt} at step {self.step}", file=sys.stderr)

    # ------------------------------------------------------------------ the loop
    def train(self) -> dict[str, Any]:
        cfg = self.cfg
        last: dict[str, Any] = {}
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"train [{cfg.curriculum}]", unit="step",
                   dynamic_ncols=True, file=sys.stderr)
        with StopFlag() as stop:
            try:
                while self.step < cfg.steps:
                    last = self.train_step()
                    self.step += 1
                    release_memory()   # else the resident size grows with the longest groups drawn
                    if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.steps:
                        last.update(self.evaluate_val())
                    self.logger.log(last, self.step)
                    bar.update(1)
                    bar.set_postfix(reward=f"{last['train/reward']:.3f}", acc=f"{last['train/accuracy']:.2f}")
                    if self.nan_steps > cfg.max_nan_steps:
                        self.save()
                        raise RuntimeError(f"{self.nan_steps} steps had a non-finite loss or gradient "
                                           f"(limit {cfg.max_nan_steps}); lower --lr or check the model. "
                                           f"State saved at step {self.step}.")
                    if stop.requested:
                        path = self.save()
                        print(f"[seccrm] interrupted: checkpoint {path}; rerun with --resume", file=sys.stderr)
                        stop.stop()
                    if self.step % cfg.save_every == 0 or self.step == cfg.steps:
                        self.save()
            finally:
                bar.close()
                self.logger.close()
                self.lock.release()
        return last

    def _rollout_round(self, round_idx: int) -> tuple[list[str], list[dict[str, Any]], Any, list[dict[str, Any]]]:
        """One draw of ``prompts_per_step`` prompts and their rollouts: (arms, instances, rollouts, scores)."""

        cfg, n = self.cfg, self.cfg.group_size
        arms = self.curriculum.sample(cfg.prompts_per_step)
        batch = [self.instances[self.pools.draw(a)] for a in arms]
        prompts = [self._prompt_ids(inst) for inst in batch]
        self.model.eval()
        seed = (derive_seed(cfg.seed, "rollout", self.step) if round_idx == 0
                else derive_seed(cfg.seed, "rollout", self.step, round_idx))
        if cfg.mode == "agentic":
            with torch.no_grad(), self._autocast():
                ro, details, _ = episode_rollouts(self._decoding_model(), self.tokenizer, batch, n,
                                                  self.cfg.episode_settings(),
                                                  temperature=cfg.temperature, top_p=cfg.top_p, seed=seed,
                                                  org_path=org_path)
            return arms, batch, ro, details
        with torch.no_grad(), self._autocast():
            if self.rollout_engine is not None:
                ro = self.rollout_engine.generate(prompts, n, cfg.max_new_tokens, temperature=cfg.temperature,
                                                  top_p=cfg.top_p, seed=seed)
                self.rollout_engine.release()  # the decode buffers' memory goes to the policy update
            else:
                ro = generate_rollouts(self._decoding_model(), self.tokenizer, prompts, n=n,
                                       max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                                       top_p=cfg.top_p, seed=seed)
        details = [score_details(batch[i // n], text) for i, text in enumerate(ro.texts)]
        return arms, batch, ro, details

    def train_step(self) -> dict[str, Any]:

        cfg, n = self.cfg, self.cfg.group_size
        t0 = time.perf_counter()
        self.curriculum.set_progress(self.step, cfg.steps)
        arms: list[str] = []
        batch: list[dict[str, Any]] = []
        rounds: list[Any] = []
        details: list[dict[str, Any]] = []
        for r in range(1 + cfg.dynamic_sampling):
            a, b, ro, d = self._rollout_round(r)
            arms, batch, details = arms + a, batch + b, details + d
            rounds.append(ro)
            if int(group_has_signal(correctness(details), n).sum()) >= cfg.prompts_per_step:
                break
        ro = rounds[0] if len(rounds) == 1 else RolloutBatch.concat(rounds)
        t_roll = time.perf_counter() - t0
        rewards = torch.tensor([d["reward"] for d in details], dtype=torch.float32)
        adv = group_advantages(rewards, n, scale_by_std=cfg.scale_adv_by_std)
        comp_arms = [arms[i // n] for i in range(len(ro.texts))]
        # The curriculum learns from every drawn group, kept for the update or not.
        # correctness is the verifier's own field: shaped episode rewards leave the 1.0 / 0.1 / 0 levels
        correct = correctness(details)
        signal = signal_advantages(correct if cfg.curriculum_signal == "correctness" else rewards, n,
                                   cfg.curriculum_signal, scale_by_std=cfg.scale_adv_by_std)
        self.curriculum.update(comp_arms, signal.tolist(), rewards=rewards.tolist())
        t_score = time.perf_counter() - t0 - t_roll

        has_signal = group_has_signal(correct, n)
        keep = list(range(len(batch)))
        if cfg.dynamic_sampling:   # groups that mix correct and wrong first, then the others in draw order
            keep = sorted(keep, key=lambda g: (not bool(has_signal[g]), g))[:cfg.prompts_per_step]
        if cfg.variance_keep < 1.0:
            keep = variance_filter(rewards.view(-1, n), keep, cfg.variance_keep)
        upd_ro = ro if len(keep) == len(batch) else ro.select_groups(keep)
        rows = torch.tensor([g * n + j for g in keep for j in range(n)])
        with mapped_large_blocks(self.device.type == "cpu"):   # the update's activations fragment no heap
            upd = self._policy_update(upd_ro, adv[rows])
        metrics = rollout_metrics(rewards, correct, has_signal, details, batch, ro, kept=len(keep),
                                  agentic=cfg.mode == "agentic")
        metrics.update({"train/lr": cfg.lr, "time/rollout_s": t_roll, "time/score_s": t_score,
                        "time/update_s": upd.pop("time/update_s"), "time/step_s": time.perf_counter() - t0,
                        "mem/peak_gb": peak_memory_gb(),
                        **upd, **self.curriculum.metrics()})
        return metrics

    def _policy_update(self, ro: Any, adv: torch.Tensor) -> dict[str, Any]:
        cfg, n = self.cfg, self.cfg.group_size
        t0 = time.perf_counter()
        groups = list(range(len(ro.prompt_ids)))
        per_mini = len(groups) // cfg.mini_batches
        adv = adv.to(self.device)
        old_lp = self._old_logprobs(ro) if cfg.mini_batches > 1 else None
        self.model.train()
        sums: dict[str, float] = defaultdict(float)
        weighted: dict[str, float] = defaultdict(float)
        weight_total = 0.0
        skipped = 0
        # A group whose advantages are all 0 adds exactly 0 to the clipped surrogate (and to its
        # gradient); without KL or entropy terms its forward and backward can be skipped. The
        # normaliser n_tokens still counts its tokens, so the loss is the same token mean.
        skip = cfg.skip_zero_adv and cfg.kl_coef == 0 and cfg.entropy_coef == 0
        skipped_groups = 0
        for mb in range(cfg.mini_batches):
            mgroups = groups[mb * per_mini:(mb + 1) * per_mini]
            n_tokens = sum(max(model_tokens(ro, g * n + j), 1) for g in mgroups for j in range(n))
            self.optimizer.zero_grad(set_to_none=True)
            finite = True
            active = [g for g in mgroups if not skip or bool(adv[g * n:(g + 1) * n].ne(0).any())]
            skipped_groups += len(mgroups) - len(active)
            for mg, rows, per_prompt in micro_batches(length_buckets(active, ro, cfg.micro_batch_groups), n,
                                                      cfg.micro_batch_completions):
                with self._autocast():
                    logp, ent, mask = completion_logprobs(
                        self.model, [ro.prompt_ids[g] for g in mg], [ro.completion_ids[r] for r in rows], per_prompt,
                        chunk_size=cfg.logits_chunk, with_entropy=True, share_prompt=cfg.share_prompt,
                        temperature=cfg.temperature)
                if ro.loss_mask is not None:   # agentic: the environment's tokens carry no loss
                    mask = mask * loss_mask(ro, rows, mask)
                old = logp.detach() if old_lp is None else gather_rows(old_lp, rows, logp.shape[1])
                ref = self._ref_logprobs(ro, mg, rows, per_prompt) if cfg.kl_coef > 0 else None
                loss, m = policy_loss(logp, old, adv[rows], mask, clip_eps=cfg.clip_eps, ref_logp=ref,
                                      kl_coef=cfg.kl_coef, entropy=ent, entropy_coef=cfg.entropy_coef,
                                      num_tokens=n_tokens, row_weight=row_weights(
                                          ro, rows, n_tokens, len(mgroups) * n, cfg.loss_agg))
                if not torch.isfinite(loss):
                    finite = False
                    break
                loss.backward()
                tokens = float(m.get("policy/tokens", 1.0))
                for k, v in m.items():  # token-weighted means over the whole batch
                    weighted[k] += float(v) * tokens
                weight_total += tokens
            params = [p for p in self.model.parameters() if p.requires_grad]
            if not active:   # every group skipped: a zero gradient, so AdamW's moments still decay exactly
                for p in params:
                    p.grad = torch.zeros_like(p)
            gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            if finite and math.isfinite(float(gnorm)):
                self.optimizer.step()
                if self.decoder is not None:
                    precision.sync_copy(self.model, self.decoder)
                sums["train/grad_norm"] += float(gnorm) / cfg.mini_batches
            else:
                skipped += 1
            self.optimizer.zero_grad(set_to_none=True)
        sums.update({k: v / max(weight_total, 1.0) for k, v in weighted.items() if k != "policy/tokens"})
        sums["policy/tokens"] = weight_total
        if skipped:
            self.nan_steps += 1
        sums["train/skipped_updates"] = skipped
        sums["train/update_groups"] = float(len(groups) - skipped_groups)
        sums["train/nonfinite_steps_total"] = self.nan_steps
        sums["time/update_s"] = time.perf_counter() - t0
        return dict(sums)

    def _old_logprobs(self, ro: Any) -> list[torch.Tensor]:
        self.model.eval()
        n, out = self.cfg.group_size, list[torch.Tensor]()
        with torch.no_grad(), self._autocast():
            for g in range(len(ro.prompt_ids)):
                lp, _, _ = completion_logprobs(self.model, [ro.prompt_ids[g]], ro.completion_ids[g * n:(g + 1) * n],
                                               n, chunk_size=self.cfg.logits_chunk, share_prompt=self.cfg.share_prompt,
                                               temperature=self.cfg.temperature)
                out.extend(lp)
        return out

    def _ref_logprobs(self, ro: Any, mg: list[int], rows: list[int], per_prompt: int) -> torch.Tensor:
        with torch.no_grad(), self._autocast():
            if self.ref_model is not None:
                lp, _, _ = completion_logprobs(self.ref_model, [ro.prompt_ids[g] for g in mg],
                                               [ro.completion_ids[r] for r in rows], per_prompt,
                                               chunk_size=self.cfg.logits_chunk, share_prompt=self.cfg.share_prompt,
                                               temperature=self.cfg.temperature)
            else:
                with self.model.disable_adapter():
                    lp, _, _ = completion_logprobs(self.model, [ro.prompt_ids[g] for g in mg],
                                                   [ro.completion_ids[r] for r in rows], per_prompt,
                                                   chunk_size=self.cfg.logits_chunk, share_prompt=self.cfg.share_prompt,
                                                   temperature=self.cfg.temperature)
        return lp

    def evaluate_val(self) -> dict[str, Any]:
        """Greedy accuracy on the validation subset: single answers, or in agentic mode whole episodes
        played with the training's episode settings (question-only prompts have no answer without them)."""
        with torch.no_grad(), self._autocast():
            if self.cfg.mode == "agentic":
                res = evaluate_model_episodes(self._decoding_model(), self.tokenizer, self.val_instances,
                                              self.cfg.episode_settings(), desc="eval val episodes")
            else:
                res = evaluate_instances(self._decoding_model(), self.tokenizer, self.val_instances,
                                         max_new_tokens=self.cfg.eval_max_new_tokens, desc="eval val")
        s = res["summary"]
        return {"eval/val/accuracy": s["accuracy"], "eval/val/reward": s["mean_reward"],
                "eval/val/format_rate": s["format_rate"]}
