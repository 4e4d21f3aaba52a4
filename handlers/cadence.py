"""The book's plot cadence, decided once: about 5 points during an epoch plus its last batch."""
from __future__ import annotations

from ignite.engine import Engine, Events
from ignite.metrics.metric import MetricUsage

__all__ = ["book_cadence", "BOOK_POINTS", "BookCadence", "epoch_fraction"]

def _position(engine: Engine) -> tuple[int, int | None]:
    n = engine.state.epoch_length
    if n is None:
        return engine.state.iteration, None
    return (engine.state.iteration - 1) % n + 1, n


def book_cadence(engine: Engine, _event: int | None = None) -> bool:
    """True at batch ``i`` when ``i % (n // 5) == 0`` or ``i == n`` (n batches an epoch).

    Unlike the book, fewer than 5 batches still works (every batch is a point). An iterable of unknown
    length reads every batch until Ignite learns the length at the end of the first epoch.
    """
    i, n = _position(engine)
    if n is None:
        return True
    return i % max(n // 5, 1) == 0 or i == n


def epoch_fraction(engine: Engine) -> float:
    """The book's x coordinate: ``epoch - 1 + i / n`` during epoch ``epoch`` (1-based)."""
    i, n = _position(engine)
    return engine.state.epoch - 1 + (i / n if n else 1.0)


BOOK_POINTS = Events.ITERATION_COMPLETED(event_filter=book_cadence)
"""The book's plot points as an event: ``@trainer.on(BOOK_POINTS)``."""


class BookCadence(MetricUsage):
    """Metric usage: accumulate every batch, compute (one host sync) only at the book's cadence."""

    usage_name = "book_cadence"

    def __init__(self) -> None:
        super().__init__(
            started=Events.EPOCH_STARTED,
            completed=Events.ITERATION_COMPLETED(event_filter=book_cadence),
            iteration_completed=Events.ITERATION_COMPLETED,
        )
