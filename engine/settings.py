"""What the book's recipe attaches, as one frozen value: schedules, early stopping, test loss, EMA,
checkpoints. ``train_ch13`` takes its fields as keywords (``engine.keywords``); the CLI maps a flag
to each in ``engine/app/flags.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handlers.lr_schedule import SCHEDULE_EVERY
from handlers.stopping import STOP_METRICS

__all__ = ["RecipeSettings"]


@dataclass(frozen=True, kw_only=True)
class RecipeSettings:
    """The handlers ``train_ch13`` / ``book_recipe`` attach, checked here once."""

    lr_scheduler: Any = None  # a torch LRScheduler or an Ignite ParamScheduler
    scheduler_every: str = "iteration"  # "iteration" (each optimizer update) or "epoch"
    plot_lr: bool = False  # an "lr" window beside the book's
    plot_log_y: bool = False  # the book's window on a log y axis (losses over decades)
    early_stopping: int | None = None  # patience in epochs
    early_stopping_metric: str = "test_acc"
    test_loss: bool | None = None  # the per-example test loss each epoch; None: when early stopping reads it
    ema: float | None = None  # decay of an exponential moving average of the weights (e.g. 0.999), tested too
    checkpoint_dir: str | None = None  # every epoch's state, the best test acc's, and Ctrl-C's

    def __post_init__(self) -> None:
        if self.scheduler_every not in SCHEDULE_EVERY:
            raise ValueError(f"scheduler_every={self.scheduler_every!r}; use one of {SCHEDULE_EVERY}")
        if self.early_stopping_metric not in STOP_METRICS:
            raise ValueError(f"early_stopping_metric={self.early_stopping_metric!r} is unknown; choose one of "
                             f"{sorted(STOP_METRICS)}")
        if self.test_loss is False and self.early_stopping is not None and self.early_stopping_metric == "test_loss":
            raise ValueError("early stopping on test_loss reads the test loss: leave test_loss unset or True")
        if self.ema is not None and not (isinstance(self.ema, float) and 0.0 < self.ema < 1.0):
            raise ValueError(f"ema is the decay of the weights' moving average, a number in (0, 1) such as 0.999; "
                             f"got {self.ema!r}")

    @property
    def wants_test_loss(self) -> bool:
        if self.test_loss is not None:
            return self.test_loss
        return self.early_stopping is not None and self.early_stopping_metric == "test_loss"
