"""Step functions: the book's ``train_batch_ch13`` and ``evaluate_accuracy_gpu`` bodies, one batch each.

Steps return tensors (loss sum, correct count) plus integer counts read from shapes, so nothing in
the per-iteration path waits for the device. Numbers are read where a person or a plot needs them.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["move", "prepare_batch", "correct_count", "compute_loss", "reduce_loss", "Stats", "OutputTransform"]

Stats = dict[str, Any]
OutputTransform = Callable[[Any, torch.Tensor, torch.Tensor, Stats], Any]


def move(x: Any, device: torch.device | None, non_blocking: bool) -> Any:
    """A tensor, or a (nested) list of tensors, on ``device``; lists stay lists."""
    if isinstance(x, torch.Tensor):
        return x if device is None else x.to(device, non_blocking=non_blocking)
    if isinstance(x, (list, tuple)):
        return [move(e, device, non_blocking) for e in x]
    raise TypeError(f"a batch input must be a tensor or a list of tensors, got {type(x).__name__}")


def prepare_batch(batch: Any, device: torch.device | None = None, non_blocking: bool = False) -> tuple[Any, torch.Tensor]:
    """Split a batch into ``(X, y)`` and move it; a list/tuple ``X`` moves element-wise and stays a list."""
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


def correct_count(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Number of correct predictions, as a tensor on the device (the book's ``accuracy``).

    Class scores on dim 1 are argmaxed, so ``(B, C, H, W)`` counts per pixel. A single logit per
    example (``(B, 1)``) is a binary decision at 0, not broadcast against ``(B,)`` as in the book.
    """
    if y_hat.ndim > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(dim=1)
    elif y_hat.ndim > 1 and y_hat.shape[1] == 1 and y_hat.numel() == y.numel():
        y_hat = (y_hat > 0).reshape(y.shape)
    if y_hat.shape != y.shape:
        if y_hat.numel() != y.numel():
            raise ValueError(
                f"predictions of shape {tuple(y_hat.shape)} do not match labels of shape {tuple(y.shape)}; "
                "the model's output batch size must equal the labels' (check the model's last layer)"
            )
        y_hat = y_hat.reshape(y.shape)
    return (y_hat.to(y.dtype) == y).sum()


def compute_loss(loss: Callable[..., torch.Tensor], y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``loss(y_hat, y)``, with an error that names the shapes, dtypes and the likely fix when it fails."""
    try:
        return loss(y_hat, y)
    except (RuntimeError, ValueError, IndexError, TypeError) as e:
        got = (f"predictions {tuple(y_hat.shape)} {str(y_hat.dtype).removeprefix('torch.')} and labels "
               f"{tuple(y.shape)} {str(y.dtype).removeprefix('torch.')}")
        if y_hat.shape[:1] != y.shape[:1]:
            hint = "the model's output batch size must equal the labels' (check the model's last layer)"
        elif y.is_floating_point() and isinstance(loss, (torch.nn.CrossEntropyLoss, torch.nn.NLLLoss)):
            hint = "class labels must be whole numbers (torch.long); convert them in the dataset, e.g. y.long()"
        else:
            hint = "check that the loss fits the model's output and the labels' shape and dtype"
        raise ValueError(f"the loss failed on {got}: {str(e).splitlines()[0]}; {hint}") from None


def reduce_loss(l: torch.Tensor, y: torch.Tensor, loss: Callable[..., torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(loss sum over the batch, objective to backpropagate)``.

    Per-example losses backpropagate their sum, like the book. A loss that already reduced keeps its
    own objective and its sum is recovered (mean times batch size) so the printed loss keeps its meaning.
    """
    if not isinstance(l, torch.Tensor):
        raise TypeError(f"the loss must return a tensor, got {type(l).__name__}")
    if l.ndim > 0:
        total = l.sum()
        return total, total
    if getattr(loss, "reduction", "mean") == "sum":
        return l, l
    return l * y.shape[0], l


def default_output(X: Any, y: torch.Tensor, y_hat: torch.Tensor, stats: Stats) -> Stats:
    """The trainer's default ``engine.state.output``: the batch's statistics (tensors and counts)."""
    return stats


def batch_stats(y_hat: torch.Tensor, y: torch.Tensor, loss_sum: torch.Tensor | None) -> Stats:
    stats: Stats = {"correct": correct_count(y_hat.detach(), y), "examples": y.shape[0], "predictions": y.numel()}
    if loss_sum is not None:
        stats["loss"] = loss_sum.detach()
    return stats


def set_mode(net: nn.Module, training: bool) -> None:
    """Switch train/eval only when needed: ``net.train()`` walks every module, which costs per batch."""
    if net.training != training:
        net.train(training)
