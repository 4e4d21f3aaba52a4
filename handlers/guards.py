"""Two ways a run stops early and loses nothing: a non-finite loss, and Ctrl-C.

``NonFiniteGuard`` keeps the per-step losses the book's running figures fold (no kernel, no host sync
of its own) and looks at them at each book point, where the figures are read anyway (one sync there);
on a bad loss it names the first bad
iteration and terminates the trainer before the epoch's checkpoint could overwrite the last good one.
``Interrupt`` turns the first Ctrl-C into a stop where the run's state is whole (a second one stops at
once): after the step that completes an optimizer update (a stop inside a gradient-accumulation group
finishes the group: at most k-1 more batches, where saving the group's gradients would mean one model's
worth of tensors per process, and under DDP each process's own), and never between an epoch's last batch
and its end (the test pass, History, checkpoints run first). With this project's trainer the step itself
stops (``state.stop_after_update``); another Engine stops after its current iteration.
"""
from __future__ import annotations

import math
import signal
import threading
from collections.abc import Callable
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events

from handlers.cadence import book_points
from handlers.running import RunningMetrics

__all__ = ["NonFiniteGuard", "Interrupt", "Stopped", "STOP_SIGNALS", "stop_soon"]


class NonFiniteGuard:
    def __init__(self) -> None:
        self._window: list[tuple[int, torch.Tensor]] = []  # (first iteration, losses) since the last look
        self.iteration: int | None = None  # the first iteration whose loss was nan or inf
        self.epoch: int | None = None

    def attach(self, trainer: Engine) -> NonFiniteGuard:
        """Watch every step's loss through the trainer's running figures; look at each book point."""
        RunningMetrics.on(trainer).watchers.append(self.add)
        trainer.add_event_handler(book_points(trainer), self.check)
        return self

    def add(self, first_iteration: int, losses: torch.Tensor) -> None:
        """Keep the losses of consecutive iterations from ``first_iteration`` (one tensor, 0-dim or 1-d)."""
        self._window.append((first_iteration, torch.as_tensor(losses)))

    def check(self, engine: Engine) -> None:
        """Look at the losses kept since the last look; stop the run at a bad one. The running loss read at
        this point sums them (nan and inf stay in a sum): only when it is not finite are the steps read, to
        name the first bad one, so a healthy run's guard costs no read of its own."""
        if self.iteration is not None:
            return
        window, self._window = self._window, []
        running = engine.state.metrics.get("loss")
        if isinstance(running, float) and math.isfinite(running):
            finite: list[bool] = []
        else:
            finite = torch.isfinite(torch.cat([loss.reshape(-1) for _, loss in window])).tolist() if window else []
        bad = not all(finite)
        if idist.get_world_size() > 1:  # every process stops at the same point, or the others hang in DDP
            bad = bool(idist.all_reduce(int(bad), op="MAX"))
        if not bad:
            return
        iterations = [first + k for first, loss in window for k in range(loss.numel())]
        self.iteration = iterations[finite.index(False)] if False in finite else engine.state.iteration
        n = engine.state.epoch_length
        self.epoch = (self.iteration - 1) // n + 1 if n else engine.state.epoch
        engine.terminate()

    def message(self, checkpoint: str | None) -> str:
        kept = f"; the last good checkpoint is kept: {checkpoint}" if checkpoint else ""
        return (f"the loss became nan or inf at iteration {self.iteration} (epoch {self.epoch}); training "
                f"stopped{kept}. Lower the learning rate, clip gradients (clip_grad_norm / --clip-grad), "
                "or check the data for nan values")


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """A run stopped by a signal; a command exits with ``128 + signum`` (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP)."""

    def __init__(self, signum: int = signal.SIGINT, message: str = "") -> None:
        super().__init__(message or f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


class Interrupt:
    """First Ctrl-C (or SIGTERM, SIGHUP): stop at the next whole state, run ``on_stop`` (a checkpoint), end cleanly."""

    def __init__(self, on_stop: Callable[[Engine], Any] | None = None) -> None:
        self.on_stop = on_stop
        self.requested = False
        self.signum: int | None = None  # the signal that asked for the stop
        self._previous: dict[int, Any] = {}

    def attach(self, trainer: Engine) -> Interrupt:
        trainer.add_event_handler(Events.STARTED, self._install)
        trainer.add_event_handler(book_points(trainer), self.agree)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)
        trainer.add_event_handler(Events.TERMINATE, self._stopped)
        trainer.add_event_handler(Events.COMPLETED, self.restore)
        return self

    def _install(self, trainer: Engine) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach only the main thread; elsewhere Ctrl-C keeps Python's default

        def handler(signum: int, frame: Any) -> None:
            if self.requested:
                raise Stopped(signum)
            self.requested, self.signum = True, signum
            if idist.get_world_size() == 1:
                stop_soon(trainer)  # under DDP the processes agree first, at the next book point

        for sig in STOP_SIGNALS:  # Ctrl-C, kill (SIGTERM), a closed terminal (SIGHUP): the same clean stop
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, handler)

    def agree(self, trainer: Engine) -> None:
        """Under DDP: stop together once any process was asked to (torchrun signals each one); every process
        then stops at the same update's end, as they run the same steps."""
        if idist.get_world_size() > 1 and idist.all_reduce(int(self.requested), op="MAX"):
            self.requested = True
            stop_soon(trainer)

    def _epoch_completed(self, trainer: Engine) -> None:
        """An epoch ended whole (its test pass, History row and files are written): stop here if asked to. A run
        that ends here anyway (its last epoch, or early stopping) simply ends: a stop asked now changes nothing."""
        if idist.get_world_size() > 1:
            self.requested = bool(idist.all_reduce(int(self.requested), op="MAX"))
        if not self.requested:
            return
        state = trainer.state
        if trainer.should_terminate or (state.max_epochs is not None and state.epoch >= state.max_epochs):
            self.requested = False
        else:
            trainer.terminate()

    def _stopped(self, trainer: Engine) -> None:
        stepped = getattr(trainer.state, "stepped", None)
        if stepped is not None and stepped < trainer.state.iteration:  # stopped between Ignite's count and the
            trainer.state.iteration = stepped  # step: the checkpoint counts only what trained, so none is lost
        if self.requested and self.on_stop is not None:
            self.on_stop(trainer)

    def restore(self, trainer: Engine | None = None) -> None:
        """Give Ctrl-C back to the program; call it in a ``finally`` (a failed run never reaches COMPLETED)."""
        while self._previous:
            sig, previous = self._previous.popitem()
            signal.signal(sig, previous)


def stop_soon(trainer: Engine) -> None:
    """Ask ``trainer`` to stop where its state is whole: this project's trainer stops after the step that ends
    an update, unless that step is its epoch's last (the epoch's end runs, then ``Interrupt`` stops it);
    another Engine stops after its current iteration."""
    if hasattr(trainer.state, "stop_after_update"):
        trainer.state.stop_after_update = True
    else:
        trainer.terminate()
