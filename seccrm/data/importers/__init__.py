"""Importers of outside benchmarks into seccrm suite folders (the user's own files; nothing is
downloaded). ``crmarena_pro``: CRMArena-Pro's task rows and org."""
