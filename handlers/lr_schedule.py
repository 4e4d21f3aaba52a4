"""Learning-rate schedules on an Engine: any torch scheduler or Ignite ``ParamScheduler``, per iteration or epoch."""
from __future__ import annotations

from typing import Any, Literal

import torch
from ignite.engine import Engine, Events
from ignite.handlers import ParamScheduler

from handlers.contract import update_events

__all__ = ["attach_lr_scheduler", "current_lr", "SCHEDULE_EVERY"]

SCHEDULE_EVERY = ("iteration", "epoch")


def current_lr(scheduler: Any) -> float:
    """The first parameter group's learning rate, the figure a plot shows."""
    return float(scheduler.optimizer.param_groups[0]["lr"])


def attach_lr_scheduler(
    trainer: Engine, scheduler: Any, every: Literal["iteration", "epoch"] = "iteration"
) -> Any:
    """Step ``scheduler`` on ``trainer`` and publish the rate as ``trainer.state.metrics["lr"]``.

    ``every="iteration"`` means every optimizer update (``UpdateEvents``: with gradient accumulation,
    every k batches). A torch scheduler steps after each update (or epoch), as its own docs prescribe;
    an Ignite ``ParamScheduler`` sets the value before it, as Ignite's do. ``metrics["lr"]`` is the
    rate the coming update uses.
    """
    if every not in SCHEDULE_EVERY:
        raise ValueError(f"scheduler every={every!r}; use one of {SCHEDULE_EVERY}")
    started, completed = update_events(trainer) if every == "iteration" else (Events.EPOCH_STARTED,
                                                                             Events.EPOCH_COMPLETED)
    if isinstance(scheduler, ParamScheduler):
        trainer.add_event_handler(started, scheduler)
    elif isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler):
        trainer.add_event_handler(completed, lambda _: scheduler.step())
    else:
        raise TypeError(
            f"lr_scheduler must be a torch.optim.lr_scheduler scheduler or an Ignite ParamScheduler, "
            f"got {type(scheduler).__name__}"
        )
    trainer.add_event_handler(update_events(trainer)[0], _publish, scheduler)
    return scheduler


def _publish(engine: Engine, scheduler: Any) -> None:
    engine.state.metrics["lr"] = current_lr(scheduler)
