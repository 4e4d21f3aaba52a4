"""Ignite's ``VisdomLogger`` on the non-blocking plotter: swap one import line and gain no blocking, no
exception without a server, a record of every point, and plots that stay after ``close()``.

Ignite's own handlers (``OutputHandler``, ``OptimizerParamsHandler``, ``WeightsScalarHandler``,
``GradsScalarHandler``) draw through ``logger.vis.line(...)``. Here ``logger.vis`` is a real
``visdom.Visdom`` whose network calls are rerouted: each ``line`` point goes into the run's record (the
background sender posts it, with Ignite's window names ``tag/name``); every other drawing call (``text``,
``image``, ``bar``, ``close``, ``save``, ...) is built by Visdom's own code and posted, in order, by the
same sender; the queries that return an answer (``get_env_list``, ``win_exists``, ``get_window_data``,
``check_connection``) ask the server at once, within the plotter's timeouts, and answer None (an env list:
the client's own) when no server answers.
"""
from __future__ import annotations

import functools
import inspect
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

# Visdom client keywords that cannot be honoured by a client that never blocks, with what to do instead
_REFUSED = {
    "send": (True, "send=False builds messages without sending them; use offline=True with log_to_filename"),
    "endpoint": ("events", "only Visdom's own 'events' endpoint is drawn to"),
    "proxies": (None, "plots go straight to the server; unset the proxy or use an SSH tunnel"),
    "http_proxy_host": (None, "plots go straight to the server; unset the proxy or use an SSH tunnel"),
    "http_proxy_port": (None, "plots go straight to the server; unset the proxy or use an SSH tunnel"),
    "use_polling": (False, "this client takes no events from the page"),
    "ssl_verify": (None, "give the server as http://; an https:// server's certificate is always checked"),
}


@functools.cache
def _visdom_keywords() -> frozenset[str]:
    from visdom import Visdom

    return frozenset(inspect.signature(Visdom.__init__).parameters) - {"self", "server", "port", "raise_exceptions"}


class VisdomLogger(ignite_visdom.VisdomLogger):
    """``VisdomLogger(server=None, port=None, num_workers=1, raise_exceptions=True, **kwargs)`` as Ignite's.

    Server and port come from ``VISDOM_SERVER_URL`` / ``VISDOM_PORT`` (default localhost:8097), the login from
    ``username=`` / ``password=`` or ``VISDOM_USERNAME`` / ``VISDOM_PASSWORD``; the other keywords are
    ``visdom.Visdom``'s: ``env``, ``base_url``, ``log_to_filename`` (Visdom's log of every call, replayable with
    ``vis.replay_log``), ``offline=True`` (nothing is sent; needs ``log_to_filename``); ``out_dir`` (ours) is the
    folder for the PNG and ``curves.npz``. A keyword Visdom has but a never-blocking client cannot
    honour (``send=False``, proxies) is refused with the reason; an unknown one is a ``TypeError``, as Ignite's.
    Where it differs from Ignite's on purpose: it never raises or waits when no server answers (the points stay
    in the record), and ``close()`` keeps the windows on the page.
    """

    def __init__(self, server: str | None = None, port: int | None = None, num_workers: int = 1,
                 raise_exceptions: bool = True, **kwargs: Any) -> None:
        out_dir = kwargs.pop("out_dir", None)
        unknown = sorted(set(kwargs) - _visdom_keywords())
        if unknown:
            raise TypeError(f"VisdomLogger got an unexpected keyword argument {unknown[0]!r}; it takes "
                            f"visdom.Visdom's keywords and out_dir")
        for key, (default, why) in _REFUSED.items():
            if key in kwargs and kwargs[key] != default:
                raise ValueError(f"VisdomLogger({key}={kwargs[key]!r}) is not supported: {why}")
        offline, log_path = bool(kwargs.get("offline")), kwargs.get("log_to_filename")
        if offline and not log_path:
            raise ValueError("VisdomLogger(offline=True) needs log_to_filename=PATH: the file that keeps every call")
        user, password = kwargs.get("username"), kwargs.get("password")
        if user and not password:
            raise ValueError(f"VisdomLogger(username={user!r}) needs password= (or $VISDOM_PASSWORD)")
        named = server or port or os.environ.get("VISDOM_SERVER_URL") or os.environ.get("VISDOM_PORT")
        server = server or os.environ.get("VISDOM_SERVER_URL", "localhost")
        port = port or int(os.environ.get("VISDOM_PORT", 8097))
        base = server if "://" in server else f"http://{server}"
        path = (kwargs.get("base_url") or "/").rstrip("/")
        url = f"{base}:{port}{path}" if named else None  # none named: this user's own server (VisdomPlotter)
        self.plotter = VisdomPlotter(url, kwargs.get("env") or "main", out_dir=out_dir,
                                     credentials=(user, password) if user else None, offline=offline)
        self.log_to_filename = log_path
        from handlers.plot.canvas import Canvas  # imports Visdom's client (slow): only when a logger is made

        self.vis = Canvas(self.plotter, log_path)
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
