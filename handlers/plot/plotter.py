"""``VisdomPlotter``: the book's Animator as an Ignite handler that never waits on the network."""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ignite.engine import Engine, Events

from handlers.plot.png import save_png
from handlers.plot.sender import Sender
from handlers.plot.store import PlotStore

__all__ = ["VisdomPlotter", "DEFAULT_URL", "server_url", "new_env"]

DEFAULT_URL = "http://127.0.0.1:8097"
Reader = Callable[[Engine], Any]


def server_url(url: str | None = None) -> str:
    """The one rule for which server to talk to: the argument, else ``$VISDOM_URL``, else the local default."""
    return url or os.environ.get("VISDOM_URL", DEFAULT_URL)


def new_env() -> str:
    """A fresh, time-stamped env name per run, so runs never overwrite each other's plots."""
    return time.strftime("d2l-ignite-%Y%m%d-%H%M%S")


class VisdomPlotter:
    """Plot any series of any Engine to Visdom, at any event, in any number of windows.

    ``attach(engine, event, {"name": reader}, x=reader, window=...)`` adds a point per trace each time
    ``event`` fires; readers may return floats or 0-dim tensors (read on the sender thread). Points
    are kept in ``store`` for the PNG, checkpoints and the replay log.
    """

    def __init__(
        self,
        url: str | None = None,
        env: str = "main",
        *,
        out_dir: str | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 10.0,
        close_timeout: float = 10.0,
        max_queue: int = 10_000,
        min_interval: float = 0.5,
    ) -> None:
        self.url = server_url(url)
        self.env, self.out_dir, self.close_timeout = env, out_dir, close_timeout
        self.store = PlotStore()
        self.sender = Sender(self.store, self.url, env, connect_timeout=connect_timeout,
                             read_timeout=read_timeout, max_queue=max_queue, min_interval=min_interval)
        self.replay_path: str | None = None
        self.closed = False

    def window(
        self,
        name: str,
        legend: Sequence[str] = (),
        *,
        title: str | None = None,
        xlabel: str | None = None,
        ylabel: str | None = None,
        xlim: tuple[float, float] | None = None,
        ylim: tuple[float, float] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> VisdomPlotter:
        """Declare a window; ``xlim``/``ylim`` become the tick options Visdom honours; ``extra`` adds
        other Visdom line options (``xtype="log"``, ``width``, ...)."""
        opts: dict[str, Any] = {"title": title or name, "legend": list(legend), **(extra or {})}
        if xlabel:
            opts["xlabel"] = xlabel
        if ylabel:
            opts["ylabel"] = ylabel
        if xlim:
            opts["xtickmin"], opts["xtickmax"] = xlim
        if ylim:
            opts["ytickmin"], opts["ytickmax"] = ylim
        self.store.window(name, opts)
        self.sender.notify(name)
        return self

    def attach(
        self,
        engine: Engine,
        event: Any,
        series: Mapping[str, Reader],
        x: Reader = lambda e: e.state.iteration,
        window: str = "main",
    ) -> VisdomPlotter:
        if window not in self.store.windows:
            self.window(window, list(series))
        engine.add_event_handler(event, self._point, dict(series), x, window)
        if not engine.has_event_handler(self._finish, Events.COMPLETED):
            engine.add_event_handler(Events.COMPLETED, self._finish)
        return self

    def add(self, window: str, trace: str, x: float, y: Any) -> None:
        """Add one point by hand (what a handler does for you)."""
        self.store.add(window, trace, x, y)
        self.sender.notify(window, trace)

    def _point(self, engine: Engine, series: dict[str, Reader], x: Reader, window: str) -> None:
        at = float(x(engine))
        for trace, read in series.items():
            self.add(window, trace, at, read(engine))

    def _finish(self, engine: Engine) -> None:
        self.close()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait (bounded) until the server has every point so far; the plotter stays open."""
        deadline = time.monotonic() + (self.close_timeout if timeout is None else timeout)
        while self.sender.undelivered() and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.sender.undelivered()

    def close(self) -> bool:
        """Flush (bounded wait), save the env, write the PNG and, if needed, the replay log.

        Returns True when the server acknowledged every point. Safe to call twice.
        """
        if self.closed:
            return self.replay_path is None
        self.closed = True
        complete = self.sender.close(self.close_timeout)
        if self.out_dir:
            save_png(self.store, os.path.join(self.out_dir, "curves.png"))
        if not complete:
            folder = self.out_dir or os.path.join("runs", self.env)
            os.makedirs(folder, exist_ok=True)
            self.replay_path = os.path.join(folder, "visdom-replay.log")
            n = self.sender.write_replay(self.replay_path)
            print(f"[visdom] {n} points did not reach {self.sender.address}; they are in {self.replay_path} "
                  f"(send them later with: d2l-ignite replay {self.replay_path})", file=sys.stderr, flush=True)
        return complete

    def state_dict(self) -> dict[str, Any]:
        return {"env": self.env, "windows": self.store.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the points of an earlier run (resume) and have the sender re-create the windows."""
        self.store.load_state_dict(state["windows"])
        for name in self.store.windows:
            self.sender.notify(name)
