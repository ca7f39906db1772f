"""seccrm: Self-Evolving Curriculum + GRPO for CRM work.

Layout (each folder is one part of the system):

- ``seccrm.world.org``        the CRM org: a SQLite database in Salesforce's object and field names
- ``seccrm.world.tasks``      the 19 task generators, three difficulty levels each
- ``seccrm.world.rewards``    deterministic verifiers: 1.0 correct, 0.1 well-formatted, 0.0 otherwise
- ``seccrm.data``       the dataset builder (train / val / test as JSONL and Parquet) and its checker
- ``seccrm.curriculum`` SEC and the other curricula behind one interface
- ``seccrm.rl.grpo``       GRPO math as pure tensor functions
- ``seccrm.engine.models``     model loading (the embedded SmolLM2 default, tiny test models, any HF path)
- ``seccrm.engine.rollout``    sampling completions, prompt computed once per group
- ``seccrm.rl.trainer``    the GRPO + curriculum training loop
- ``seccrm.evaluation.evaluate``   greedy evaluation with bootstrap intervals
- ``seccrm.evaluation.report``     reports made from run logs, after the fact
"""

__version__ = "0.1.0"

from seccrm import _compat

_compat.install()
