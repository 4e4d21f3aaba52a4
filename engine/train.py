"""``train_ch13``: the book's function, composed from two Engines and handlers."""
from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from ignite.engine import Engine
from torch import nn

from engine.train_recipe import attach_book_recipe
from engine.checks import check_epochs, check_loader, check_net, check_schedule, updates_per_epoch
from engine.distributed import is_main_process, release_process_group
from engine.factories import create_evaluator, create_trainer
from engine.step_options import StepOptions
from engine.placement import place
from handlers.plot.policy import announce, default_plotter, plots_enabled
from engine.recipe import Recipe
from engine.resume import resume_run
from handlers import History, VisdomPlotter
from handlers.guards import Stopped
from handlers.progress import Progress

__all__ = ["train_ch13", "run_title"]


def _plotter(plot: bool | VisdomPlotter | None, out_dir: str | None) -> VisdomPlotter | None:
    """``plot=True``: a plotter of this run's own (see ``handlers.plot.policy``), unless ``$D2L_IGNITE_PLOT=0``;
    a ``VisdomPlotter``: the caller's, flushed at the end but left open; False/None: none."""
    if plot is True:
        return default_plotter(out_dir) if plots_enabled() else None
    if plot is None or plot is False:
        return None
    if not isinstance(plot, VisdomPlotter):
        raise TypeError(f"plot must be True, False or a handlers.VisdomPlotter, got {type(plot).__name__}")
    return plot


def run_title(net: nn.Module, optimizer: torch.optim.Optimizer, train_iter: Iterable) -> str:
    """What ran, for the plot's title: model class, optimizer and learning rate, batch size."""
    lr = optimizer.param_groups[0].get("lr") if optimizer.param_groups else None
    batch = getattr(train_iter, "batch_size", None)
    return ", ".join([type(net).__name__, f"{type(optimizer).__name__} lr {lr:g}" if isinstance(lr, float) else
                      type(optimizer).__name__] + ([f"batch {batch}"] if batch else []))


def train_ch13(
    net: nn.Module,
    train_iter: Iterable,
    test_iter: Iterable,
    loss: Callable[..., torch.Tensor],
    trainer: torch.optim.Optimizer,
    num_epochs: int,
    devices: Sequence[Any] | None = None,
    *,
    progress: Progress = None,
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
    ``plot=True`` streams the book's curves to Visdom from a background thread: ``$VISDOM_URL``, else a
    local server started once per process (see ``handlers.plot.policy``); the link is printed (and shown
    inline in Jupyter); ``out_dir`` (default ``runs/<env>``) gets the PNG, and the replay log when no
    server took the points. A ``VisdomPlotter`` passed as ``plot`` is flushed, not closed.
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
    check_net(net)
    train_iter = check_loader("train_iter", train_iter, num_epochs)
    test_iter = check_loader("test_iter", test_iter, num_epochs)
    run = place(net, train_iter, test_iter, devices, distributed)
    options = StepOptions(amp, accumulation_steps, clip_grad_norm, channels_last, compile, fast).resolve(
        run.device, net, trainer)
    if run.epoch_length is not None:
        check_schedule(lr_scheduler, num_epochs, updates_per_epoch(run.train_iter, options.accumulation_steps),
                       scheduler_every)
    engine = create_trainer(run.model, loss, trainer, run.devices[:1], world_size=run.world_size, **vars(options))
    evaluator = create_evaluator(run.model, run.devices[:1], amp=options.amp, channels_last=options.channels_last,
                                 compile=options.compile, loss=loss if early_stopping_metric == "test_loss" else None)
    main = is_main_process()
    plotter = _plotter(plot, out_dir) if main else None
    recipe = attach_book_recipe(
        engine, evaluator, run.test_iter, num_epochs=num_epochs, device=run.device, devices_label=run.label,
        to_save={"model": net, "optimizer": trainer}, train_iter=run.train_iter, plotter=plotter,
        lr_scheduler=lr_scheduler, scheduler_every=scheduler_every, plot_lr=plot_lr, early_stopping=early_stopping,
        early_stopping_metric=early_stopping_metric, checkpoint_dir=checkpoint_dir, handlers=handlers,
        progress=progress if main else False, plot_title=run_title(net, trainer, train_iter))
    if resume is not None:
        resume_run(resume, recipe.to_save, num_epochs, run.epoch_length)
    if plotter is not None and plotter.live:
        announce(plotter)
    try:
        engine.run(run.train_iter, max_epochs=num_epochs)
    finally:
        recipe.attached["interrupt"].restore()
        if plotter is not None:
            plotter.close(png_in_background=True) if plot is True else plotter.flush()
    net.eval()
    outcome = _report(recipe, verbose and main, main)
    if run.world_size > 1:  # free the DDP wrapper now, while the interpreter is whole (release_process_group)
        del engine, evaluator, recipe, run
        release_process_group()
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _report(recipe: Recipe, verbose: bool, main: bool) -> History | BaseException:
    """The book's closing lines; or the error that stopped the run (nan loss, Ctrl-C), returned to be raised
    once the run's objects are let go."""
    saved, history = recipe.attached["checkpoints"], recipe.attached["history"]
    guard = recipe.attached["guard"]
    if guard.iteration is not None:
        return FloatingPointError(guard.message(_last_file(saved.get("last"))))
    if verbose and history.train_loss:
        print(history.summary())
    if recipe.attached["interrupt"].requested:
        return _stopped_by_user(recipe.trainer, saved.get("interrupted"), main, recipe.attached["interrupt"].signum)
    return history


def _last_file(checkpoint: Any) -> str | None:
    """The file a checkpoint handler wrote last (Ignite's ``last_checkpoint`` already includes its folder)."""
    return None if checkpoint is None or checkpoint.last_checkpoint is None else str(checkpoint.last_checkpoint)


def _stopped_by_user(engine: Engine, checkpoint: Any, speak: bool, signum: int | None) -> Stopped:
    at = f"epoch {engine.state.epoch}, iteration {engine.state.iteration}"
    path = _last_file(checkpoint)
    how = (f"saved {path}; continue with resume={path!r} (CLI: --resume {path}); the rest of that epoch sees a "
           "fresh shuffle" if path else "no checkpoint_dir was given, nothing was saved")
    if speak:
        print(f"Interrupted at {at}: {how}", file=sys.stderr, flush=True)
    return Stopped(signum or signal.SIGINT, f"interrupted at {at}")
