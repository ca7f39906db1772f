"""Hand-offs to other trainers: :mod:`seccrm.integrations.verl` (VERL's PPO/GRPO trainer)."""
