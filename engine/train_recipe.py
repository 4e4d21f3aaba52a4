"""The book's ``train_ch13`` handlers as one recipe, usable on Engines you build yourself.

``attach_book_recipe(trainer, evaluator, test_iter, num_epochs=...)`` gives a trainer what
``train_ch13`` gives it: the step timer, the running loss and accuracy at the book's cadence, a test
pass each epoch, the History, and (as ``RecipeSettings`` ask) plots, an LR schedule, the EMA of the
weights, early stopping, the NaN guard, checkpoints, Ctrl-C handling and a progress bar -- each in
its ``Stage``. The result is a ``BookRecipe``: its typed fields, and ``finish()`` that ends the run.
"""
from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.exceptions import NotComputableError

from engine.distributed import attach_sampler_epoch
from engine.ema import EmaWeights
from engine.factories import create_evaluator
from engine.keywords import updated
from engine.recipe import Part, Recipe, Stage
from engine.settings import RecipeSettings
from engine.step_options import StepOptions
from handlers.checkpoint import Checkpoints, RngState, attach_checkpoints
from handlers.contract import grad_scaler
from handlers.guards import Interrupt, NonFiniteGuard, Stopped
from handlers.history import History
from handlers.lr_schedule import attach_lr_scheduler, current_lr
from handlers.plot.base import Plotter
from handlers.plot.run_windows import RunWindows
from handlers.plot.windows import attach_book_plot, attach_lr_plot
from handlers.progress import Progress, attach_epoch_lines, attach_progress, wants_progress
from handlers.running import RunningMetrics
from handlers.stopping import attach_early_stopping
from handlers.throughput import StepTimer

__all__ = ["attach_book_metrics", "book_recipe", "attach_book_recipe", "BookRecipe", "UserHandler"]

UserHandler = Callable[[Engine, Engine], Any]
REQUIRED = ("metrics", "evaluate", "history", "sampler_epoch", "rng", "guard", "checkpoints", "interrupt")


def attach_book_metrics(trainer: Engine, device: torch.device | str = "cpu") -> StepTimer:
    """The book's running figures on any trainer (one handler per event): the step timer, and loss
    and acc at the book's cadence in ``state.metrics``."""
    return RunningMetrics(device).attach(trainer).timer


class BookRecipe(Recipe):
    """The book's recipe: what ``train_ch13`` reads after the run, typed, and the run's ending."""

    @property
    def history(self) -> History:
        return self.attached["history"]

    @property
    def guard(self) -> NonFiniteGuard:
        return self.attached["guard"]

    @property
    def interrupt(self) -> Interrupt:
        return self.attached["interrupt"]

    @property
    def checkpoints(self) -> Checkpoints:
        return self.attached["checkpoints"]

    def finish(self, verbose: bool = True, speak: bool = True) -> History | BaseException:
        """The book's closing lines and the History; or the error that stopped the run (nan loss, Ctrl-C),
        returned for the caller to raise once the run's objects are let go."""
        if self.guard.iteration is not None:
            return FloatingPointError(self.guard.message(self.checkpoints.last_file()))
        if verbose and self.history.train_loss:
            print(self.history.summary())
        if self.interrupt.requested:
            return self._stopped(speak)
        return self.history

    def _stopped(self, speak: bool) -> Stopped:
        at = f"epoch {self.trainer.state.epoch}, iteration {self.trainer.state.iteration}"
        path = self.checkpoints.last_file("interrupted")
        how = (f"saved {path}; continue with resume={path!r} (CLI: --resume {path}): that epoch goes on with the "
               "examples it had not seen" if path else "no checkpoint_dir was given, nothing was saved")
        if speak:
            print(f"Interrupted at {at}: {how}", file=sys.stderr, flush=True)
        return Stopped(self.interrupt.signum or signal.SIGINT, f"interrupted at {at}")


def book_recipe(
    trainer: Engine,
    evaluator: Engine,
    test_iter: Iterable,
    settings: RecipeSettings | None = None,
    *,
    num_epochs: int,
    device: torch.device | str = "cpu",
    to_save: dict[str, Any] | None = None,
    devices_label: str | None = None,
    train_iter: Iterable | None = None,
    plotter: Plotter | None = None,
    handlers: Sequence[UserHandler] = (),
    parts: Sequence[Part] = (),
    progress: Progress = False,
    plot_title: str | None = None,
    step_options: StepOptions | None = None,
    **setting_keywords: Any,
) -> BookRecipe:
    """The recipe, not yet attached: add (or replace) parts, print ``describe()``, then ``attach()``.

    ``settings`` (or its fields as keywords) choose the optional handlers. ``to_save`` starts the
    checkpoint registry (``train_ch13`` puts the model and optimizer there; the trainer is always
    added; ``ema`` averages ``to_save["model"]``, tested with ``step_options``). ``devices_label`` is the
    device list the closing line prints. Each of ``handlers`` is called as ``f(trainer, evaluator)`` in the
    USER stage and what it returns is checkpointed as ``handlers[i]``; ``parts`` are added as they are.
    ``progress``: True/"bar" a bar, "epochs" a line per epoch on stderr, None a bar on a terminal or in
    Jupyter, False nothing.
    """
    settings = updated(settings, RecipeSettings, setting_keywords)
    r = BookRecipe(trainer, evaluator, dict(to_save or {}, trainer=trainer), required=REQUIRED)
    if grad_scaler(trainer) is not None:
        r.to_save["scaler"] = grad_scaler(trainer)
    label = str([torch.device(device)]) if devices_label is None else devices_label
    _book_parts(r, test_iter, train_iter, device, label, settings)
    ema = _ema_part(r, test_iter, settings, device, step_options)
    if plotter is not None:
        r.add("plot", lambda r: _plots(plotter, r, num_epochs, settings, plot_title, ema), Stage.PLOT, save="plot")
    for i, attach in enumerate(handlers):
        r.add(f"handlers[{i}]", lambda r, attach=attach: attach(trainer, evaluator), Stage.USER, save=f"handlers[{i}]")
    for part in parts:
        r.add(part)
    _optional_parts(r, settings, progress)
    return r


def _book_parts(r: BookRecipe, test_iter: Iterable, train_iter: Iterable | None, device: torch.device | str,
                label: str, settings: RecipeSettings) -> None:
    """The parts every book run has (``REQUIRED``), each in its stage."""
    trainer, evaluator = r.trainer, r.evaluator
    r.add("metrics", lambda r: RunningMetrics(device).attach(trainer), Stage.TIMER, save="timer")
    r.add("evaluate", lambda r: trainer.add_event_handler(Events.EPOCH_COMPLETED, _evaluate, evaluator, test_iter),
          Stage.EVALUATE)
    r.add("history", lambda r: History(devices=label).attach(trainer, evaluator, _ema_evaluator(r)), Stage.RECORD,
          save="history")
    r.add("sampler_epoch", lambda r: attach_sampler_epoch(trainer, train_iter), Stage.RECORD)
    r.add("rng", lambda r: RngState([train_iter] if train_iter is not None else []).attach(trainer), Stage.RNG,
          save="rng")
    r.add("guard", lambda r: NonFiniteGuard().attach(trainer), Stage.GUARD)
    r.add("checkpoints", lambda r: Checkpoints() if settings.checkpoint_dir is None else attach_checkpoints(
        trainer, r.to_save, settings.checkpoint_dir, score=lambda _: evaluator.state.metrics["acc"]), Stage.CHECKPOINT)
    r.add("interrupt", lambda r: Interrupt(r.checkpoints.interrupted).attach(trainer), Stage.INTERRUPT)


def _optional_parts(r: BookRecipe, settings: RecipeSettings, progress: Progress) -> None:
    s, trainer = settings, r.trainer
    if s.lr_scheduler is not None:
        r.add("lr_scheduler", lambda r: attach_lr_scheduler(trainer, s.lr_scheduler, s.scheduler_every),
              Stage.SCHEDULE, save="lr_scheduler")
    if s.early_stopping is not None:
        r.add("early_stopping", lambda r: attach_early_stopping(trainer, r.evaluator, s.early_stopping,
                                                                s.early_stopping_metric), Stage.STOPPING,
              save="early_stopping")
    if progress == "epochs":
        r.add("progress", lambda r: attach_epoch_lines(trainer, r.evaluator, _ema_evaluator(r)), Stage.PROGRESS)
    elif wants_progress(progress):
        r.add("progress", lambda r: attach_progress(trainer), Stage.PROGRESS)


def _ema_part(r: BookRecipe, test_iter: Iterable, settings: RecipeSettings, device: torch.device | str,
              options: StepOptions | None) -> EmaWeights | None:
    if settings.ema is None:
        return None
    model = r.to_save.get("model")
    if not isinstance(model, torch.nn.Module):
        raise ValueError("ema averages the model's weights: pass the model as to_save={'model': net}")
    ema = EmaWeights(model, settings.ema)
    evaluator = create_evaluator(ema.model, [device], options=options)
    r.add("ema", lambda r: ema.attach(r.trainer, _evaluate, evaluator, test_iter), Stage.EVALUATE, save="ema")
    return ema


def _ema_evaluator(r: Recipe) -> Engine | None:
    ema = r.attached.get("ema")
    return ema.evaluator if ema is not None else None


def _evaluate(trainer: Engine, evaluator: Engine, test_iter: Iterable) -> None:
    try:
        evaluator.run(test_iter)
    except NotComputableError:
        raise ValueError(f"test_iter gave no non-empty batch in epoch {trainer.state.epoch} (every batch had 0 labels, "
                         "or it yields nothing when iterated again); check the test set") from None


def attach_book_recipe(trainer: Engine, evaluator: Engine, test_iter: Iterable, *args: Any,
                       **options: Any) -> BookRecipe:
    """``book_recipe(...)`` attached at once: the usual call when you add no parts of your own."""
    return book_recipe(trainer, evaluator, test_iter, *args, **options).attach()


def _plots(plotter: Plotter, r: Recipe, num_epochs: int, settings: RecipeSettings, title: str | None,
           ema: EmaWeights | None) -> RunWindows:
    """The run's windows on ``plotter``; what checkpoints keep of the plot is these windows alone."""
    before = set(plotter.store.windows)
    attach_book_plot(plotter, r.trainer, r.evaluator, num_epochs, title=title,
                     ema_evaluator=ema.evaluator if ema is not None else None, log_y=settings.plot_log_y)
    if settings.plot_lr and settings.lr_scheduler is not None:
        attach_lr_plot(plotter, r.trainer, lambda: current_lr(settings.lr_scheduler))
    return RunWindows(plotter, [w for w in plotter.store.windows if w not in before])
