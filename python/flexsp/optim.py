"""The optimizer and the learning-rate schedule.

AdamW with weight decay on matrices only: norms' scales and biases (every parameter of fewer than
two dimensions) are not decayed, as in GPT-2/Llama training. The learning rate is a pure function
of the step (linear warm-up, then cosine decay to lr_min), so a resumed run needs no scheduler
state: it sets each step's rate from the step number.
"""

from __future__ import annotations

import math

import torch


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: torch.nn.Module, lr: float, betas: tuple[float, float],
                    weight_decay: float) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas)


def lr_at(step: int, lr: float, lr_min: float, warmup_steps: int, total_steps: int,
          schedule: str = "cosine") -> float:
    """The rate of 0-based `step`: warm-up from lr/warmup to lr, then cosine down to lr_min at
    the last step (schedule "cosine"), or lr throughout after warm-up ("constant")."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    if schedule != "cosine":
        raise ValueError(f"train.lr_schedule must be 'cosine' or 'constant', not {schedule!r}")
    span = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
