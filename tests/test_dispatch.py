"""The factories' Engine dispatches events exactly as Ignite's, without the per-event debug line."""
from __future__ import annotations

import logging
import weakref

import ignite.engine
import pytest
import torch
from ignite.engine import Events, EventEnum
from torch import nn

from engine import create_evaluator, create_trainer
from engine.dispatch import Engine


class Custom(EventEnum):
    PING = "ping"


def record(cls: type[ignite.engine.Engine]) -> list:
    seen: list = []
    engine = cls(lambda e, batch: batch * 2)
    engine.register_events(*Custom)
    engine.add_event_handler(Events.STARTED, lambda e, tag, n=0: seen.append(("started", tag, n, e is engine)),
                             "a", n=3)
    engine.add_event_handler(Events.ITERATION_COMPLETED(every=2), lambda e: seen.append(("it", e.state.output)))
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda: seen.append("no-engine handler"))
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.fire_event(Custom.PING))
    engine.add_event_handler(Custom.PING, lambda e: seen.append(("ping", e.state.epoch)))
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=5), lambda e: e.terminate_epoch())
    engine.add_event_handler(Events.TERMINATE_SINGLE_EPOCH, lambda e, iter_counter: seen.append(("cut", iter_counter)))
    engine.add_event_handler(Events.COMPLETED, lambda e: seen.append(("done", e.state.iteration, e.last_event_name)))
    engine.run(range(4), max_epochs=2)
    return seen


def test_handlers_see_what_ignites_engine_gives_them():
    ours, ignites = record(Engine), record(ignite.engine.Engine)
    assert ours == ignites
    assert ("started", "a", 3, True) in ours and ("cut", 1) in ours and ("ping", 2) in ours


def test_the_factories_engines_are_ignite_engines_of_this_class():
    net = nn.Linear(4, 3)
    trainer = create_trainer(net, nn.CrossEntropyLoss(reduction="none"), torch.optim.SGD(net.parameters(), 0.1))
    for e in (trainer, create_evaluator(net)):
        assert isinstance(e, Engine) and isinstance(e, ignite.engine.Engine)


def test_debug_logging_still_gets_ignites_line(caplog):
    engine = Engine(lambda e, batch: None)
    with caplog.at_level(logging.DEBUG, logger=engine.logger.name):
        engine.run([1], max_epochs=1)
    assert any("Firing handlers for event Events.ITERATION_COMPLETED" in r.getMessage() for r in caplog.records)


def test_a_dead_engine_reference_is_an_error_as_in_ignite():
    class Gone:
        pass

    engine = Engine(lambda e, batch: None)
    engine.add_event_handler(Events.STARTED, lambda e: None)
    func, _, kwargs = engine._event_handlers[Events.STARTED][0]
    engine._event_handlers[Events.STARTED][0] = (func, (weakref.ref(Gone()),), kwargs)  # dead at once
    with pytest.raises(RuntimeError, match="Engine reference not resolved"):
        engine.run([1], max_epochs=1)


def test_the_error_that_ends_a_run_is_raised_not_logged_twice_more(caplog):
    def boom(engine):
        raise ValueError("boom")

    logged = {}
    for cls in (Engine, ignite.engine.Engine):
        engine = cls(lambda e, batch: None)
        engine.add_event_handler(Events.ITERATION_COMPLETED, boom)
        caplog.clear()
        with caplog.at_level(logging.ERROR), pytest.raises(ValueError, match="boom"):
            engine.run([1], max_epochs=1)
        logged[cls] = [r.getMessage() for r in caplog.records if "terminating due to exception" in r.getMessage()]
    assert logged[Engine] == [] and len(logged[ignite.engine.Engine]) == 2  # Ignite's own Engine keeps its lines


def test_fire_registered_dispatches_as_fire_event():
    def calls(fire):
        seen: list = []
        engine = Engine(lambda e, batch: fire(e))
        engine.register_events(*Custom)
        engine.add_event_handler(Custom.PING, lambda e, tag="x": seen.append((e.state.iteration, tag)), tag="t")
        engine.add_event_handler(Custom.PING, lambda: seen.append("no-engine handler"))
        engine.run(range(3), max_epochs=1)
        return seen

    assert calls(lambda e: e.fire_registered(Custom.PING)) == calls(lambda e: e.fire_event(Custom.PING))
    assert calls(lambda e: e.fire_registered(Custom.PING))[:2] == [(1, "t"), "no-engine handler"]
