"""policy tasks (being written)."""
