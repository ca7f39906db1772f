"""SEC and the CRM suite inside TRL's ``GRPOTrainer``, in a few lines::

    from trl import GRPOConfig
    from seccrm.integrations.trl import SECGRPOTrainer, reward_functions, suite_dataset

    trainer = SECGRPOTrainer(model="path/to/model", reward_funcs=reward_functions(),
                             train_dataset=suite_dataset("data/small", "train"),
                             args=GRPOConfig(output_dir="runs/trl", num_generations=8, ...),
                             curriculum="sec")
    trainer.train()

Multi-turn episodes (an agentic suite; the model calls a ``sql`` tool through its chat template)::

    from seccrm.integrations.trl import CRMEnvironment, agentic_dataset

    trainer = SECGRPOTrainer(model="path/to/Qwen2.5-3B-Instruct", reward_funcs=reward_functions(),
                             train_dataset=agentic_dataset("data/agentic", "train"),
                             environment_factory=CRMEnvironment,
                             args=GRPOConfig(..., max_tool_calling_iterations=6), curriculum="sec")

- :func:`reward_functions`: the project's reward as TRL reward functions, one per component
  (``correct``: 1.0 when right; ``formatted``: 0.1 when well formed but wrong), so TRL logs each
  under its name and their sum is seccrm's 1.0 / 0.1 / 0.0 reward.
- :func:`suite_dataset`: a built suite's split in TRL's conversational format (``prompt`` = the
  instance's messages), with the columns the rewards and the curriculum read; :func:`agentic_dataset`
  the same for an agentic suite, its system message telling the model to call the ``sql`` tool.
- :class:`CRMEnvironment`: TRL's ``environment_factory`` for the org: ``reset`` opens the instance's
  org, the ``sql`` method is the tool, run by seccrm's sandbox. TRL parses the tool calls, returns the
  results in the tool role and masks them out of the loss (``tool_mask``); the rewards read the
  model's last message.
- :class:`CurriculumSampler`: the curriculum as the trainer's sampler. Every prompt slot draws its
  arm from the bandit and an instance from that arm's pool; each prompt is repeated
  ``num_generations`` times in a row (TRL's contract, so a group lands whole across processes).
- :class:`SECGRPOTrainer`: the smallest subclass of ``GRPOTrainer`` that feeds the bandit each
  generation batch's advantages (gathered across processes, so every process updates alike), logs
  ``curriculum/p/<arm>``, ``q``, ``r`` and ``n`` as ``seccrm train`` does, and keeps the curriculum's
  state in TRL's checkpoints (``seccrm_curriculum.json``), restored on resume.

Exactness: accelerate's data loader fetches one batch ahead, so the sampler draws a batch before
the update from the previous one. The sampler therefore keeps the batches it has drawn but the
trainer has not used yet, and saves them with the bandit; a resumed run replays them and continues
exactly (``ignore_data_skip`` is set: the sampler's own state replaces TRL's batch skipping). The
bandit's *probabilities* for a batch are those of one update earlier than in ``seccrm train``, the
price of the prefetch.
"""

from seccrm.integrations.trl.data import TOOLS_SYSTEM, agentic_dataset, suite_dataset
from seccrm.integrations.trl.environment import CRMEnvironment
from seccrm.integrations.trl.rewards import correct_reward, final_text, formatted_reward, reward_functions
from seccrm.integrations.trl.sampler import CurriculumSampler, arm_pools
from seccrm.integrations.trl.trainer import STATE_FILE, SECGRPOTrainer

__all__ = ["STATE_FILE", "TOOLS_SYSTEM", "CRMEnvironment", "CurriculumSampler", "SECGRPOTrainer", "agentic_dataset",
           "arm_pools", "correct_reward", "final_text", "formatted_reward", "reward_functions", "suite_dataset"]
