"""SEC and the CRM suite inside TRL's ``GRPOTrainer``, in a few lines::

    from trl import GRPOConfig
    from seccrm.integrations.trl import SECGRPOTrainer, reward_functions, suite_dataset

    trainer = SECGRPOTrainer(model="path/to/model", reward_funcs=reward_functions(),
                             train_dataset=suite_dataset("data/small", "train"),
                             args=GRPOConfig(output_dir="runs/trl", num_generations=8, ...),
                             curriculum="sec")
    trainer.train()

- :func:`reward_functions`: the project's reward as TRL reward functions, one per component
  (``correct``: 1.0 when right; ``formatted``: 0.1 when well formed but wrong), so TRL logs each
  under its name and their sum is seccrm's 1.0 / 0.1 / 0.0 reward.
- :func:`suite_dataset`: a built suite's split in TRL's conversational format (``prompt`` = the
  instance's messages), with the columns the rewards and the curriculum read.
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

from seccrm.integrations.trl.core import (
    STATE_FILE,
    CurriculumSampler,
    SECGRPOTrainer,
    correct_reward,
    formatted_reward,
    reward_functions,
    suite_dataset,
)

__all__ = ["STATE_FILE", "CurriculumSampler", "SECGRPOTrainer", "correct_reward", "formatted_reward",
           "reward_functions", "suite_dataset"]
