"""The book's ``train_ch13`` handlers as one recipe, usable on Engines you build yourself.

``attach_book_recipe(trainer, evaluator, test_iter, num_epochs=...)`` gives a trainer what
``train_ch13`` gives it: the step timer, the running loss and accuracy at the book's cadence, a test
pass each epoch, the History, and (as asked) plots, an LR schedule, early stopping, the NaN guard,
checkpoints, Ctrl-C handling and a progress bar -- each in its ``Stage``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.exceptions import NotComputableError

from engine.distributed import attach_sampler_epoch
from engine.recipe import Recipe, Stage
from handlers import History, StepTimer, VisdomPlotter, attach_book_plot
from handlers.progress import Progress, attach_epoch_lines, attach_progress, wants_progress
from handlers.cadence import epoch_fraction
from handlers.checkpoint import RngState, attach_checkpoints
from handlers.contract import grad_scaler
from handlers.running import RunningFigures
from handlers.guards import Interrupt, NonFiniteGuard
from handlers.lr_schedule import attach_lr_scheduler, current_lr
from handlers.stopping import attach_early_stopping

__all__ = ["attach_book_metrics", "book_recipe", "attach_book_recipe", "UserHandler"]

UserHandler = Callable[[Engine, Engine], Any]


def attach_book_metrics(trainer: Engine, device: torch.device | str = "cpu") -> StepTimer:
    """The book's running figures on any trainer (one handler per event): the step timer, and loss
    and acc at the book's cadence in ``state.metrics``."""
    return RunningFigures(device).attach(trainer).timer


def book_recipe(
    trainer: Engine,
    evaluator: Engine,
    test_iter: Iterable,
    *,
    num_epochs: int,
    device: torch.device | str = "cpu",
    to_save: dict[str, Any] | None = None,
    devices_label: str | None = None,
    train_iter: Iterable | None = None,
    plotter: VisdomPlotter | None = None,
    lr_scheduler: Any = None,
    scheduler_every: str = "iteration",
    plot_lr: bool = False,
    early_stopping: int | None = None,
    early_stopping_metric: str = "test_acc",
    checkpoint_dir: str | None = None,
    handlers: Sequence[UserHandler] = (),
    progress: Progress = False,
    plot_title: str | None = None,
) -> Recipe:
    """The recipe, not yet attached: add your own parts (``recipe.add``), then ``recipe.attach()``.

    ``devices_label`` is the device list the closing line prints (default: ``[device]``).
    ``to_save`` starts the checkpoint registry (``train_ch13`` puts the model and optimizer there;
    the trainer is always added). Each of ``handlers`` is called as ``f(trainer, evaluator)`` in the
    USER stage; what it returns is checkpointed as ``handlers[i]`` when it has a ``state_dict``.
    ``progress``: True/"bar" a progress bar, "epochs" a line per epoch on stderr, None a bar on a
    terminal or in Jupyter, False nothing.
    """
    r = Recipe(trainer, evaluator, dict(to_save or {}, trainer=trainer))
    if grad_scaler(trainer) is not None:
        r.to_save["scaler"] = grad_scaler(trainer)
    figures = RunningFigures(device, guard=NonFiniteGuard())  # timer, loss, acc, NaN watch: one handler
    r.add("figures", lambda r: figures.attach(trainer), Stage.TIMER, save="timer")
    r.add("evaluate", lambda r: trainer.add_event_handler(Events.EPOCH_COMPLETED, _evaluate, evaluator, test_iter),
          Stage.EVALUATE)
    label = str([torch.device(device)]) if devices_label is None else devices_label
    r.add("history", lambda r: History(devices=label).attach(trainer, evaluator), Stage.RECORD, save="history")
    r.add("sampler_epoch", lambda r: attach_sampler_epoch(trainer, train_iter), Stage.RECORD)
    if lr_scheduler is not None:
        r.add("lr_scheduler", lambda r: attach_lr_scheduler(trainer, lr_scheduler, scheduler_every), Stage.SCHEDULE,
              save="lr_scheduler")
    if plotter is not None:
        r.add("plot", lambda r: _attach_plots(plotter, r, num_epochs, lr_scheduler if plot_lr else None, plot_title),
              Stage.PLOT, save="plot")
    for i, attach in enumerate(handlers):
        r.add(f"handlers[{i}]", lambda r, attach=attach: attach(trainer, evaluator), Stage.USER, save=f"handlers[{i}]")
    if early_stopping is not None:
        r.add("early_stopping", lambda r: attach_early_stopping(trainer, evaluator, early_stopping,
                                                                early_stopping_metric), Stage.STOPPING,
              save="early_stopping")
    r.add("rng", lambda r: RngState([train_iter] if train_iter is not None else []).attach(trainer), Stage.RNG,
          save="rng")
    r.add("guard", lambda r: figures.at_book_points(figures.guard.check).guard, Stage.GUARD)
    r.add("checkpoints", lambda r: {} if checkpoint_dir is None else attach_checkpoints(
        trainer, r.to_save, checkpoint_dir, score=lambda _: evaluator.state.metrics["acc"]), Stage.CHECKPOINT)
    r.add("interrupt", lambda r: _interrupt(figures, r), Stage.INTERRUPT)
    if progress == "epochs":
        r.add("progress", lambda r: attach_epoch_lines(trainer, evaluator), Stage.PROGRESS)
    elif wants_progress(progress):
        r.add("progress", lambda r: attach_progress(trainer), Stage.PROGRESS)
    return r


def _interrupt(figures: RunningFigures, r: Recipe) -> Interrupt:
    interrupt = Interrupt(r.attached["checkpoints"].get("interrupted")).attach(r.trainer, agree_at_book_points=False)
    figures.at_book_points(interrupt.agree)
    return interrupt


def _evaluate(trainer: Engine, evaluator: Engine, test_iter: Iterable) -> None:
    try:
        evaluator.run(test_iter)
    except NotComputableError:
        raise ValueError(f"test_iter gave no non-empty batch in epoch {trainer.state.epoch} (every batch had 0 labels, "
                         "or it yields nothing when iterated again); check the test set") from None


def attach_book_recipe(trainer: Engine, evaluator: Engine, test_iter: Iterable, **options: Any) -> Recipe:
    """``book_recipe(...)`` attached at once: the usual call when you add no parts of your own."""
    return book_recipe(trainer, evaluator, test_iter, **options).attach()


def _attach_plots(plotter: VisdomPlotter, r: Recipe, num_epochs: int, lr_scheduler: Any,
                  title: str | None) -> VisdomPlotter:
    attach_book_plot(plotter, r.trainer, r.evaluator, num_epochs, title=title)
    if lr_scheduler is not None:
        plotter.attach(r.trainer, Events.ITERATION_COMPLETED, {"lr": lambda _: current_lr(lr_scheduler)},
                       x=epoch_fraction, window="lr")
    return plotter
