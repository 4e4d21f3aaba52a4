"""Progress a person can see: Ignite's ProgressBar on a terminal or in Jupyter (a notebook widget),
a line per epoch in a log. None of it forces a host sync: it shows figures already computed."""
from __future__ import annotations

import sys
from typing import Literal

from ignite.engine import Engine, Events
from ignite.handlers import ProgressBar

__all__ = ["attach_progress", "attach_epoch_lines", "wants_progress", "in_notebook", "Progress"]

Progress = bool | Literal["bar", "epochs"] | None


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where stderr is no terminal, yet a bar is wanted)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def wants_progress(progress: Progress) -> bool:
    """``None`` means: a bar when stderr is a terminal or in a notebook, as a person there expects."""
    return sys.stderr.isatty() or in_notebook() if progress is None else progress not in (False, "epochs")


def attach_progress(engine: Engine, desc: str = "epoch") -> ProgressBar | RunBar:
    """A bar over each epoch showing the last values the cadence computed (floats, no device reads);
    in Jupyter, one notebook widget for the whole call (``RunBar``)."""
    if in_notebook():
        return RunBar(desc).attach(engine)
    bar = ProgressBar(persist=False, desc=desc)
    bar.attach(engine, metric_names="all")
    return bar


class RunBar:
    """One tqdm notebook widget over the whole run (Ignite's makes one per epoch, and warns on import), its
    text the finished epoch and the last metrics, so a saved notebook reads ``epoch 2/2: 100% ... loss=...``."""

    def __init__(self, desc: str = "epoch") -> None:
        self.desc, self.bar, self.shown = desc, None, None

    def attach(self, engine: Engine) -> RunBar:
        engine.add_event_handler(Events.STARTED, self._open)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._step)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch)
        # not EXCEPTION_RAISED: a handler there would swallow the error
        engine.add_event_handler(Events.COMPLETED | Events.TERMINATE, self._close)
        return self

    def _open(self, engine: Engine) -> None:
        from IPython.display import display
        from tqdm.notebook import tqdm

        length = engine.state.epoch_length
        total = length * engine.state.max_epochs if length else None
        self.bar = tqdm(total=total, initial=engine.state.iteration, desc=self._label(engine), leave=True,
                        display=False)
        self.shown = display(self.bar.container, display_id=True)  # re-shown at the end: the saved text

    def _label(self, engine: Engine) -> str:
        return f"{self.desc} {engine.state.epoch}/{engine.state.max_epochs}"

    def _step(self, engine: Engine) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def _epoch(self, engine: Engine) -> None:
        if self.bar is not None:
            shown = {k: f"{v:.3g}" for k, v in engine.state.metrics.items() if isinstance(v, float)}
            self.bar.set_description(self._label(engine), refresh=False)
            self.bar.set_postfix(shown)

    def _close(self, engine: Engine, *_: object) -> None:
        if self.bar is not None:
            self.bar.close()
            if self.shown is not None:
                self.shown.update(self.bar.container)
            self.bar = None


def attach_epoch_lines(trainer: Engine, evaluator: Engine | None = None) -> None:
    """One line per epoch on stderr (for logs and CI): epoch, loss, train acc, test acc, examples/sec."""

    def line(engine: Engine) -> None:
        m = engine.state.metrics
        test = f", test acc {evaluator.state.metrics['acc']:.3f}" if evaluator is not None else ""
        print(f"epoch {engine.state.epoch}/{engine.state.max_epochs}: loss {m['loss']:.3f}, train acc {m['acc']:.3f}"
              f"{test}, {m.get('examples/sec', 0.0):.1f} examples/sec", file=sys.stderr, flush=True)

    trainer.add_event_handler(Events.EPOCH_COMPLETED, line)
