"""Training: target assignment, losses, the trainer, checkpoints and augmentation."""
