"""The book's Animator window for train_ch13: train loss/acc at the cadence, test acc per epoch."""
from __future__ import annotations

from ignite.engine import Engine, Events

from handlers.cadence import BOOK_POINTS, epoch_fraction
from handlers.plot.plotter import VisdomPlotter

__all__ = ["attach_book_plot", "BOOK_LEGEND"]

BOOK_LEGEND = ("train loss", "train acc", "test acc")


def attach_book_plot(
    plotter: VisdomPlotter, trainer: Engine, evaluator: Engine, num_epochs: int, window: str = "train_ch13"
) -> VisdomPlotter:
    """Attach after the metrics and the evaluation handler, so each point reads fresh values."""
    plotter.window(window, BOOK_LEGEND, title=f"{plotter.env}: train_ch13", xlabel="epoch",
                   xlim=(1, num_epochs), ylim=(0, 1))
    plotter.attach(trainer, BOOK_POINTS,
                   {"train loss": lambda e: e.state.metrics["loss"], "train acc": lambda e: e.state.metrics["acc"]},
                   x=epoch_fraction, window=window)
    plotter.attach(trainer, Events.EPOCH_COMPLETED, {"test acc": lambda e: evaluator.state.metrics["acc"]},
                   x=lambda e: e.state.epoch, window=window)
    return plotter
