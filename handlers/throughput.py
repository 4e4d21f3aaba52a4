"""The book's examples/sec: only the step is timed, and the device is waited on once per epoch.

On a GPU each step is bracketed by CUDA events on the current stream and their elapsed times are
summed at epoch end, so the figure is honest without the book's per-batch ``float()`` sync. The
window opens where the compute stream waits for the batch's copy when a ``DevicePrefetcher`` feeds
the Engine (its ``copy_waited`` event), so a copy it could not hide counts, as in the book. On a
CPU the step runs synchronously and a host clock around it suffices; its start is the one this
project's trainer stamps in ``state.step_started``, or an ITERATION_STARTED handler for other Engines.
A compiled step (``state.compiled``) spends its run's first epoch compiling and recording graphs:
that epoch is reported alone and left out of the run's figure when more epochs follow.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events

from handlers.contract import step_output, step_started

__all__ = ["StepTimer"]


def _examples(engine: Engine) -> int:
    return int(step_output(engine, "StepTimer", ("examples",))["examples"])


class StepTimer:
    """Sums step time and examples; writes ``engine.state.metrics["examples/sec"]`` at epoch end.

    Attach it before other handlers so its ITERATION_COMPLETED callback runs first.
    """

    def __init__(self, device: torch.device | str = "cpu", examples: Callable[[Engine], int] = _examples) -> None:
        self.device = torch.device(device)
        self._examples = examples
        self._cuda = self.device.type == "cuda"
        self._pending: list[tuple[torch.cuda.Event, torch.cuda.Event, Any]] = []  # (start, end, start's lender)
        self._pool: list[torch.cuda.Event] = []  # this timer's own events, reused every epoch
        self._lender: Any = None  # the prefetcher whose copy_waited event started this step's clock
        self._t0 = 0.0
        self._stamped = False  # the step stamps engine.state.step_started (see attach_start)
        self._epoch = 0.0  # timed seconds in the current epoch (CPU clock)
        self.seconds = 0.0  # timed seconds over every epoch so far
        self.examples = 0  # examples over every epoch so far (all processes)
        self._epoch_examples = 0
        self._warming = False  # this run's first epoch of a compiled step
        self.epoch_seconds: list[float] = []

    def attach(self, engine: Engine) -> StepTimer:
        self.attach_start(engine)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.stop)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)
        return self

    @property
    def examples_per_sec(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else 0.0

    def _event(self) -> torch.cuda.Event:
        event = self._pool.pop() if self._pool else torch.cuda.Event(enable_timing=True)
        event.record(torch.cuda.current_stream(self.device))
        return event

    def attach_start(self, engine: Engine) -> None:
        """Start the clock at ITERATION_STARTED, unless the step stamps its own start on the host clock
        (this project's trainer: on a CPU that is one event handler less per iteration)."""
        self._stamped = not self._cuda and step_started(engine) is not None
        if not self._stamped:
            engine.add_event_handler(Events.ITERATION_STARTED, self.start)
        engine.add_event_handler(Events.STARTED, self._run_started)

    def _run_started(self, engine: Engine) -> None:
        self._warming = bool(getattr(engine.state, "compiled", False))

    def start(self, engine: Engine) -> None:
        if self._cuda:
            waited = getattr(engine.state.dataloader, "copy_waited", None)
            self._lender = engine.state.dataloader if waited is not None else None
            self._begin = waited if waited is not None else self._event()
        else:
            self._t0 = time.perf_counter()

    def stop(self, engine: Engine) -> None:
        self.lap(engine)
        self.count(self._examples(engine))

    def lap(self, engine: Engine) -> None:
        """End the step's clock (its examples are counted apart, with ``count``)."""
        if self._cuda:
            self._pending.append((self._begin, self._event(), self._lender))
        else:
            self._epoch += time.perf_counter() - (engine.state.step_started if self._stamped else self._t0)

    def count(self, examples: int) -> None:
        """Add examples to this epoch's count (several steps' at once, when they are folded)."""
        self._epoch_examples += examples

    def epoch_completed(self, engine: Engine) -> None:
        if self._pending:
            self._pending[-1][1].synchronize()
            self._epoch = sum(a.elapsed_time(b) for a, b, _ in self._pending) / 1000.0
            for begin, end, lender in self._pending:  # each event back where it came from: no pool grows
                if lender is None:
                    self._pool.append(begin)
                elif hasattr(lender, "free_events"):
                    lender.free_events.append(begin)
                self._pool.append(end)
            self._pending.clear()
        examples, seconds = self._epoch_examples, self._epoch
        if idist.get_world_size() > 1:  # processes run side by side: their examples add, the slowest sets the time
            examples = int(idist.all_reduce(examples))
            seconds = float(idist.all_reduce(seconds, op="MAX"))
        self.epoch_seconds.append(seconds)
        self._epoch, self._epoch_examples = 0.0, 0
        warm_up = self._warming and engine.state.epoch < (engine.state.max_epochs or 0)
        self._warming = False
        if warm_up:  # compiling: this epoch's own figure, kept out of the run's
            engine.state.metrics["examples/sec"] = examples / seconds if seconds > 0 else 0.0
            return
        self.seconds += seconds
        self.examples += examples
        engine.state.metrics["examples/sec"] = self.examples_per_sec

    def state_dict(self) -> dict[str, Any]:
        """Totals so far, so a resumed run reports examples/sec over all its epochs."""
        return {"seconds": self.seconds, "examples": self.examples, "epoch_seconds": list(self.epoch_seconds)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seconds, self.examples = float(state["seconds"]), int(state["examples"])
        self.epoch_seconds = list(state["epoch_seconds"])
