"""``SECGRPOTrainer``: TRL's GRPOTrainer with a seccrm curriculum choosing its prompts (see the package
docstring)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch.utils.data import Sampler

from seccrm.curriculum import build_curriculum
from seccrm.integrations.trl.sampler import CurriculumSampler, arm_pools
from seccrm.seeding import derive_seed

STATE_FILE = "seccrm_curriculum.json"


def _grpo_trainer_class() -> type:
    from trl import GRPOTrainer
    return GRPOTrainer  # type: ignore[no-any-return]


class SECGRPOTrainer(_grpo_trainer_class()):  # type: ignore[misc]
    """``trl.GRPOTrainer`` with a seccrm curriculum choosing the prompts (see the package docstring).

    Extra arguments: ``curriculum`` (a name of ``seccrm.curriculum.build_curriculum``, default
    ``"sec"``) and ``curriculum_options`` (e.g. ``{"alpha": 0.3, "tau": 0.5}``). The seed is
    ``args.seed``. The training dataset needs the ``id``, ``arm`` and ``instance`` columns of
    :func:`~seccrm.integrations.trl.data.suite_dataset` (or ``agentic_dataset``). Every other argument
    is ``GRPOTrainer``'s, ``environment_factory`` included: with
    :class:`~seccrm.integrations.trl.environment.CRMEnvironment` it trains multi-turn episodes.
    """

    def __init__(self, *args: Any, curriculum: str = "sec", curriculum_options: dict[str, Any] | None = None,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.args.ignore_data_skip = True   # the sampler's saved state replaces TRL's batch skipping
        self._rng_from: str | None = None
        pools, arms = arm_pools(self.train_dataset, self.args.seed)
        self.curriculum = build_curriculum(curriculum, arms, derive_seed(self.args.seed, "curriculum"),
                                           curriculum_options or {})
        self.curriculum_sampler = CurriculumSampler(
            self.train_dataset, self.curriculum, pools,
            batch_size=self.args.generation_batch_size // self.num_generations,
            mini_repeat_count=self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation)

    def _get_train_sampler(self, dataset: Any = None) -> Sampler[int]:
        return self.curriculum_sampler

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        if self.model.training and self._rng_from is not None:
            # With ignore_data_skip the Trainer does not restore the RNG states of a resumed run; they
            # are restored here, right before the first generation, where the run left them.
            self._load_rng_state(self._rng_from)
            self._rng_from = None
        output = super()._generate_and_score_completions(inputs)
        if self.model.training:
            self._update_curriculum(inputs, output)
        return output

    def _update_curriculum(self, inputs: list[dict[str, Any]], output: dict[str, Any]) -> None:
        """Feed the bandit this generation batch's arms and advantages, gathered from every process
        (in process order, as TRL gathers its rewards), so that every process updates alike."""
        from accelerate.utils import gather_object

        self.curriculum_sampler.consumed()
        arms = gather_object([x["arm"] for x in inputs])
        advantages = self.accelerator.gather(output["advantages"].detach()).float().cpu()
        self.curriculum.update(arms, advantages.tolist())
        metrics = self._metrics["train"]
        for name, value in self.curriculum.metrics().items():
            metrics[name].append(float(value))
        if self.environments:                 # multi-turn: what the episodes did with the org
            import torch

            local = torch.tensor([[e.queries, e.failed_queries] for e in self.environments
                                  if hasattr(e, "queries")], dtype=torch.float32, device=self.accelerator.device)
            if len(local):
                mean = self.accelerator.gather(local).float().mean(0).tolist()
                metrics["agent/queries"].append(mean[0])
                metrics["agent/failed_queries"].append(mean[1])

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

            folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            tmp = folder / f".{STATE_FILE}.tmp-{os.getpid()}"
            tmp.write_text(json.dumps(self.curriculum_sampler.state_dict()))
            os.replace(tmp, folder / STATE_FILE)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None:
            path = Path(checkpoint) / STATE_FILE
            if not path.is_file():
                raise FileNotFoundError(f"{checkpoint} has no {STATE_FILE}: it was not written by SECGRPOTrainer, "
                                        "so the curriculum cannot continue from it")
            self.curriculum_sampler.load_state_dict(json.loads(path.read_text()))
            self._rng_from = checkpoint
