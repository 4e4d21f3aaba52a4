"""``create_trainer`` / ``create_evaluator``: Ignite Engines around the book's step functions."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Events
from torch import nn

from engine.batch import PrepareBatch, prepare_batch
from engine.checks import check_optimizer
from engine.devices import resolve_devices
from engine.dispatch import Engine
from engine.gpu import fit_optimizer_state, uses_cuda_graphs
from engine.keywords import updated
from engine.step_options import StepOptions, prepare_model
from engine.step import OutputTransform, default_output, eval_batch, train_batch
from engine.updater import Updater
from handlers.contract import UpdateEvents
from handlers.metrics import BookAccuracy, BookLoss

__all__ = ["create_trainer", "create_evaluator", "evaluate_accuracy_gpu", "evaluate_accuracy", "model_device"]


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
    options: StepOptions | None = None,
    non_blocking: bool = True,
    prepare_batch: PrepareBatch = prepare_batch,
    output_transform: OutputTransform = default_output,
    scaler: torch.amp.GradScaler | bool | None = None,
    world_size: int | None = None,
    **step_options: Any,
) -> Engine:
    """An Engine whose step is the book's ``train_batch_ch13``, with the step options of a modern loop.

    ``options`` is a ``StepOptions``; its fields may also be given as keywords (``amp="bf16"``,
    ``accumulation_steps=2``, ...), which replace those of ``options``. ``fast`` is resolved here for
    the device (explicit options win). ``engine.state.step_output`` holds the batch's ``StepOutput``
    (tensors stay on the device) and is what the book's handlers read; ``engine.state.output`` is the
    same unless ``output_transform(X, y, y_hat, stats)`` makes it something else. fp16 gets a GradScaler
    in ``engine.state.scaler``. Each optimizer update fires ``UpdateEvents.UPDATE_STARTED`` /
    ``UPDATE_COMPLETED`` and counts in ``state.optimizer_steps`` (checkpointed with the trainer); their
    ``every=`` / ``once=`` filters read ``state.update_number`` (see ``handlers.UpdateEvents``).
    ``world_size`` is the number of processes DDP averages gradients over (default: the
    ``ignite.distributed`` world), so a sum loss gives the one-process update of the global batch.
    """
    check_optimizer(optimizer, net)
    fit_optimizer_state(optimizer)  # state an optimizer made when built (Adagrad) sits where the weights were then
    device = model_device(net, devices)
    options = updated(options, StepOptions, step_options, "create_trainer").resolve(device, net, optimizer)
    if scaler is None or scaler is True:
        scaler = options.grad_scaler(device) if scaler is None else torch.amp.GradScaler(device.type)
    updater = Updater(optimizer, net.parameters(), scaler=scaler or None, accumulation_steps=options.accumulation_steps,
                      clip_grad_norm=options.clip_grad_norm,
                      world_size=idist.get_world_size() if world_size is None else world_size,
                      keep_grads=device.type == "cuda" and uses_cuda_graphs(options.compile))
    model = prepare_model(net, options)

    def train_step(engine: Engine, batch: Any) -> Any:
        engine.state.step_started = time.perf_counter()  # the step timer's start, without a handler
        if not updater.pending:  # this batch begins an update's group (an attribute read: no call per step)
            engine.state.update_number = engine.state.optimizer_steps + 1  # Ignite's pairs: one count for both
            engine.fire_registered(UpdateEvents.UPDATE_STARTED)
        X, y = prepare_batch(batch, device, non_blocking)
        n = engine.state.epoch_length
        last = n is not None and engine.state.iteration % n == 0
        stats, y_hat = train_batch(net, model, X, y, loss, updater, options, device, last_of_epoch=last,
                                   length_known=n is not None)
        engine.state.step_output = stats
        engine.state.stepped = engine.state.iteration  # a stop before this line left this iteration undone
        if not updater.pending:  # this batch ended its group: an update (unless fp16 skipped it)
            _updated(engine, updater.applied)
            if engine.state.stop_after_update and not last:  # a requested stop, at a whole state (handlers.guards)
                engine.terminate()
        return stats if output_transform is default_output else output_transform(X, y, y_hat, stats)

    def flush(engine: Engine) -> None:  # an iterable of unknown length ends its epoch unannounced
        if updater.pending:
            _updated(engine, updater.flush())

    trainer = Engine(train_step)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, flush)
    return _with_trainer_state(trainer, updater, options)


def _with_trainer_state(trainer: Engine, updater: Updater, options: StepOptions) -> Engine:
    """What the trainer publishes in ``state`` beside Ignite's, and its update events."""
    trainer.register_events(*UpdateEvents, event_to_attr={e: "update_number" for e in UpdateEvents})
    trainer.state.step_output = None
    trainer.state.step_started = 0.0
    trainer.state.scaler = updater.scaler
    trainer.state.compiled = bool(options.compile)  # the step timer leaves the compiling epoch out
    trainer.state.updater = updater  # skipped fp16 updates: updater.skipped
    trainer.state.optimizer_steps = 0  # updates applied so far: schedules step per update, not per batch
    trainer.state.update_number = 0  # what the update events' filters count: the update begun last
    trainer.state_dict_user_keys.append("optimizer_steps")
    trainer.state.stepped = 0  # the last iteration whose step ran (Ignite counts one before its step)
    trainer.state.stop_after_update = False  # set by handlers.guards.stop_soon: stop once an update is whole
    trainer.add_event_handler(Events.STARTED, _started)
    return trainer


def _started(engine: Engine) -> None:
    engine.state.stepped = engine.state.iteration
    engine.state.stop_after_update = False  # a run again after a stop is not stopped by the old request


def _updated(engine: Engine, applied: bool) -> None:
    """An update's group ended: count it and fire UPDATE_COMPLETED, unless fp16 skipped it (its number is
    then the next update's too, as an Ignite count does not move for a step that did not happen)."""
    if applied:
        engine.state.optimizer_steps += 1
        engine.state.update_number = engine.state.optimizer_steps
        engine.fire_registered(UpdateEvents.UPDATE_COMPLETED)


def create_evaluator(
    net: nn.Module,
    devices: Sequence[Any] | None = None,
    *,
    options: StepOptions | None = None,
    loss: Callable[..., torch.Tensor] | None = None,
    non_blocking: bool = True,
    prepare_batch: PrepareBatch = prepare_batch,
    output_transform: OutputTransform = default_output,
    across_processes: bool = True,
    **step_options: Any,
) -> Engine:
    """An Engine with ``evaluate_accuracy_gpu``'s semantics; ``state.metrics["acc"]`` after a run.

    ``options`` (or its fields as keywords) are the trainer's: the evaluator uses the ones that shape
    a forward pass (``amp``, ``channels_last``, ``compile``, ``fast``) and ignores the update's.
    With ``loss`` given, the per-example test loss is also reported as ``state.metrics["loss"]``.
    Under DDP the figures sum every process's batches (each process must run it);
    ``across_processes=False`` keeps them to this process's batches, with no collective.
    """
    device = model_device(net, devices)
    options = updated(options, StepOptions, step_options, "create_evaluator").resolve(device, net)
    model = prepare_model(net, options)

    def eval_step(engine: Engine, batch: Any) -> Any:
        X, y = prepare_batch(batch, device, non_blocking)
        stats, y_hat = eval_batch(net, model, X, y, loss, options, device)
        stats["y_pred"], stats["y"] = y_hat, y  # handlers.contract.EvalOutput: what Ignite's metrics read
        engine.state.step_output = stats
        return stats if output_transform is default_output else output_transform(X, y, y_hat, stats)

    evaluator = Engine(eval_step)
    evaluator.state.step_output = None
    BookAccuracy(across_processes=across_processes).attach(evaluator, "acc")
    if loss is not None:
        BookLoss(across_processes=across_processes).attach(evaluator, "loss")
    return evaluator


def evaluate_accuracy_gpu(net: nn.Module, data_iter: Iterable, device: torch.device | str | None = None) -> float:
    """Accuracy of ``net`` over ``data_iter`` (correct / ``y.numel()``), computed on ``device``.

    Like the book's helper it is local: under DDP it evaluates this process's data with the net itself
    (a DDP wrapper is looked through) and waits on no other process.
    """
    if isinstance(net, nn.parallel.DistributedDataParallel):
        net = net.module
    state = create_evaluator(net, None if device is None else [device], across_processes=False).run(data_iter)
    return float(state.metrics["acc"])


def evaluate_accuracy(net: nn.Module, data_iter: Iterable) -> float:
    """The book's chapter-3 helper: same result, on the model's own device."""
    return evaluate_accuracy_gpu(net, data_iter)
