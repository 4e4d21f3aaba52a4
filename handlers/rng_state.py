"""The random streams of a run as a checkpointable object (a resumed run draws the uninterrupted orders)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from ignite.engine import Engine, Events

__all__ = ["RngState"]


class RngState:
    """The random streams a run draws from (torch, CUDA, the data loaders' generators) as a state_dict.

    Attached to a trainer, it takes its snapshot at the end of each epoch, after the evaluation, and
    then starts the next epoch's data iterator at once. Otherwise the exhausted iterator would draw
    from the loader's generator when the next epoch asks for a batch, a draw a resumed run never
    makes, and the resumed shuffle order would differ from the uninterrupted one.
    """

    def __init__(self, loaders: Iterable[Any] = ()) -> None:
        self.generators = [g for g in (getattr(loader, "generator", None) for loader in loaders) if g is not None]
        self._snapshot: dict[str, Any] | None = None

    def attach(self, trainer: Engine) -> RngState:
        trainer.add_event_handler(Events.STARTED, self._started)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)
        return self

    def _started(self, trainer: Engine) -> None:  # the first epoch's iterator is made after this
        if self._snapshot is None:
            self._snapshot = self._capture()

    def _epoch_completed(self, trainer: Engine) -> None:
        self._snapshot = self._capture()
        state = trainer.state
        if state.dataloader is not None and state.max_epochs is not None and state.epoch < state.max_epochs:
            trainer.set_data(state.dataloader)

    def state_dict(self) -> dict[str, Any]:
        """The streams as the current epoch's data iterator found them, and as they are now ("now": a
        checkpoint taken mid-epoch continues the epoch's order from the first, the model's draws from the
        second)."""
        return {**(self._snapshot if self._snapshot is not None else self._capture()), "now": self._capture()}

    def restore_now(self) -> None:
        """Put back the streams as they were when the loaded checkpoint was taken (its ``now``)."""
        now = (self._snapshot or {}).get("now")
        if now is not None:
            self._restore(now)

    def _capture(self) -> dict[str, Any]:
        state: dict[str, Any] = {"torch": torch.get_rng_state(), "generators": [g.get_state() for g in self.generators]}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._snapshot = dict(state)
        self._restore(state)

    def _restore(self, state: Mapping[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        for g, s in zip(self.generators, state["generators"]):
            g.set_state(s)
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
