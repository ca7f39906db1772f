"""analytics tasks (being written)."""
