"""Ignite's ``VisdomLogger`` shape on the non-blocking plotter: swap one import line and gain
no blocking, no exception without a server, a replay log, and plots that stay after ``close()``.

Ignite's own handlers (``OutputHandler``, ``OptimizerParamsHandler``, ``WeightsScalarHandler``,
``GradsScalarHandler``) draw through ``logger.vis.line(...)`` on ``logger.executor``. This logger's
``vis`` only records each point in a ``VisdomPlotter`` (the background sender posts it), so those
handlers are reused as they are, with Ignite's window names (``tag/name``).
"""
from __future__ import annotations

import os
from typing import Any

from ignite.engine import Engine, EventsList, State
from ignite.handlers import global_step_from_engine
from ignite.handlers import visdom_logger as ignite_visdom
from ignite.handlers.visdom_logger import (
    GradsScalarHandler, OptimizerParamsHandler, OutputHandler, WeightsScalarHandler,
)

from handlers.plot.plotter import VisdomPlotter

__all__ = ["VisdomLogger", "OutputHandler", "OptimizerParamsHandler", "WeightsScalarHandler", "GradsScalarHandler",
           "global_step_from_engine"]


class _Canvas:
    """What Ignite's drawers call as ``logger.vis``: each ``line`` call becomes one recorded point."""

    def __init__(self, plotter: VisdomPlotter) -> None:
        self.plotter, self.env = plotter, plotter.env
        self.x_labels: dict[str, str] = {}  # Ignite's x label (the event's text) -> a readable one

    def line(self, X: Any, Y: Any, env: str | None = None, win: str | None = None, update: str | None = None,
             opts: dict | None = None, name: str | None = None) -> str:
        window = win or name or "main"
        if window not in self.plotter.store.windows:
            opts = opts or {}
            xlabel = self.x_labels.get(str(opts.get("xlabel")), opts.get("xlabel"))
            self.plotter.window(window, [name or window], title=opts.get("title"), xlabel=xlabel,
                                ylabel=opts.get("ylabel"))
        self.plotter.add(window, name or window, X[0], Y[0])
        return window

    def save(self, envs: Any = None) -> None:
        """Saved by the sender when the logger closes: no synchronous save per event."""


class VisdomLogger(ignite_visdom.VisdomLogger):
    """``VisdomLogger(server=None, port=None, num_workers=1, raise_exceptions=True, **kwargs)`` as Ignite's.

    Server and port come from ``VISDOM_SERVER_URL`` / ``VISDOM_PORT`` (default localhost:8097), the
    login from ``VISDOM_USERNAME`` / ``VISDOM_PASSWORD``; ``env`` (a keyword, as for Visdom) names the
    env, ``out_dir`` the folder for the PNG and a replay log. ``num_workers`` and ``raise_exceptions``
    are accepted for compatibility: sends never block and a missing server never raises.
    """

    def __init__(self, server: str | None = None, port: int | None = None, num_workers: int = 1,
                 raise_exceptions: bool = True, **kwargs: Any) -> None:
        server = server or os.environ.get("VISDOM_SERVER_URL", "localhost")
        port = port or int(os.environ.get("VISDOM_PORT", 8097))
        base = server if "://" in server else f"http://{server}"
        self.plotter = VisdomPlotter(f"{base}:{port}", kwargs.get("env") or "main", out_dir=kwargs.get("out_dir"))
        self.vis = _Canvas(self.plotter)
        self.executor = ignite_visdom._DummyExecutor()  # runs the drawer inline: it only records a point

    def attach(self, engine: Engine, log_handler: Any, event_name: Any, *args: Any, **kwargs: Any) -> Any:
        """Ignite's ``attach``, naming the windows' x axis after what x counts (``iteration``, ``epoch``)."""
        for event in event_name if isinstance(event_name, EventsList) else [event_name]:
            self.vis.x_labels[str(event)] = _x_label(event, log_handler)
        return super().attach(engine, log_handler, event_name, *args, **kwargs)

    def _save(self) -> None:
        """Ignite saves after every event (a synchronous request); the sender saves at close instead."""

    def close(self) -> None:
        """Flush every point and save the env; the windows stay on the page (Ignite's deletes them)."""
        self.plotter.close()


def _x_label(event: Any, handler: Any) -> str:
    """What the x of ``handler`` at ``event`` counts: the event its ``global_step_from_engine`` names, else
    the event's own count (``iteration`` for ``ITERATION_COMPLETED(every=10)``)."""
    transform = getattr(handler, "global_step_transform", None)
    code, cells = getattr(transform, "__code__", None), getattr(transform, "__closure__", None) or ()
    bound = dict(zip(code.co_freevars, (c.cell_contents for c in cells))) if code is not None else {}
    chosen = bound.get("custom_event_name") or event
    return State.event_to_attr.get(chosen) or str(getattr(chosen, "name", chosen)).lower()
