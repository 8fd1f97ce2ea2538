"""The learning-rate schedule: linear warmup, then step multipliers or cosine to 0, one value per epoch."""
from __future__ import annotations

import math

from nbn_tutorial.train.config import Config


def learning_rate(config: Config, epoch: int) -> float:
    """The learning rate of 0-based ``epoch``: linear warmup, then step multipliers or cosine to 0.

    Step (LDAM-DRW's ``adjust_learning_rate``): lr*(epoch+1)/warmup for epoch < warmup, then lr times the
    multiplier of the last milestone reached (not cumulative). Cosine (``CosineAnnealingLR(T_max=epochs,
    eta_min=0)`` stepped per epoch, after the warmup): lr*(1+cos(pi*t/T))/2.
    """
    if epoch < config.warmup_epochs:
        return config.lr * (epoch + 1) / config.warmup_epochs
    if config.schedule == "cosine":
        span = max(1, config.epochs - config.warmup_epochs)
        progress = min(epoch - config.warmup_epochs, span) / span
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    factor = 1.0
    for milestone, multiplier in zip(config.milestones, config.lr_decay):
        if epoch >= milestone:
            factor = multiplier
    return config.lr * factor
