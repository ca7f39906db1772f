"""The CRM org: a SQLite database in Salesforce object and field names, generated from a seed.

``build_org(path, seed=0, size="small")`` writes it (deterministic: same seed, same bytes);
``open_org(path)`` opens it read-only; ``SIZES`` holds the presets (tiny, small, full). What the data
guarantees is written down in ``docs/org-contract.md``.

Modules: ``generate`` (presets, the build, opening), ``activity`` (cases, leads, opportunities),
``rules`` (the quote rules and their articles), ``text`` (names and templates), ``schema`` and ``ids``.
"""

from seccrm.world.org.common import TODAY
from seccrm.world.org.generate import SIZES, OrgSize, build_org, open_org
from seccrm.world.org.rules import Rules

__all__ = ["SIZES", "TODAY", "OrgSize", "Rules", "build_org", "open_org"]
