"""Every window ``train_ch13`` draws, defined here and nowhere else.

The book's Animator window (train loss/acc at the cadence, test acc per epoch, and the EMA weights'
test acc when they are kept) and the learning-rate window. A new window is a function here and one
line in the recipe that attaches it (``engine/train_recipe.py``).
"""
from __future__ import annotations

from collections.abc import Callable

from ignite.engine import Engine, Events

from handlers.cadence import book_points, epoch_fraction
from handlers.figures import Figures
from handlers.plot.base import FEW_POINTS, Plotter

__all__ = ["attach_book_plot", "attach_lr_plot", "BOOK_LEGEND", "EMA_TRACE"]

BOOK_LEGEND = ("train loss", "train acc", "test acc")
EMA_TRACE = "test acc (ema)"


def attach_book_plot(
    plotter: Plotter, trainer: Engine, evaluator: Engine, num_epochs: int, window: str = "train_ch13",
    title: str | None = None, ema_evaluator: Engine | None = None, log_y: bool = False,
) -> Plotter:
    """Attach after the metrics and the evaluation handler, so each point reads fresh values. The traces are the
    Engines' figures (``handlers.figures``): the trainer's metrics at the book's points, the evaluators' at each
    epoch's end, so a metric attached to either is drawn here too (the book's three come first, in its order).

    A plotter that already has the window (a second run on it) gets a new one, as the book draws a
    new figure per call. The frame holds every point: x from 0 to ``num_epochs``, y from 0 to 1 or
    up to the largest value (a loss above 1). ``ema_evaluator``: its acc is a fourth trace. Traces are lines
    (Visdom smooths only those), with markers too while the run has a handful of points.
    """
    window = plotter.new_window_name(window)
    legend = BOOK_LEGEND + ((EMA_TRACE,) if ema_evaluator is not None else ())
    few = num_epochs * 6 <= FEW_POINTS  # the book's 5 points an epoch and the test pass
    plotter.window(window, legend, title=f"train_ch13: {title}" if title else f"{plotter.env}: train_ch13",
                   xlabel="epoch", xlim=(0, num_epochs), ylim=(0, 1), log_y=log_y,
                   extra={"markers": few, "markersize": 5, "width": 640, "height": 420, "grow_y": not log_y})
    figures = Figures(trainer, evaluator, ema_evaluator)  # every metric of the Engines is a trace (handlers.figures)
    plotter.attach(trainer, book_points(trainer), figures.running, x=epoch_fraction, window=window)
    plotter.attach(trainer, Events.EPOCH_COMPLETED, figures.tests, x=lambda e: e.state.epoch, window=window)
    return plotter


def attach_lr_plot(plotter: Plotter, trainer: Engine, lr: Callable[[], float]) -> Plotter:
    """The rate each update used, per iteration (``lr()`` reads it, e.g. ``current_lr(scheduler)``)."""
    plotter.window("lr", ["lr"], title=f"{plotter.env}: learning rate", xlabel="epoch", ylabel="lr")
    plotter.attach(trainer, Events.ITERATION_COMPLETED, {"lr": lambda _: lr()}, x=epoch_fraction, window="lr")
    return plotter
