"""Progress a person can see: one bar on a terminal or in Jupyter (a notebook widget), a line per epoch in a
log. None of it forces a host sync: it shows figures already computed."""
from __future__ import annotations

import sys
from typing import Literal

from ignite.engine import Engine, Events

from handlers.cadence import book_points
from handlers.figures import Figures

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


def attach_progress(engine: Engine, desc: str = "epoch") -> RunBar:
    """One bar over the whole run (a notebook widget in Jupyter), at a bounded cost per iteration."""
    return RunBar(desc, notebook=in_notebook()).attach(engine)


class RunBar:
    """One tqdm bar over the whole run, whose cost per iteration is bounded: its count moves every ~1% of an
    epoch (a counter in between) and tqdm redraws at most 10 times a second; its text (``epoch 2/10`` and the
    last figures) is set at the book's points and epoch ends, from figures already computed (no device read).
    Ignite's ``ProgressBar`` sets its text twice an iteration, ~190 us each on a terminal. In Jupyter it is one
    widget for the whole call (Ignite's makes one per epoch), so a saved notebook reads
    ``epoch 2/2: 100% ... loss=...``; on a terminal it is cleared at the end, before the book's closing lines."""

    def __init__(self, desc: str = "epoch", notebook: bool = False) -> None:
        self.desc, self.notebook, self.bar, self.shown = desc, notebook, None, None
        self.pending, self.every = 0, 1  # iterations not yet shown; shown every `every` iterations

    def attach(self, engine: Engine) -> RunBar:
        engine.add_event_handler(Events.STARTED, self._open)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._step)
        engine.add_event_handler(book_points(engine), self._figures)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._figures)
        # not EXCEPTION_RAISED: a handler there would swallow the error
        engine.add_event_handler(Events.COMPLETED | Events.TERMINATE, self._close)
        return self

    def _open(self, engine: Engine) -> None:
        length = engine.state.epoch_length
        total = length * engine.state.max_epochs if length else None
        self.every = max(1, (length or 100) // 100)
        if self.notebook:
            from IPython.display import display
            from tqdm.notebook import tqdm as notebook_tqdm

            self.bar = notebook_tqdm(total=total, initial=engine.state.iteration, desc=self._label(engine, True),
                                     leave=True, display=False)
            self.shown = display(self.bar.container, display_id=True)  # re-shown at the end: the saved text
        else:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=engine.state.iteration, desc=self._label(engine, True), leave=False,
                            mininterval=0.1, dynamic_ncols=True)

    def _label(self, engine: Engine, coming: bool = False) -> str:
        """``epoch 2/10``: at the start, the epoch about to run."""
        epoch = min(engine.state.epoch + 1, engine.state.max_epochs or 1) if coming else engine.state.epoch
        return f"{self.desc} {epoch}/{engine.state.max_epochs}"

    def _step(self, engine: Engine) -> None:
        self.pending += 1
        if self.pending >= self.every and self.bar is not None:
            self.bar.update(self.pending)
            self.pending = 0

    def _figures(self, engine: Engine) -> None:
        if self.bar is not None:
            if self.pending:
                self.bar.update(self.pending)
                self.pending = 0
            shown = {k: f"{v:.3g}" for k, v in engine.state.metrics.items() if isinstance(v, float)}
            self.bar.set_description(self._label(engine), refresh=False)
            self.bar.set_postfix(shown, refresh=False)

    def _close(self, engine: Engine, *_: object) -> None:
        if self.bar is not None:
            self._figures(engine)
            self.bar.refresh()
            self.bar.close()
            if self.shown is not None:
                self.shown.update(self.bar.container)
            self.bar = None


def attach_epoch_lines(trainer: Engine, evaluator: Engine | None = None, ema_evaluator: Engine | None = None) -> None:
    """One line per epoch on stderr (for logs and CI): epoch, every figure (``handlers.figures``), examples/sec."""
    figures = Figures(trainer, evaluator, ema_evaluator)

    def line(engine: Engine) -> None:
        shown = ", ".join(f"{'loss' if k == 'train loss' else k} {v:.3f}" for k, v in figures.epoch().items())
        print(f"epoch {engine.state.epoch}/{engine.state.max_epochs}: {shown}, "
              f"{engine.state.metrics.get('examples/sec', 0.0):.1f} examples/sec", file=sys.stderr, flush=True)

    trainer.add_event_handler(Events.EPOCH_COMPLETED, line)
