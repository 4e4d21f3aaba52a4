"""Learning-rate schedules on an Engine: any torch scheduler or Ignite ``ParamScheduler``, per iteration or epoch."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from ignite.engine import Engine, Events
from ignite.handlers import ParamScheduler

from handlers.contract import optimizer_steps

__all__ = ["attach_lr_scheduler", "current_lr", "SCHEDULE_EVERY"]

SCHEDULE_EVERY = ("iteration", "epoch")


def current_lr(scheduler: Any) -> float:
    """The first parameter group's learning rate, the figure a plot shows."""
    return float(scheduler.optimizer.param_groups[0]["lr"])


def attach_lr_scheduler(
    trainer: Engine, scheduler: Any, every: Literal["iteration", "epoch"] = "iteration"
) -> Any:
    """Step ``scheduler`` on ``trainer`` and publish the rate as ``trainer.state.metrics["lr"]``.

    A torch scheduler steps after each iteration (or epoch), as its own docs prescribe; an Ignite
    ``ParamScheduler`` sets the value before it, as Ignite's do. The rate in ``metrics["lr"]`` is
    the one the last update used.
    """
    if every not in SCHEDULE_EVERY:
        raise ValueError(f"scheduler every={every!r}; use one of {SCHEDULE_EVERY}")
    if isinstance(scheduler, ParamScheduler):
        started = Events.ITERATION_STARTED(event_filter=_new_update(-1)) if every == "iteration" else Events.EPOCH_STARTED
        trainer.add_event_handler(started, scheduler)
    elif isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler):
        completed = Events.ITERATION_COMPLETED(event_filter=_new_update(0)) if every == "iteration" else Events.EPOCH_COMPLETED
        trainer.add_event_handler(completed, lambda _: scheduler.step())
    else:
        raise TypeError(
            f"lr_scheduler must be a torch.optim.lr_scheduler scheduler or an Ignite ParamScheduler, "
            f"got {type(scheduler).__name__}"
        )
    trainer.add_event_handler(Events.ITERATION_STARTED, _publish, scheduler)
    return scheduler


def _new_update(seen: int) -> Callable[[Engine, int], bool]:
    """Per-iteration schedules move once per optimizer update: with gradient accumulation that is
    every k batches (``engine.state.optimizer_steps``, kept by this project's trainer; an Engine
    without it steps every batch)."""
    last = {"steps": seen}

    def fire(engine: Engine, _event: int) -> bool:
        steps = optimizer_steps(engine)
        if steps is None:
            return True
        if steps == last["steps"]:
            return False
        last["steps"] = steps
        return True

    return fire


def _publish(engine: Engine, scheduler: Any) -> None:
    engine.state.metrics["lr"] = current_lr(scheduler)
