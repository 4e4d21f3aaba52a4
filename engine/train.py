"""``train_ch13``: the book's function, composed from two Engines and handlers."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from ignite.engine import Engine, Events
from torch import nn

from engine.checks import check_epochs, check_loader
from engine.devices import place_model, resolve_devices
from engine.factories import create_evaluator, create_trainer
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
from handlers.plot import new_env

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
) -> History:
    """Train like the book's ``train_ch13`` and print its two lines; return the per-epoch History.

    ``devices=None`` means every GPU, else the CPU; several GPUs wrap the net in DataParallel.
    After training the caller's ``net`` sits on ``devices[0]`` in eval mode.
    ``plot=True`` streams the book's curves to Visdom (``$VISDOM_URL`` or 127.0.0.1:8097) from a
    background thread; with no server the points go to a replay log. ``out_dir`` also gets the PNG.
    """
    num_epochs = check_epochs(num_epochs)
    check_loader("train_iter", train_iter)
    check_loader("test_iter", test_iter)
    devices = resolve_devices(devices)
    model = place_model(net, devices)

    engine = create_trainer(model, loss, trainer, devices[:1])
    evaluator = create_evaluator(model, devices[:1])
    attach_book_metrics(engine, devices[0])
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda _: evaluator.run(test_iter))
    history = History(devices=str(devices)).attach(engine, evaluator)
    plotter = default_plotter(out_dir) if plot is True else (plot or None)
    if plotter is not None:
        attach_book_plot(plotter, engine, evaluator, num_epochs)
    if wants_progress(progress):
        attach_progress(engine)

    try:
        engine.run(train_iter, max_epochs=num_epochs)
    finally:
        if plotter is not None:
            plotter.close()
    net.eval()
    if verbose:
        print(history.summary())
    return history
