"""``train_ch13``: the book's function, composed from two Engines and handlers."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields, replace
from typing import Any

import torch
from ignite.engine import Engine
from torch import nn

from engine.checks import check_ema, check_epochs, check_loader, check_net, check_schedule, updates_per_epoch
from engine.distributed import is_main_process, release_process_group
from engine.factories import create_evaluator, create_trainer
from engine.keywords import split_keywords, with_keywords
from engine.loader_view import view
from engine.manifest import RunManifest
from engine.placement import Placement, place, run_device
from engine.recipe import Part
from engine.resume import ContinueEpoch, resume_run
from engine.settings import RecipeSettings
from engine.step_options import StepOptions, channels_last_weights
from engine.train_recipe import BookRecipe, attach_book_recipe
from handlers.history import History
from handlers.plot.base import Plotter
from handlers.plot.notebook import show_final
from handlers.plot.backends import run_plotter
from handlers.progress import Progress

__all__ = ["train_ch13", "run_title"]


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
    plot: bool | str | Plotter = True,
    out_dir: str | None = None,
    resume: str | None = None,
    handlers: Sequence[Callable[[Engine, Engine], Any]] = (),
    parts: Sequence[Part] = (),
    distributed: bool | None = None,
    **options: Any,
) -> History:
    """Train like the book's ``train_ch13`` and print its two lines; return the per-epoch History.

    ``devices=None`` means every GPU, else the CPU; several GPUs wrap the net in DataParallel, and under
    ``torchrun`` / ``idist.Parallel`` (``distributed=None`` detects it) DDP. After training the caller's
    ``net`` sits on ``devices[0]`` in eval mode. ``plot``: True for a plotter of the run's own (see
    ``handlers.plot.policy``: ``$D2L_IGNITE_PLOT`` picks the back-end), a back-end's name ("visdom",
    "tensorboard", "off": the record alone), a ``Plotter`` of yours (flushed, not closed), or False (nothing,
    unless ``out_dir`` asks for the record).
    ``resume`` continues a checkpoint file or run folder. ``handlers`` (``f(trainer, evaluator)``) and
    ``parts`` (``engine.Part``, placed by stage) add your own. The other keywords are the fields of
    ``StepOptions`` (how a step runs) and ``RecipeSettings`` (what is attached); the README lists them.
    """
    step_kw, setting_kw = split_keywords("train_ch13", options, StepOptions, RecipeSettings)
    step, settings = StepOptions(**step_kw), RecipeSettings(**setting_kw)
    num_epochs = check_epochs(num_epochs)
    check_net(net)
    train_iter = check_loader("train_iter", train_iter, num_epochs)
    test_iter = check_loader("test_iter", test_iter, num_epochs)
    step = step.resolve(run_device(devices, distributed), net, trainer)
    if step.channels_last:  # before DDP builds its gradient buckets from the weights' strides
        channels_last_weights(net)
    run = place(net, train_iter, test_iter, devices, distributed)
    if run.epoch_length is not None:
        per_epoch = updates_per_epoch(run.train_iter, step.accumulation_steps)
        check_schedule(settings.lr_scheduler, num_epochs, per_epoch, settings.scheduler_every)
        check_ema(settings.ema, num_epochs * per_epoch)
    engine = create_trainer(run.model, loss, trainer, run.devices[:1], world_size=run.world_size, options=step)
    evaluator = create_evaluator(run.model, run.devices[:1], options=step,
                                 loss=loss if settings.wants_test_loss else None)
    main = is_main_process()
    plotter, owned = run_plotter(plot, out_dir) if main else (None, False)
    try:
        recipe, run = _prepared(net, trainer, engine, evaluator, run, settings, step, plotter, num_epochs, resume,
                                handlers, parts, progress if main else False, run_title(net, trainer, train_iter))
    except BaseException:
        if owned:
            plotter.discard()  # a run that never started leaves no record
        raise
    manifest = RunManifest(plotter.out_dir, plotter.env, net, trainer, train_iter, num_epochs,
                           _chosen(options), run.label) if plotter is not None and plotter.out_dir else None
    return _run(recipe, run, num_epochs, (plotter, owned), verbose and main, main, manifest)


def _prepared(net: nn.Module, trainer: torch.optim.Optimizer, engine: Engine, evaluator: Engine, run: Placement,
              settings: RecipeSettings, step: StepOptions, plotter: Plotter | None, num_epochs: int,
              resume: str | None, handlers: Sequence[Callable[[Engine, Engine], Any]], parts: Sequence[Part],
              progress: Progress, title: str) -> tuple[BookRecipe, Placement]:
    """The recipe attached and, when resuming, the checkpoint loaded: everything that can refuse the run."""
    recipe = attach_book_recipe(
        engine, evaluator, run.test_iter, settings, num_epochs=num_epochs, device=run.device, devices_label=run.label,
        to_save={"model": net, "optimizer": trainer}, train_iter=run.train_iter, plotter=plotter, handlers=handlers,
        parts=parts, progress=progress, plot_title=title, step_options=step)
    if resume is not None:
        per_epoch = updates_per_epoch(run.train_iter, step.accumulation_steps) if run.epoch_length else None
        try:
            skip = resume_run(resume, recipe.to_save, num_epochs, run.epoch_length, per_epoch)
        except BaseException:
            recipe.checkpoints.abandon()  # a folder made for this run goes with it
            raise
        if skip:  # a Ctrl-C mid-epoch: that epoch goes on with the examples it had not seen
            rng = recipe.attached.get("rng")
            run = replace(run, train_iter=view(ContinueEpoch, run.train_iter, skip,
                                               rng.restore_now if rng else lambda: None))
    return recipe, run


def _chosen(options: dict[str, Any]) -> dict[str, Any]:
    """The keywords that change what is computed and differ from their defaults: a manifest's hyper-parameters."""
    defaults = {f.name: f.default for cls in (StepOptions, RecipeSettings) for f in fields(cls)}
    shown_elsewhere = ("checkpoint_dir", "plot_lr", "plot_log_y")
    return {k: v for k, v in options.items() if k not in shown_elsewhere and defaults.get(k, object()) != v}


def _run(recipe: BookRecipe, run: Placement, num_epochs: int, plots: tuple[Plotter | None, bool],
         verbose: bool, main: bool, manifest: RunManifest | None = None) -> History:
    """Run the placed Engines; close the plots (or flush a caller's); the closing lines; let DDP's objects go."""
    plotter, owned = plots
    if plotter is not None and plotter.live:
        plotter.announce()
    status = "failed"
    try:
        recipe.trainer.run(run.train_iter, max_epochs=num_epochs)
        stopped_by_nan = recipe.guard.iteration is not None
        status = "interrupted" if recipe.interrupt.requested else "failed" if stopped_by_nan else "finished"
    finally:
        if manifest is not None:
            manifest.finish(status, recipe.history.last())
        recipe.interrupt.restore()
        if plotter is not None:
            plotter.close(png_in_background=True) if owned else plotter.flush()
    if plotter is not None and "plot" in recipe.attached:  # in Jupyter, an image the saved notebook keeps
        show_final(plotter.store, recipe.attached["plot"].windows)
    recipe.to_save["model"].eval()
    outcome = recipe.finish(verbose, main)
    if run.world_size > 1:  # free the DDP wrapper now, while the interpreter is whole (release_process_group)
        del recipe, run
        release_process_group()
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


with_keywords(train_ch13, StepOptions, RecipeSettings)
