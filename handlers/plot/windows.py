"""The book's Animator window for train_ch13: train loss/acc at the cadence, test acc per epoch."""
from __future__ import annotations

from ignite.engine import Engine, Events

from handlers.cadence import BOOK_POINTS, epoch_fraction
from handlers.plot.plotter import VisdomPlotter

__all__ = ["attach_book_plot", "BOOK_LEGEND"]

BOOK_LEGEND = ("train loss", "train acc", "test acc")


def attach_book_plot(
    plotter: VisdomPlotter, trainer: Engine, evaluator: Engine, num_epochs: int, window: str = "train_ch13",
    title: str | None = None,
) -> VisdomPlotter:
    """Attach after the metrics and the evaluation handler, so each point reads fresh values.

    A plotter that already has the window (a second run on it) gets a new one, as the book draws a
    new figure per call. The frame holds every point: x from 0 to ``num_epochs``, y from 0 to 1 or
    up to the largest value (a loss above 1).
    """
    window = plotter.new_window_name(window)
    plotter.window(window, BOOK_LEGEND, title=f"train_ch13: {title}" if title else f"{plotter.env}: train_ch13",
                   xlabel="epoch", xlim=(0, num_epochs), ylim=(0, 1),
                   extra={"markers": True, "markersize": 5, "width": 640, "height": 420, "grow_y": True})
    plotter.attach(trainer, BOOK_POINTS,
                   {"train loss": lambda e: e.state.metrics["loss"], "train acc": lambda e: e.state.metrics["acc"]},
                   x=epoch_fraction, window=window)
    plotter.attach(trainer, Events.EPOCH_COMPLETED, {"test acc": lambda e: evaluator.state.metrics["acc"]},
                   x=lambda e: e.state.epoch, window=window)
    return plotter
