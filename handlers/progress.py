"""Ignite's ProgressBar, set up so it never forces a host sync: it shows metrics already computed."""
from __future__ import annotations

import sys

from ignite.handlers import ProgressBar
from ignite.engine import Engine

__all__ = ["attach_progress", "wants_progress"]


def wants_progress(progress: bool | None) -> bool:
    """``None`` means: show a bar when stderr is a terminal, as a user at a prompt expects."""
    return sys.stderr.isatty() if progress is None else bool(progress)


def attach_progress(engine: Engine, desc: str = "epoch") -> ProgressBar:
    """A bar over each epoch showing the last values the cadence computed (floats, no device reads)."""
    bar = ProgressBar(persist=False, desc=desc)
    bar.attach(engine, metric_names="all")
    return bar
