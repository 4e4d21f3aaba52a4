"""Named learning-rate schedules for the command line; the API takes any scheduler object."""
from __future__ import annotations

import torch

__all__ = ["SCHEDULES", "make_schedule"]

SCHEDULES = ("none", "cosine", "onecycle", "multistep")


def make_schedule(name: str, optimizer: torch.optim.Optimizer,
                  total_steps: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """A per-iteration schedule over ``total_steps`` updates, starting from the optimizer's rate."""
    lr = optimizer.param_groups[0]["lr"]
    if name == "none":
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps)
    if name == "multistep":  # x0.1 at half and at three quarters of the run
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, [total_steps // 2, total_steps * 3 // 4], 0.1)
    raise ValueError(f"unknown schedule {name!r}; choose one of {SCHEDULES}")
