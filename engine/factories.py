"""``create_trainer`` / ``create_evaluator``: Ignite Engines around the book's step functions."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from torch import nn

from engine.checks import check_optimizer
from engine.devices import resolve_devices
from engine.options import autocast, check_amp, make_scaler, optimize_model, resolve_fast, to_channels_last
from engine.updater import Updater
from engine.step import OutputTransform, batch_stats, compute_loss, default_output, prepare_batch, reduce_loss, set_mode
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
    amp: str | None = None,
    scaler: torch.amp.GradScaler | bool | None = None,
    accumulation_steps: int = 1,
    clip_grad_norm: float | None = None,
    channels_last: bool = False,
    compile: bool | dict[str, Any] = False,
    fast: bool = False,
) -> Engine:
    """An Engine whose step is the book's ``train_batch_ch13``, with the step options of a modern loop.

    ``engine.state.output`` is ``{"loss": sum, "correct": n, "examples": B, "predictions": y.numel()}``
    (tensors stay on the device); pass ``output_transform(X, y, y_hat, stats)`` to change it.
    ``amp`` is ``"bf16"`` or ``"fp16"`` (fp16 gets a GradScaler, kept in ``engine.state.scaler`` for
    checkpoints); ``accumulation_steps`` sums k batches' gradients per update; ``clip_grad_norm``
    bounds the gradient norm before each update; ``channels_last`` / ``compile`` speed up conv nets.
    ``fast=True`` picks them for the device (see ``fast_options``); options given explicitly win.
    """
    check_optimizer(optimizer, net)
    device = model_device(net, devices)
    amp, channels_last, compile = resolve_fast(fast, device, net, optimizer, amp, channels_last, compile)
    amp = check_amp(amp)
    if scaler is None or scaler is True:
        scaler = make_scaler(device, amp) if scaler is None else torch.amp.GradScaler(device.type)
    ddp = isinstance(net, nn.parallel.DistributedDataParallel)
    updater = Updater(optimizer, net.parameters(), scaler=scaler or None, accumulation_steps=accumulation_steps,
                      clip_grad_norm=clip_grad_norm, world_size=idist.get_world_size() if ddp else 1)
    model = optimize_model(net, channels_last=channels_last, compile=compile)

    def train_step(engine: Engine, batch: Any) -> Any:
        X, y = prepare_batch(batch, device, non_blocking)
        if channels_last:
            X = to_channels_last(X)
        set_mode(net, True)
        with autocast(device, amp):
            y_hat = model(X)
            loss_sum, objective = reduce_loss(compute_loss(loss, y_hat, y), y, loss)
        updater.backward(objective, objective is not loss_sum)
        updater.after_batch(engine)
        return output_transform(X, y, y_hat, batch_stats(y_hat, y, loss_sum))

    trainer = Engine(train_step)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, updater.flush)
    trainer.state.scaler = updater.scaler
    trainer.state.optimizer_steps = 0  # updates so far: schedules step per update, not per batch
    return trainer


def create_evaluator(
    net: nn.Module,
    devices: Sequence[Any] | None = None,
    *,
    loss: Callable[..., torch.Tensor] | None = None,
    non_blocking: bool = True,
    prepare_batch: PrepareBatch = prepare_batch,
    output_transform: OutputTransform = default_output,
    amp: str | None = None,
    channels_last: bool = False,
    compile: bool | dict[str, Any] = False,
) -> Engine:
    """An Engine with ``evaluate_accuracy_gpu``'s semantics; ``state.metrics["acc"]`` after a run.

    With ``loss`` given, the per-example test loss is also reported as ``state.metrics["loss"]``.
    """
    device = model_device(net, devices)
    amp = check_amp(amp)
    model = optimize_model(net, channels_last=channels_last, compile=compile)

    def eval_step(engine: Engine, batch: Any) -> Any:
        X, y = prepare_batch(batch, device, non_blocking)
        if channels_last:
            X = to_channels_last(X)
        set_mode(net, False)
        with torch.no_grad(), autocast(device, amp):
            y_hat = model(X)
            loss_sum = reduce_loss(compute_loss(loss, y_hat, y), y, loss)[0] if loss is not None else None
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
