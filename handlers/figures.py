"""The book's per-iteration work as one handler per event.

Ignite dispatches every handler of an event, and every event filter, on every iteration. The book's
figures need, per step: stop the step timer, add the batch to the running loss and accuracy (on the
device), keep the loss for the NaN guard; and at the book's points only: compute the figures (one
sync) and run what reads them (the guard's look, DDP's stop agreement). ``BookFigures`` does all of
it in one ``ITERATION_COMPLETED`` handler that decides the cadence once. Each piece (``StepTimer``,
``BookLoss``, ``BookAccuracy``, ``NonFiniteGuard``) still attaches alone to any Engine.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from ignite.engine import Engine, Events

from handlers.cadence import book_cadence
from handlers.guards import NonFiniteGuard
from handlers.metrics import BookAccuracy, BookLoss
from handlers.throughput import StepTimer

__all__ = ["BookFigures"]


class BookFigures:
    """``state.metrics["loss"]``, ``["acc"]`` at the book's points and ``["examples/sec"]`` at epoch end."""

    def __init__(self, device: torch.device | str = "cpu", guard: NonFiniteGuard | None = None) -> None:
        self.timer = StepTimer(device)
        self.metrics = {"loss": BookLoss(), "acc": BookAccuracy()}
        self.guard = guard
        self.at_points: list[Callable[[Engine], Any]] = []  # what reads the figures, in the order added

    def attach(self, trainer: Engine) -> BookFigures:
        trainer.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        trainer.add_event_handler(Events.ITERATION_STARTED, self.timer.start)
        trainer.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self.timer.epoch_completed)
        return self

    def at_book_points(self, handler: Callable[[Engine], Any]) -> BookFigures:
        """Run ``handler`` at each book point, after the figures are computed (no filter of its own)."""
        self.at_points.append(handler)
        return self

    def state_dict(self) -> dict[str, Any]:
        """The timer's totals (the running figures restart each epoch; checkpoints are taken at its end)."""
        return self.timer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.timer.load_state_dict(state)

    def _epoch_started(self, engine: Engine) -> None:
        for metric in self.metrics.values():
            metric.started(engine)

    def _iteration_completed(self, engine: Engine) -> None:
        self.timer.stop(engine)
        for metric in self.metrics.values():
            metric.iteration_completed(engine)
        if self.guard is not None:
            self.guard.watch(engine)
        if book_cadence(engine):
            for name, metric in self.metrics.items():
                metric.completed(engine, name)
            for handler in self.at_points:
                handler(engine)
