"""``train_ch13``: the book's function, composed from two Engines and handlers."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from torch import nn

from engine.checks import check_epochs, check_loader
from engine.devices import place_model, resolve_devices
from engine.distributed import (
    attach_sampler_epoch,
    describe_world,
    distribute_model,
    is_distributed,
    is_main_process,
    shard_loader,
)
from engine.factories import create_evaluator, create_trainer
from engine.options import optimize_model, resolve_fast
from engine.prefetch import DevicePrefetcher
from handlers import (
    BookAccuracy,
    BookCadence,
    BookLoss,
    History,
    StepTimer,
    VisdomPlotter,
    attach_book_plot,
    attach_progress,
    wants_progress,
)
from handlers.cadence import epoch_fraction
from handlers.checkpoint import RngState, attach_checkpoints, load_checkpoint
from handlers.guards import Interrupt, NonFiniteGuard
from handlers.plot import new_env
from handlers.lr_schedule import attach_lr_scheduler, current_lr
from handlers.stopping import attach_early_stopping

__all__ = ["train_ch13", "attach_book_metrics", "default_plotter"]


def attach_book_metrics(trainer: Engine, device: torch.device | str = "cpu") -> StepTimer:
    """The book's running figures on any trainer: timer first, then loss and acc at the book's cadence."""
    timer = StepTimer(device).attach(trainer)
    BookLoss().attach(trainer, "loss", usage=BookCadence())
    BookAccuracy().attach(trainer, "acc", usage=BookCadence())
    return timer


def default_plotter(out_dir: str | None = None) -> VisdomPlotter:
    """A plotter on ``$VISDOM_URL`` (or the local default) in a fresh, time-stamped env."""
    return VisdomPlotter(env=new_env(), out_dir=out_dir)


def train_ch13(
    net: nn.Module,
    train_iter: Iterable,
    test_iter: Iterable,
    loss: Callable[..., torch.Tensor],
    trainer: torch.optim.Optimizer,
    num_epochs: int,
    devices: Sequence[Any] | None = None,
    *,
    progress: bool | None = None,
    verbose: bool = True,
    plot: bool | VisdomPlotter = True,
    out_dir: str | None = None,
    amp: str | None = None,
    accumulation_steps: int = 1,
    clip_grad_norm: float | None = None,
    channels_last: bool = False,
    compile: bool | dict[str, Any] = False,
    lr_scheduler: Any = None,
    scheduler_every: str = "iteration",
    plot_lr: bool = False,
    checkpoint_dir: str | None = None,
    resume: str | None = None,
    early_stopping: int | None = None,
    early_stopping_metric: str = "test_acc",
    handlers: Sequence[Callable[[Engine, Engine], Any]] = (),
    distributed: bool | None = None,
    fast: bool = False,
) -> History:
    """Train like the book's ``train_ch13`` and print its two lines; return the per-epoch History.

    ``devices=None`` means every GPU, else the CPU; several GPUs wrap the net in DataParallel.
    After training the caller's ``net`` sits on ``devices[0]`` in eval mode.
    ``plot=True`` streams the book's curves to Visdom (``$VISDOM_URL`` or 127.0.0.1:8097) from a
    background thread; with no server the points go to a replay log. ``out_dir`` also gets the PNG.
    The keyword options are ``create_trainer``'s step options (``amp``, ``accumulation_steps``,
    ``clip_grad_norm``, ``channels_last``, ``compile``) and handlers: an ``lr_scheduler`` stepped
    every iteration or epoch, checkpoints in ``checkpoint_dir`` (every epoch and the best test acc),
    ``resume`` from a checkpoint file or run folder, and ``early_stopping`` patience in epochs.
    Each of ``handlers`` is called as ``f(trainer_engine, evaluator)`` to attach your own handlers.
    Under ``torchrun`` / ``idist.Parallel`` (``distributed=None`` detects it) the net is wrapped in DDP,
    the loaders are sharded, figures are global, and only rank 0 prints, plots and saves.
    ``fast=True`` is the one-switch fast path (bf16, channels_last, fused optimizer, CUDA graphs on a GPU).
    On a GPU the next training batch is copied on a side stream while the current one trains.
    """
    num_epochs = check_epochs(num_epochs)
    check_loader("train_iter", train_iter)
    check_loader("test_iter", test_iter)
    if is_distributed() if distributed is None else distributed:
        devices = [idist.device()]
        model = distribute_model(net)
        train_iter, test_iter = shard_loader(train_iter, True), shard_loader(test_iter, False)
    else:
        devices = resolve_devices(devices)
        model = place_model(net, devices)
    amp, channels_last, compile = resolve_fast(fast, devices[0], net, trainer, amp, channels_last, compile)
    model = optimize_model(model, channels_last=channels_last, compile=compile)
    main = is_main_process()
    if devices[0].type == "cuda":
        train_iter = DevicePrefetcher(train_iter, devices[0])

    engine = create_trainer(model, loss, trainer, devices[:1], amp=amp, accumulation_steps=accumulation_steps,
                            clip_grad_norm=clip_grad_norm, channels_last=channels_last)
    evaluator = create_evaluator(model, devices[:1], amp=amp, channels_last=channels_last,
                                 loss=loss if early_stopping_metric == "test_loss" else None)
    timer = attach_book_metrics(engine, devices[0])
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda _: evaluator.run(test_iter))
    attach_sampler_epoch(engine, train_iter)
    history = History(devices=describe_world() if is_distributed() else str(devices)).attach(engine, evaluator)
    to_save: dict[str, Any] = {"model": net, "optimizer": trainer, "trainer": engine, "history": history,
                               "timer": timer}
    if engine.state.scaler is not None:
        to_save["scaler"] = engine.state.scaler
    if lr_scheduler is not None:
        to_save["lr_scheduler"] = attach_lr_scheduler(engine, lr_scheduler, scheduler_every)
    plotter = (default_plotter(out_dir) if plot is True else (plot or None)) if main else None
    if plotter is not None:
        to_save["plot"] = attach_book_plot(plotter, engine, evaluator, num_epochs)
        if plot_lr and lr_scheduler is not None:
            plotter.attach(engine, Events.ITERATION_COMPLETED, {"lr": lambda _: current_lr(lr_scheduler)},
                           x=epoch_fraction, window="lr")
    for attach in handlers:
        attach(engine, evaluator)
    if early_stopping is not None:
        to_save["early_stopping"] = attach_early_stopping(engine, evaluator, early_stopping, early_stopping_metric)
    to_save["rng"] = RngState([train_iter]).attach(engine)  # after every handler that draws random numbers
    guard = NonFiniteGuard().attach(engine)  # before the checkpoints: a nan epoch never overwrites a good file
    saved = {} if checkpoint_dir is None else attach_checkpoints(
        engine, to_save, checkpoint_dir, score=lambda _: evaluator.state.metrics["acc"])
    interrupt = Interrupt(saved.get("interrupted")).attach(engine)
    if resume is not None:
        _resume(resume, to_save, num_epochs, len(train_iter) if hasattr(train_iter, "__len__") else None)
    if main and wants_progress(progress):
        attach_progress(engine)

    try:
        engine.run(train_iter, max_epochs=num_epochs)
    finally:
        interrupt.restore()
        if plotter is not None:
            plotter.close()
    net.eval()
    if guard.iteration is not None:
        raise FloatingPointError(guard.message(_last_file(saved.get("last"))))
    if verbose and main and history.train_loss:
        print(history.summary())
    if interrupt.requested:
        _stopped_by_user(engine, saved.get("interrupted"), main)
    return history


def _last_file(checkpoint: Any) -> str | None:
    """The file a checkpoint handler wrote last (Ignite's ``last_checkpoint`` already includes its folder)."""
    return None if checkpoint is None or checkpoint.last_checkpoint is None else str(checkpoint.last_checkpoint)


def _stopped_by_user(engine: Engine, checkpoint: Any, speak: bool) -> None:
    at = f"epoch {engine.state.epoch}, iteration {engine.state.iteration}"
    path = _last_file(checkpoint)
    how = (f"saved {path}; continue with resume={path!r} (CLI: --resume {path}); the rest of that epoch sees a "
           "fresh shuffle" if path else "no checkpoint_dir was given, nothing was saved")
    if speak:
        print(f"Interrupted at {at}: {how}", file=sys.stderr, flush=True)
    raise KeyboardInterrupt(f"interrupted at {at}")


def _resume(path: str, to_load: dict[str, Any], num_epochs: int, epoch_length: int | None) -> None:
    """Load a checkpoint; what it lacks that this run adds (e.g. a plot) starts fresh.

    A checkpoint from another world size had another number of batches an epoch: the trainer's
    counters are re-based on this run's loader (checkpoints are taken at epoch ends).
    """
    load_checkpoint(path, to_load, required=("model", "optimizer", "trainer"))
    state = to_load["trainer"].state
    if epoch_length is not None and state.epoch_length != epoch_length:
        state.epoch_length, state.iteration = epoch_length, state.epoch * epoch_length
    done = state.epoch
    if done >= num_epochs:
        raise ValueError(f"the checkpoint {path} already completed {done} epochs; "
                         f"pass num_epochs > {done} to train further")
