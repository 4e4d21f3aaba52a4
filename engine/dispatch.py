"""Ignite's ``Engine`` with an event dispatch that does not format a debug line nobody reads.

Ignite's ``Engine._fire_event`` builds an f-string for ``logger.debug`` on every event, debug logging
on or not: four events an iteration, about a third of the engine's per-iteration cost over a hand
loop on a small step (``python -m bench overhead``). This subclass runs the same handler loop
without that line while debug logging is off, and Ignite's own method (with its line) when it is on.
Everything else is Ignite's: the Engines of ``create_trainer`` / ``create_evaluator`` are this class.
Their logger (``engine.dispatch.Engine``) leaves out Ignite's two lines about the exception that ends a
run: the exception reaches the caller, whose report says it once (several processes: once in all).
"""
from __future__ import annotations

import logging
import weakref
from typing import Any

import ignite.engine

__all__ = ["Engine"]


class _RaisedOnce(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Current run is terminating due to exception",
                                               "Engine run is terminating due to exception"))


_LOGGER = logging.getLogger(__name__ + ".Engine")
_LOGGER.addFilter(_RaisedOnce())


class Engine(ignite.engine.Engine):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logger = _LOGGER

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
