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


def attach_progress(engine: Engine, desc: str = "epoch") -> ProgressBar:
    """A bar over each epoch showing the last values the cadence computed (floats, no device reads);
    in Jupyter, tqdm's notebook widget."""
    bar = ProgressBar(persist=False, desc=desc)
    bar.attach(engine, metric_names="all")
    return bar


def attach_epoch_lines(trainer: Engine, evaluator: Engine | None = None) -> None:
    """One line per epoch on stderr (for logs and CI): epoch, loss, train acc, test acc, examples/sec."""

    def line(engine: Engine) -> None:
        m = engine.state.metrics
        test = f", test acc {evaluator.state.metrics['acc']:.3f}" if evaluator is not None else ""
        print(f"epoch {engine.state.epoch}/{engine.state.max_epochs}: loss {m['loss']:.3f}, train acc {m['acc']:.3f}"
              f"{test}, {m.get('examples/sec', 0.0):.1f} examples/sec", file=sys.stderr, flush=True)

    trainer.add_event_handler(Events.EPOCH_COMPLETED, line)
