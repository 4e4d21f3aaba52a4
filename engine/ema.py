"""An exponential moving average of the weights, on the per-update event, through Ignite's ``EMAHandler``.

``train_ch13(..., ema=0.999)`` keeps it: Ignite's handler updates the copy after every optimizer
update (``UpdateEvents.UPDATE_COMPLETED``, so gradient accumulation does not count batches), a second
evaluator measures it on the test set each epoch (``test acc (ema)`` in the History and the plot), and
checkpoints hold it. A run resumed from a checkpoint without one starts the average at the weights it
resumes from, not at the fresh model's.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import EMAHandler

from handlers.contract import update_events

__all__ = ["EmaWeights"]


class EmaWeights:
    """The averaged copy of ``model`` (``.model``) and the evaluator that tests it each epoch."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.handler = EMAHandler(model, momentum=1.0 - decay)  # Ignite's momentum is the new weights' share
        self.evaluator: Engine | None = None
        self._loaded = False

    @property
    def model(self) -> torch.nn.Module:
        return self.handler.ema_model

    def attach(self, trainer: Engine, evaluate: Callable[[Engine, Engine, Iterable], None],
               evaluator: Engine, test_iter: Iterable) -> EmaWeights:
        """Average after each update; run ``evaluate(trainer, evaluator, test_iter)`` at each epoch's end."""
        trainer.add_event_handler(Events.STARTED, self._start)
        self.handler.attach(trainer, name="ema_momentum", warn_if_exists=False, event=update_events(trainer)[1])
        trainer.add_event_handler(Events.EPOCH_COMPLETED, evaluate, evaluator, test_iter)
        self.evaluator = evaluator
        return self

    def _start(self, _trainer: Engine) -> None:
        if not self._loaded:  # a fresh average starts at the weights training starts from (a resumed run's)
            self.model.load_state_dict(self.handler.model.state_dict())
            self._loaded = True

    def state_dict(self) -> dict[str, Any]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state)
        self._loaded = True
