"""The CRM org: a SQLite database in Salesforce object and field names, generated from a seed.

``build_org(path, seed=0, size="small")`` writes it (deterministic: same seed, same bytes);
``open_org(path)`` opens it read-only; ``SIZES`` holds the presets (tiny, small, full). What the data
guarantees is written down in ``docs/org-contract.md``.
"""

from seccrm.org.generate import SIZES, TODAY, OrgSize, Rules, build_org, open_org

__all__ = ["SIZES", "TODAY", "OrgSize", "Rules", "build_org", "open_org"]
