"""The book's per-iteration work as one handler per event, with the adding deferred.

Ignite dispatches every handler of an event, and every event filter, on every iteration. The book's
figures need, per step: stop the step timer and keep the batch's statistics; the running loss and
accuracy, the example count and the NaN guard's window only need them at the book's points. So
``RunningMetrics`` keeps a reference to each step's ``StepOutput`` (no kernel, no sync) and folds them
into the metrics in one stacked sum every ``FOLD`` steps and at each book point, where it then
computes the figures and fires ``BookEvents.BOOK_POINT`` for what reads them (plots, the NaN guard,
DDP's stop agreement). An Engine not built by this project's factories is folded every step: its step
may reuse its output. ``RunningMetrics.on(trainer)`` is the one attached to a trainer (attached on
first use): the NaN guard gets each fold's losses from it.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events

from handlers.cadence import BookEvents, next_book_point, take_book_points
from handlers.contract import publishes_step_output, step_output
from handlers.metrics import BookAccuracy, BookLoss, read_ratios
from handlers.throughput import StepTimer

__all__ = ["RunningMetrics", "FOLD"]

FOLD = 64
"""Steps kept before they are summed: bounds what is held, and costs one stacked sum per 64 steps."""

LossWatcher = Callable[[int, torch.Tensor], Any]  # (first iteration, the losses of consecutive steps)
_attached: weakref.WeakKeyDictionary[Engine, RunningMetrics] = weakref.WeakKeyDictionary()


class RunningMetrics:
    """``state.metrics["loss"]``, ``["acc"]`` at the book's points and ``["examples/sec"]`` at epoch end."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.timer = StepTimer(device)
        self.metrics = {"loss": BookLoss(), "acc": BookAccuracy()}
        self.watchers: list[LossWatcher] = []  # given each fold's per-step losses (the NaN guard)
        self._pending: list[Mapping[str, Any]] = []  # the steps' statistics since the last fold
        self._first = 0  # the iteration of _pending[0]
        self._source: str | None = None  # the state field holding the statistics, checked on the first step
        self._fold_every = FOLD
        self._next = 1  # the iteration of the next book point
        self._engine: weakref.ref[Engine] | None = None
        self._carried: list[tuple[float, int]] | None = None  # a loaded stop's sums, for the epoch it resumes

    @classmethod
    def on(cls, trainer: Engine) -> RunningMetrics:
        """The figures attached to ``trainer``; attached now (timed on the host) when it has none."""
        return _attached.get(trainer) or cls().attach(trainer)

    def attach(self, trainer: Engine) -> RunningMetrics:
        if trainer in _attached:
            raise ValueError("this trainer already has the book's running figures; use RunningMetrics.on(trainer)")
        _attached[trainer] = self
        self._engine = weakref.ref(trainer)
        take_book_points(trainer)
        trainer.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        self.timer.attach_start(trainer)
        trainer.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)
        return self

    def state_dict(self) -> dict[str, Any]:
        """The timer's totals and, taken inside an epoch (a stop), that epoch's running sums so far, so a resumed
        epoch's figures are the whole epoch's. Under DDP the sums are every process's (a collective: every
        process checkpoints) and the file's one set is taken up by the first process alone."""
        state = self.timer.state_dict()
        engine = self._engine() if self._engine is not None else None
        if engine is None or not _inside_epoch(engine):
            return state
        self._fold(engine)
        sums = [[m._num, m._den] for m in self.metrics.values()]
        if idist.get_world_size() > 1:
            sums = [[idist.all_reduce(torch.as_tensor(n, dtype=torch.float64).clone()), int(idist.all_reduce(d))]
                    for n, d in sums]
        return {**state, "epoch_sums": [[float(n), int(d)] for n, d in sums]}  # read once, at a stop

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.timer.load_state_dict(state)
        sums = state.get("epoch_sums")
        self._carried = None if sums is None or idist.get_rank() > 0 else [(float(n), int(d)) for n, d in sums]

    def _epoch_started(self, engine: Engine) -> None:
        self._pending.clear()
        self._next = next_book_point(engine)
        for metric in self.metrics.values():
            metric.started(engine)
        if self._carried is not None and _inside_epoch(engine):  # a resumed epoch goes on from its sums
            for metric, (num, den) in zip(self.metrics.values(), self._carried):
                metric.update((num, den))
        self._carried = None

    def _iteration_completed(self, engine: Engine) -> None:
        self.timer.lap(engine)
        if self._source is None:
            step_output(engine, "RunningMetrics")  # names the missing keys of an Engine not built by our factories
            ours = publishes_step_output(engine)
            # our step makes a fresh StepOutput each time; another step's output might be reused in place
            self._source, self._fold_every = ("step_output", FOLD) if ours else ("output", 1)
        if not self._pending:
            self._first = engine.state.iteration
        self._pending.append(getattr(engine.state, self._source))
        point = engine.state.iteration >= self._next
        if point or len(self._pending) >= self._fold_every:
            self._fold(engine)
        if point:
            values = read_ratios(list(self.metrics.values()))  # one read for both figures
            engine.state.metrics.update(zip(self.metrics, values))
            self._next = next_book_point(engine)
            engine.fire_event(BookEvents.BOOK_POINT)

    def _epoch_completed(self, engine: Engine) -> None:
        self._fold(engine)
        self.timer.epoch_completed(engine)

    def _fold(self, engine: Engine) -> None:
        """Sum the kept steps into the metrics, the timer's count and the guard's window."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        try:
            if len(pending) == 1:  # a foreign Engine's step, or an epoch's end: nothing to stack
                losses, correct = pending[0]["loss"], pending[0]["correct"]
                loss = losses
            else:
                losses, correct = _stack([s["loss"] for s in pending]), _stack([s["correct"] for s in pending]).sum()
                loss = losses.sum()
            examples = sum(s["examples"] for s in pending)  # ints from our step (a foreign one's: read once)
            predictions = sum(s["predictions"] for s in pending)
        except (KeyError, TypeError):
            step_output(engine, "RunningMetrics")  # raises, naming the keys this Engine's output lacks
            raise
        self.metrics["loss"].update((loss, examples))  # out of place: a value reused by its step is already read
        self.metrics["acc"].update((correct, predictions))
        self.timer.count(examples)
        for watch in self.watchers:
            watch(self._first, losses)


def _stack(values: list[Any]) -> torch.Tensor:
    """One 1-d tensor of the steps' 0-dim tensors (or numbers, from a hand-made step)."""
    if all(isinstance(v, torch.Tensor) for v in values):
        try:
            return torch.stack(values).reshape(len(values))
        except RuntimeError:  # shapes () and (1,) mixed
            return torch.stack([v.reshape(()) for v in values])
    return torch.tensor([float(v) for v in values], dtype=torch.float64)


def _inside_epoch(engine: Engine) -> bool:
    """Whether ``engine`` stands inside an epoch (some of its batches trained, not all): a stop's position."""
    it, n = engine.state.iteration, engine.state.epoch_length
    return bool(it % n) if n else it > 0  # an unsized loader's first epoch (its length is learnt at its end)
