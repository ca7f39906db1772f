"""crud tasks (being written)."""
