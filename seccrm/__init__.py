"""seccrm: Self-Evolving Curriculum + GRPO for CRM work.

The package is a house of rooms; imports run down this list only (``tests/test_architecture.py``):

- ``seccrm.cli``          the ``seccrm`` command: one thin file per command
- ``seccrm.experiments``  the curriculum comparison and the demo (a preset of it)
- ``seccrm.integrations`` hand-offs to other trainers (VERL)
- ``seccrm.rl``           GRPO math (pure tensor functions), trainer, config, checkpoints, warm-up, metrics
- ``seccrm.evaluation``   greedy evaluation, the sampled probe, statistics, reports from logs
- ``seccrm.engine``       everything that runs the network: loading, precision, rollouts, log-probs
- ``seccrm.curriculum``   SEC and the other curricula behind one registry
- ``seccrm.data``         the suite builder, loader and checker; the trivial baselines
- ``seccrm.world``        what the model practises on, without torch: the org, the 19 tasks, the verifiers
- ``seccrm.files``, ``seccrm.logs``, ``seccrm.errors``  helpers every room shares
"""

__version__ = "0.1.0"
