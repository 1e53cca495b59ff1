"""Learning-rate schedule: linear warm-up, then cosine decay (evaluated per optimizer step)."""

from __future__ import annotations

import math
from functools import partial

import torch


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate before optimizer step ``step`` (0-based).

    ``f(s) = (s + 1) / W`` for ``s < W`` (linear warm-up, never 0 so the first step learns); then
    ``f(s) = r + (1 - r) * (1 + cos(pi * p)) / 2`` with ``p = min(1, (s - W) / max(1, T - W))`` and ``r`` the
    floor ratio ``min_lr / lr`` (Loshchilov & Hutter, SGDR 2017, without restarts; the public code uses
    ``LinearWarmupCosineAnnealingLR`` stepped per epoch, here the same curve per step).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    p = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    steps_per_epoch: int,
    warmup_epochs: float,
    schedule_epochs: float,
    lr: float,
    min_lr: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` applying :func:`lr_factor` with epochs converted to optimizer steps."""
    warmup = int(round(warmup_epochs * steps_per_epoch))
    total = max(warmup + 1, int(round(schedule_epochs * steps_per_epoch)))
    fn = partial(lr_factor, warmup_steps=warmup, total_steps=total, min_ratio=min_lr / lr if lr > 0 else 0.0)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)


def make_step_scheduler(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, lr: float, min_lr: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` applying :func:`lr_factor` with warm-up and cosine lengths given in optimizer steps."""
    total = max(warmup_steps + 1, total_steps)
    fn = partial(lr_factor, warmup_steps=warmup_steps, total_steps=total,
                 min_ratio=min_lr / lr if lr > 0 else 0.0)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
