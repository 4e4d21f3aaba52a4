"""One batch of the book's ``train_batch_ch13`` and ``evaluate_accuracy_gpu``: the only step body.

``train_batch`` and ``eval_batch`` return the batch's ``StepOutput`` (tensors on the device plus
counts read from shapes), so nothing in the per-iteration path waits for the device. The Engines of
``create_trainer`` / ``create_evaluator`` and the book's ``train_batch_ch13`` all run these.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from engine.step_options import StepOptions, autocast, to_channels_last
from engine.updater import Updater
from handlers.contract import StepOutput

__all__ = ["train_batch", "eval_batch", "correct_count", "compute_loss", "reduce_loss", "OutputTransform"]

LossFn = Callable[..., torch.Tensor]
OutputTransform = Callable[[Any, torch.Tensor, torch.Tensor, StepOutput], Any]


def train_batch(
    net: nn.Module, model: nn.Module, X: Any, y: torch.Tensor, loss: LossFn, updater: Updater,
    options: StepOptions, device: torch.device, last_of_epoch: bool = False, length_known: bool = False,
) -> tuple[StepOutput, torch.Tensor]:
    """Forward, backward of the sum of per-example losses, and the update when it is due.

    ``net`` is the module whose mode is switched; ``model`` is what is called (``net`` compiled or
    wrapped). Returns the batch's statistics and the predictions. Under DDP a micro-batch that does
    not complete its group skips the all-reduce (``no_sync``), when the epoch's length says which
    batch is last.
    """
    if options.channels_last:
        X = to_channels_last(X)
    set_mode(net, True)
    defer = isinstance(net, DDP) and length_known and not updater.steps_after(last_of_epoch)
    with net.no_sync() if defer else contextlib.nullcontext():  # forward and backward inside it
        with autocast(device, options.amp):
            y_hat = model(X)
            loss_sum, objective = reduce_loss(compute_loss(loss, y_hat, y), y, loss)
        if not objective.requires_grad:  # a Python attribute: no device sync
            raise ValueError(
                "the loss does not depend on any trainable parameter, so there is no gradient to follow: is every "
                "parameter frozen (requires_grad=False), the prediction detached, or the loss integer-valued? "
                "Train at least one parameter and compute the loss from the model's output"
            )
        updater.update(objective, objective is not loss_sum, last_of_epoch)
    return batch_stats(y_hat, y, loss_sum), y_hat


def eval_batch(
    net: nn.Module, model: nn.Module, X: Any, y: torch.Tensor, loss: LossFn | None, options: StepOptions,
    device: torch.device,
) -> tuple[StepOutput, torch.Tensor]:
    """Predictions without gradients in eval mode; the loss sum only when a loss is given."""
    if options.channels_last:
        X = to_channels_last(X)
    set_mode(net, False)
    with torch.no_grad(), autocast(device, options.amp):
        y_hat = model(X)
        loss_sum = reduce_loss(compute_loss(loss, y_hat, y), y, loss)[0] if loss is not None else None
    return batch_stats(y_hat, y, loss_sum), y_hat


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


def reduce_loss(l: torch.Tensor, y: torch.Tensor,
                loss: Callable[..., torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
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
    if y.shape[0] == 0:  # a mean over no example (a process's empty share of a last batch) is nan: it adds nothing
        return l.nan_to_num(0.0) * 0, l.nan_to_num(0.0) * 0
    return l * y.shape[0], l


def default_output(X: Any, y: torch.Tensor, y_hat: torch.Tensor, stats: StepOutput) -> StepOutput:
    """The default ``engine.state.output``: the batch's statistics (tensors and counts)."""
    return stats


def batch_stats(y_hat: torch.Tensor, y: torch.Tensor, loss_sum: torch.Tensor | None) -> StepOutput:
    stats: Any = {"correct": correct_count(y_hat.detach(), y), "examples": y.shape[0], "predictions": y.numel()}
    if loss_sum is not None:
        stats["loss"] = loss_sum.detach()
    return stats


def set_mode(net: nn.Module, training: bool) -> None:
    """Switch train/eval only when needed: ``net.train()`` walks every module, which costs per batch."""
    if net.training != training:
        net.train(training)
