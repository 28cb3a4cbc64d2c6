"""Optimizers and learning-rate schedules by name: small factory tables instead of if/elif chains."""
from __future__ import annotations

from typing import Any, Callable

import torch

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": lambda params, c, lr: torch.optim.Adam(params, lr=lr, weight_decay=c.weight_decay),
    "adamw": lambda params, c, lr: torch.optim.AdamW(params, lr=lr, weight_decay=c.weight_decay),
    "sgd": lambda params, c, lr: torch.optim.SGD(params, lr=lr, momentum=c.momentum,
                                                 nesterov=c.nesterov and c.momentum > 0,
                                                 weight_decay=c.weight_decay),
}

# name -> (factory(optimizer, config, epochs, steps_per_epoch), steps per batch rather than per epoch)
SCHEDULERS: dict[str, tuple[Callable[..., Any], bool]] = {
    "none": (lambda o, c, epochs, steps: None, False),
    "step": (lambda o, c, epochs, steps: torch.optim.lr_scheduler.StepLR(o, c.step_size, c.gamma), False),
    # watches c.plateau_metric: the engine steps it with that epoch's val accuracy or val loss
    "plateau": (lambda o, c, epochs, steps: torch.optim.lr_scheduler.ReduceLROnPlateau(
        o, mode="min" if c.plateau_metric == "val_loss" else "max", factor=c.gamma, patience=c.plateau_patience),
        False),
    "cosine": (lambda o, c, epochs, steps: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=max(1, epochs)), False),
    "onecycle": (lambda o, c, epochs, steps: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=o.param_groups[0]["lr"], total_steps=max(1, epochs * steps)), True),
}

# Schedules that end at a set epoch. A run given more epochs after it finished (Train N more
# epochs) runs these again over the added epochs, from the starting rate (a warm restart, as
# calling fastai's fit_one_cycle again does); the others carry on from where they are.
FIXED_LENGTH = ("cosine", "onecycle")
