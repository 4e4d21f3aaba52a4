"""Ignite's ``Engine`` with an event dispatch that does not format a debug line nobody reads.

Ignite's ``Engine._fire_event`` builds an f-string for ``logger.debug`` on every event, debug logging
on or not: four events an iteration, about a third of the engine's per-iteration cost over a hand
loop on a small step (``python -m bench overhead``). This subclass runs the same handler loop
without that line while debug logging is off, and Ignite's own method (with its line) when it is on.
Everything else is Ignite's: the Engines of ``create_trainer`` / ``create_evaluator`` are this class,
and they log where Ignite's do (``ignite.engine.engine.<class name>``), so ``logging.getLogger("ignite")``
quiets or opens them as Ignite documents.

Ignite logs "... terminating due to exception" before it hands an exception on; when the exception then
reaches the caller, whose report says it once (several processes: once in all), these lines are dropped.
When an ``EXCEPTION_RAISED`` handler keeps the exception from the caller, they are written as Ignite does.
"""
from __future__ import annotations

import logging
import weakref
from typing import Any

import ignite.engine
from ignite.engine import Events

__all__ = ["Engine"]

_ENDING = ("Current run is terminating due to exception", "Engine run is terminating due to exception")


class _HeldLog(logging.LoggerAdapter):
    """Ignite's logger of one Engine, holding back the lines about an exception until its fate is known."""

    _OWN = ("logger", "extra", "merge_extra", "held", "isEnabledFor")

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})
        self.held: list[tuple[Any, tuple, dict]] = []
        self.isEnabledFor = logger.isEnabledFor  # asked for every event: the logger's own, not the adapter's relay

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(msg, str) and msg.startswith(_ENDING):
            self.held.append((msg, args, kwargs))
        else:
            self.logger.error(msg, *args, **kwargs)

    def take(self) -> list[tuple[Any, tuple, dict]]:
        held, self.held = self.held, []
        return held

    def __getattr__(self, name: str) -> Any:  # addHandler, handlers, propagate, ...: the logger's own
        return getattr(self.logger, name)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value) if name in self._OWN else setattr(self.logger, name, value)


# Events fired every iteration, keyed by the plain event: Ignite keys a handler list by the first event object
# registered for it, and a filtered one (``ITERATION_COMPLETED(every=5)``) as the key would make every lookup
# run Ignite's Python ``__eq__`` instead of the dict's identity check (~1 us an iteration each).
_PER_ITERATION = (Events.GET_BATCH_STARTED, Events.GET_BATCH_COMPLETED, Events.ITERATION_STARTED,
                  Events.ITERATION_COMPLETED)


class Engine(ignite.engine.Engine):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logger = _HeldLog(logging.getLogger(f"ignite.engine.engine.{type(self).__name__}"))
        for event in _PER_ITERATION:
            self._event_handlers[event] = []

    def _handle_exception(self, e: BaseException) -> None:
        held = self.logger.take() if isinstance(self.logger, _HeldLog) else []
        super()._handle_exception(e)  # raises when the exception goes on to the caller: the lines are dropped
        for msg, args, kwargs in held:  # an EXCEPTION_RAISED handler kept it: say it as Ignite does
            self.logger.logger.error(msg, *args, **kwargs)

    def fire_registered(self, event_name: Any) -> None:
        """``fire_event`` for an event this Engine registered when it was built (the update events, fired
        inside the step), without Ignite's per-call membership check: a scan of the allowed events with
        EventEnum comparisons, about 5 us a call here, twice per iteration); an event nobody listens to
        costs one lookup."""
        if self._event_handlers.get(event_name):
            self._fire_event(event_name)

    def _fire_event(self, event_name: Any, *event_args: Any, **event_kwargs: Any) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            return super()._fire_event(event_name, *event_args, **event_kwargs)
        self.last_event_name = event_name
        for func, args, kwargs in self._event_handlers[event_name]:  # as Ignite 0.5 calls each handler
            kwargs.update(event_kwargs)
            first: tuple[Any, ...] = ()
            if args and isinstance(args[0], weakref.ref):
                engine = args[0]()
                if engine is None:
                    raise RuntimeError("Engine reference not resolved. Cannot execute event handler.")
                first, args = (engine,), args[1:]
            func(*first, *(event_args + args), **kwargs)
