"""The VERL hand-off: the same tasks, rewards and SEC curriculum inside VERL's own PPO/GRPO trainer.

Three pieces, each usable on its own (``docs/verl.md`` walks through a whole run):

- :mod:`~seccrm.integrations.verl.export`: ``seccrm export verl --data DIR --out OUT`` writes
  ``train/val/test.parquet`` in VERL's RL dataset layout (``data_source``, ``prompt``, ``ability``,
  ``reward_model``, ``extra_info``), every row carrying the whole instance record so that the reward
  needs nothing but the row (and the org file for CRUD tasks).
- :mod:`~seccrm.integrations.verl.reward`: ``compute_score(data_source, solution_str, ground_truth,
  extra_info)``, VERL's ``custom_reward_function``; it calls :func:`seccrm.world.rewards.score_details`, so
  VERL and ``seccrm train`` grade every completion identically.
- :mod:`~seccrm.integrations.verl.sampler`: :class:`SECSampler`, the SEC bandit (or any curriculum of
  :func:`seccrm.curriculum.make_curriculum`) as VERL's training sampler, with its state inside VERL's
  dataloader checkpoint; :mod:`~seccrm.integrations.verl.main` is the entry point that wires it into
  VERL releases that no longer have the sampler hook.

Supported VERL versions (tested: 0.7.1 and 0.9.1, each in its own virtual environment, see
``scripts/test-verl.sh``):

- 0.5 to 0.7.x: VERL's own ``python -m verl.trainer.main_ppo`` loads the sampler from
  ``data.sampler.class_path`` / ``class_name`` and calls ``update(batch)`` after every step.
  On 0.7, ``python -m seccrm.integrations.verl.main`` works too; it updates the bandit before the
  step's checkpoint rather than after it and logs the curriculum metrics through VERL's logger.
- 0.8 and later: the hook is gone; ``python -m seccrm.integrations.verl.main`` (same config keys)
  builds the sampler. It runs VERL's v1 trainer (the default, :mod:`.v1`: the bandit learns from
  each step's rows in TransferQueue) or, with ``trainer.use_v1=false``, the legacy trainer (the
  bandit learns from the batch handed to the actor update).

Nothing here imports VERL at module level except :mod:`.sampler` and :mod:`.main`, so the exporter
and the reward run without it.
"""
