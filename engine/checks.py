"""Argument checks that fail before the first step, naming the argument and the fix."""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["check_epochs", "check_loader", "check_optimizer"]


def check_epochs(num_epochs: object) -> int:
    if isinstance(num_epochs, bool) or not isinstance(num_epochs, int) or num_epochs < 1:
        raise ValueError(f"num_epochs must be a positive int, got {num_epochs!r}")
    return num_epochs


def check_loader(name: str, data: Iterable) -> None:
    if not isinstance(data, Iterable):
        raise TypeError(f"{name} must be an iterable of (X, y) batches such as a DataLoader, got {type(data).__name__}")
    try:
        size = len(data)  # type: ignore[arg-type]
    except TypeError:
        return
    if size == 0:
        raise ValueError(
            f"{name} yields no batches (len 0); check the dataset is not empty and, with drop_last=True, "
            "that it holds at least one full batch"
        )


def check_optimizer(optimizer: torch.optim.Optimizer, net: nn.Module) -> None:
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"trainer/optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    own = {id(p) for p in net.parameters()}
    foreign = sum(1 for g in optimizer.param_groups for p in g["params"] if id(p) not in own)
    if foreign:
        raise ValueError(
            f"the optimizer holds {foreign} parameter(s) that are not in the model; "
            "build it from this model's parameters, e.g. torch.optim.SGD(net.parameters(), lr=0.1)"
        )
