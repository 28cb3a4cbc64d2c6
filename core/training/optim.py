"""Optimizers and learning-rate schedules by name: small factory tables instead of if/elif chains."""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

# foreach: one batched kernel per step for all parameters (on the CPU too, where PyTorch's
# default is a loop over them).
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": lambda groups, c, lr: torch.optim.Adam(groups, lr=lr, weight_decay=c.weight_decay, foreach=True),
    "adamw": lambda groups, c, lr: torch.optim.AdamW(groups, lr=lr, weight_decay=c.weight_decay, foreach=True),
    "sgd": lambda groups, c, lr: torch.optim.SGD(groups, lr=lr, momentum=c.momentum,
                                                 nesterov=c.nesterov and c.momentum > 0,
                                                 weight_decay=c.weight_decay, foreach=True),
}


def make_optimizer(model: nn.Module, c: Any, lr: float) -> torch.optim.Optimizer:
    """The optimizer `c.optimizer` over the model's parameters (frozen ones get no gradient, so
    no step; keeping them all keeps checkpoints of the phases interchangeable). BatchNorm biases get
    `lr * c.bias_lr_factor` and a weight decay divided by it, so that their decay per step stays
    the others' (a fast recipe's normalisation biases learn at a far higher rate)."""
    params = list(model.parameters())
    factor = c.bias_lr_factor
    if factor == 1.0:
        return OPTIMIZERS[c.optimizer](params, c, lr)
    norm_biases = {id(m.bias) for m in model.modules() if isinstance(m, _BatchNorm) and m.bias is not None}
    biases = [p for p in params if id(p) in norm_biases]
    groups = [{"params": [p for p in params if id(p) not in norm_biases]}]
    if biases:
        groups.append({"params": biases, "lr": lr * factor, "weight_decay": c.weight_decay / factor,
                       "lr_factor": factor})
    return OPTIMIZERS[c.optimizer](groups, c, lr)


def triangle(step: int, total: int) -> float:
    """The fast recipe's per-step schedule: up from 0.2 to 1 over the first 23% of the steps,
    then straight down to 0.07 at the last (airbench's shape)."""
    up = max(1, int(total * 0.23))
    if step < up:
        return 0.2 + 0.8 * step / up
    return 1.0 - 0.93 * min(1.0, (step - up) / max(1, total - up))


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
        o, max_lr=[g["lr"] for g in o.param_groups], total_steps=max(1, epochs * steps)), True),
    "triangle": (lambda o, c, epochs, steps: torch.optim.lr_scheduler.LambdaLR(
        o, partial(triangle, total=max(1, epochs * steps))), True),
}

# Schedules that end at a set epoch. A run given more epochs after it finished (Train N more
# epochs) runs these again over the added epochs, from the starting rate (a warm restart, as
# calling fastai's fit_one_cycle again does); the others carry on from where they are.
FIXED_LENGTH = ("cosine", "onecycle", "triangle")
