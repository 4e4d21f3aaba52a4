"""``logger.vis`` of ``handlers.VisdomLogger``: a real ``visdom.Visdom`` whose network calls are rerouted.

Points of ``line`` go into the plotter's record (sent by the background sender); every other drawing call
is built by Visdom's own code and queued on the same sender, in order; queries that return an answer ask the
server at once within the plotter's timeouts (None when none answers). Nothing here ever blocks on a send.
"""
from __future__ import annotations

import json
import os
from typing import Any

import requests
from visdom import Visdom, get_rand_id

from handlers.plot.plotter import VisdomPlotter

__all__ = ["Canvas"]

_QUERIES = ("win_exists", "win_data", "env_state", "delete_env", "fork_env", "win_hash")  # they return an answer


class Canvas(Visdom):
    def __init__(self, plotter: VisdomPlotter, log_to_filename: str | None) -> None:
        super().__init__(server=plotter.url, env=plotter.env, offline=True, log_to_filename=os.devnull,
                         use_incoming_socket=False, raise_exceptions=False)
        self.plotter, self.log_to_filename, self._log_only = plotter, log_to_filename, False
        self.x_labels: dict[str, str] = {}  # Ignite's x label (the event's text) -> a readable one

    def _send(self, msg: dict, endpoint: str = "events", quiet: bool = False, from_log: bool = False,
              create: bool = True) -> Any:
        if msg.get("eid") is None:
            msg["eid"] = self.env
        if "win" in msg and msg["win"] is None and create:
            msg["win"] = "window_" + get_rand_id()
        if self.log_to_filename and not from_log:
            self._log(msg, endpoint)
        if endpoint in _QUERIES:
            return self._ask(endpoint, msg)
        if not self._log_only:
            self.plotter.sender.post_later(endpoint, msg)
        return msg.get("win", True)

    def _ask(self, endpoint: str, msg: dict) -> Any:
        """The server's answer, or None when none came (as Visdom's client without raise_exceptions)."""
        if self.plotter.sender.offline:
            return None
        try:
            return self.plotter.sender.wire.post(endpoint, msg)
        except (requests.RequestException, PermissionError):
            return None

    def get_env_list(self) -> list[str]:
        answer = self._send({}, endpoint="env_state")
        return json.loads(answer) if answer else sorted(self.env_list)

    def check_connection(self, timeout_seconds: float = 0) -> bool:
        return not self.plotter.sender.offline and self.plotter.sender.wire.is_visdom()

    def line(self, Y: Any, X: Any = None, win: str | None = None, env: str | None = None,
             opts: dict | None = None, update: str | None = None, name: str | None = None) -> Any:
        """A trace's points go into the run's record (PNG, curves.npz); several traces at once,
        another env or ``update="remove"`` are sent as Visdom builds them."""
        import numpy as np

        ys = np.atleast_1d(np.asarray(Y, dtype=float))
        xs = np.arange(1, len(ys) + 1, dtype=float) if X is None else np.atleast_1d(np.asarray(X, dtype=float))
        if ys.ndim != 1 or xs.shape != ys.shape or env not in (None, self.env) or update == "remove":
            return super().line(Y, X, win=win, env=env, opts=opts, update=update, name=name)
        window = win or name or "window_" + get_rand_id()
        if window not in self.plotter.store.windows:
            opts = opts or {}
            xlabel = self.x_labels.get(str(opts.get("xlabel")), opts.get("xlabel"))
            self.plotter.window(window, [name or window], title=opts.get("title"), xlabel=xlabel,
                                ylabel=opts.get("ylabel"))
        for x, y in zip(xs.tolist(), ys.tolist()):
            self.plotter.add(window, name or window, x, y)
        if self.log_to_filename:  # Visdom's own log line for this call
            self._log_only = True
            try:
                super().line(Y, X, win=window, env=env, opts=opts, update=update, name=name)
            finally:
                self._log_only = False
        return window
