"""The book's plot cadence, decided once: about 5 points during an epoch plus its last batch."""
from __future__ import annotations

import weakref

from ignite.engine import Engine, EventEnum, Events
from ignite.metrics.metric import MetricUsage

__all__ = ["book_cadence", "BOOK_POINTS", "BookCadence", "BookEvents", "book_points", "take_book_points",
           "epoch_fraction", "next_book_point"]

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


def next_book_point(engine: Engine) -> int:
    """The iteration of the first book point after ``engine.state.iteration`` (the same points as
    ``book_cadence``), so a handler compares one number per iteration instead of asking the cadence."""
    it = engine.state.iteration
    i, n = _position(engine)
    if n is None:
        return it + 1
    k = max(n // 5, 1)
    return it + k if i == n else it + min((i // k + 1) * k, n) - i


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


class BookEvents(EventEnum):
    """``BOOK_POINT``: a book point whose running figures are computed. Everything that reads them (plots,
    the NaN guard, DDP's stop agreement, your handlers) attaches here, in the recipe's stage order."""

    BOOK_POINT = "book_point"


_fired_by_cadence: weakref.WeakSet[Engine] = weakref.WeakSet()  # BOOK_POINT comes from _fire on these


def book_points(engine: Engine) -> BookEvents:
    """``BookEvents.BOOK_POINT`` on ``engine``, made to fire: by ``RunningMetrics`` once they are attached
    (after computing the figures), else at the book's cadence itself."""
    if not engine.has_registered_events(BookEvents.BOOK_POINT):
        engine.register_events(*BookEvents)
        _fired_by_cadence.add(engine)
        engine.add_event_handler(BOOK_POINTS, _fire)
    return BookEvents.BOOK_POINT


def take_book_points(engine: Engine) -> BookEvents:
    """For the one handler that computes the figures: the caller fires ``BOOK_POINT`` from now on."""
    book_points(engine)
    if engine in _fired_by_cadence:
        _fired_by_cadence.discard(engine)
        engine.remove_event_handler(_fire, Events.ITERATION_COMPLETED)
    return BookEvents.BOOK_POINT


def _fire(engine: Engine) -> None:
    engine.fire_event(BookEvents.BOOK_POINT)
