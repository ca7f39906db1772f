"""knowledge tasks (being written)."""
