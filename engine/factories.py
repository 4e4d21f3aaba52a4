"""``create_trainer`` / ``create_evaluator``: Ignite Engines around the book's step functions."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from ignite.engine import Engine
from torch import nn

from engine.checks import check_optimizer
from engine.devices import resolve_devices
from engine.step import OutputTransform, batch_stats, default_output, prepare_batch, reduce_loss, set_mode
from handlers.metrics import BookAccuracy, BookLoss

__all__ = ["create_trainer", "create_evaluator", "evaluate_accuracy_gpu", "evaluate_accuracy", "model_device"]

PrepareBatch = Callable[[Any, torch.device | None, bool], tuple[Any, torch.Tensor]]


def model_device(net: nn.Module, devices: Sequence[Any] | None = None) -> torch.device:
    """Where batches go: ``devices[0]`` when given, else the device of the model's first parameter."""
    if devices is not None:
        return resolve_devices(devices)[0]
    param = next(iter(net.parameters()), None)
    return param.device if param is not None else torch.device("cpu")


def create_trainer(
    net: nn.Module,
    loss: Callable[..., torch.Tensor],
    optimizer: torch.optim.Optimizer,
    devices: Sequence[Any] | None = None,
    *,
    non_blocking: bool = True,
    prepare_batch: PrepareBatch = prepare_batch,
    output_transform: OutputTransform = default_output,
) -> Engine:
    """An Engine whose step is the book's ``train_batch_ch13``.

    ``engine.state.output`` is ``{"loss": sum, "correct": n, "examples": B, "predictions": y.numel()}``
    (tensors stay on the device); pass ``output_transform(X, y, y_hat, stats)`` to change it.
    """
    check_optimizer(optimizer, net)
    device = model_device(net, devices)

    def train_step(engine: Engine, batch: Any) -> Any:
        X, y = prepare_batch(batch, device, non_blocking)
        set_mode(net, True)
        optimizer.zero_grad(set_to_none=True)
        y_hat = net(X)
        loss_sum, objective = reduce_loss(loss(y_hat, y), y, loss)
        objective.backward()
        optimizer.step()
        return output_transform(X, y, y_hat, batch_stats(y_hat, y, loss_sum))

    return Engine(train_step)


def create_evaluator(
    net: nn.Module,
    devices: Sequence[Any] | None = None,
    *,
    loss: Callable[..., torch.Tensor] | None = None,
    non_blocking: bool = True,
    prepare_batch: PrepareBatch = prepare_batch,
    output_transform: OutputTransform = default_output,
) -> Engine:
    """An Engine with ``evaluate_accuracy_gpu``'s semantics; ``state.metrics["acc"]`` after a run.

    With ``loss`` given, the per-example test loss is also reported as ``state.metrics["loss"]``.
    """
    device = model_device(net, devices)

    def eval_step(engine: Engine, batch: Any) -> Any:
        X, y = prepare_batch(batch, device, non_blocking)
        set_mode(net, False)
        with torch.no_grad():
            y_hat = net(X)
            loss_sum = reduce_loss(loss(y_hat, y), y, loss)[0] if loss is not None else None
        return output_transform(X, y, y_hat, batch_stats(y_hat, y, loss_sum))

    evaluator = Engine(eval_step)
    BookAccuracy().attach(evaluator, "acc")
    if loss is not None:
        BookLoss().attach(evaluator, "loss")
    return evaluator


def evaluate_accuracy_gpu(net: nn.Module, data_iter: Iterable, device: torch.device | str | None = None) -> float:
    """Accuracy of ``net`` over ``data_iter`` (correct / ``y.numel()``), computed on ``device``."""
    state = create_evaluator(net, None if device is None else [device]).run(data_iter)
    return float(state.metrics["acc"])


def evaluate_accuracy(net: nn.Module, data_iter: Iterable) -> float:
    """The book's chapter-3 helper: same result, on the model's own device."""
    return evaluate_accuracy_gpu(net, data_iter)
