"""seccrm: Self-Evolving Curriculum + GRPO for CRM work.

Layout (each folder is one part of the system):

- ``seccrm.org``        the CRM org: a SQLite database in Salesforce's object and field names
- ``seccrm.tasks``      the 19 task generators, three difficulty levels each
- ``seccrm.rewards``    deterministic verifiers: 1.0 correct, 0.1 well-formatted, 0.0 otherwise
- ``seccrm.data``       the dataset builder (train / val / test as JSONL and Parquet) and its checker
- ``seccrm.curriculum`` SEC and the other curricula behind one interface
- ``seccrm.grpo``       GRPO math as pure tensor functions
- ``seccrm.models``     model loading (the embedded SmolLM2 default, tiny test models, any HF path)
- ``seccrm.rollout``    sampling completions, prompt computed once per group
- ``seccrm.trainer``    the GRPO + curriculum training loop
- ``seccrm.evaluate``   greedy evaluation with bootstrap intervals
- ``seccrm.report``     reports made from run logs, after the fact
"""

__version__ = "0.1.0"
