"""Batches into ``(X, y)`` on the step's device: a list ``X`` (the book's BERT and NLI inputs) moves
element-wise and stays a list, and a malformed batch is named before anything runs on it."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

__all__ = ["move", "prepare_batch", "PrepareBatch"]

PrepareBatch = Callable[[Any, "torch.device | None", bool], "tuple[Any, torch.Tensor]"]


def move(x: Any, device: torch.device | None, non_blocking: bool) -> Any:
    """A tensor, or a (nested) list of tensors, on ``device``; lists stay lists."""
    if isinstance(x, torch.Tensor):
        return x if device is None else x.to(device, non_blocking=non_blocking)
    if isinstance(x, (list, tuple)):
        return [move(e, device, non_blocking) for e in x]
    raise TypeError(f"a batch input must be a tensor or a list of tensors, got {type(x).__name__}")


def prepare_batch(batch: Any, device: torch.device | None = None,
                  non_blocking: bool = False) -> tuple[Any, torch.Tensor]:
    """Split a batch into ``(X, y)`` and move it; a list/tuple ``X`` moves element-wise and stays a list."""
    if type(batch) in (tuple, list) and len(batch) == 2 and device is not None:
        X, y = batch
        if type(X) is torch.Tensor and type(y) is torch.Tensor:  # the usual batch: nothing to check
            return X.to(device, non_blocking=non_blocking), y.to(device, non_blocking=non_blocking)
    if isinstance(batch, Mapping) or not isinstance(batch, (list, tuple)) or len(batch) != 2:
        got = type(batch).__name__ + (f" of length {len(batch)}" if isinstance(batch, (list, tuple)) else "")
        raise TypeError(
            f"each batch must be a pair (X, y), got a {got}; make the dataset return (input, label) "
            "or pass prepare_batch= to split your batches"
        )
    X, y = batch
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"labels y must be a tensor, got {type(y).__name__}; convert them in the dataset")
    return move(X, device, non_blocking), move(y, device, non_blocking)
