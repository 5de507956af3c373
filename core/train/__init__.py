"""Training: tasks, models, losses, data, the training loop, checkpoints, run records."""
