"""Training: data, datasets, the supervised trainer, LoRA, few-shot fitting and the PPO stage."""
