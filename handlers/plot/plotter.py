"""``VisdomPlotter``: the book's Animator as an Ignite handler that never waits on the network."""
from __future__ import annotations

import atexit
import inspect
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ignite.engine import Engine

from handlers.plot.png import save_png_in_background, try_save_png
from handlers.plot.record import write_env, write_points
from handlers.plot.report import runs_path, say
from handlers.plot.sender import Sender
from handlers.plot.store import PlotStore

__all__ = ["VisdomPlotter", "DEFAULT_URL", "server_url", "new_env"]

DEFAULT_URL = "http://127.0.0.1:8097"
Reader = Callable[[Engine], Any]


def server_url(url: str | None = None) -> str:
    """The one rule for which server to talk to: the argument, else ``$VISDOM_URL``, else the local default."""
    return url or os.environ.get("VISDOM_URL", DEFAULT_URL)


def new_env() -> str:
    """A fresh env name per run: its start time, and a random suffix so runs started in the same
    second (or by several users) never share an env or a run folder."""
    return time.strftime("d2l-ignite-%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def _positional_arity(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds and p.default is p.empty)


class VisdomPlotter:
    """Plot any series of any Engine to Visdom, at any event, in any number of windows.

    ``attach(engine, event, {"name": reader}, x=reader, window=...)`` adds a point per trace each time
    ``event`` fires; readers may return numbers or one-element tensors (read on the sender thread).
    Points are kept in ``store`` for the PNG, checkpoints and the replay log.

    Whoever creates a plotter closes it (``close()``, or ``with VisdomPlotter(...) as plotter``);
    attaching never closes it, so one plotter serves any number of Engines and runs. Plotters still
    open when the program exits are closed then, together within one bounded wait, so no point is lost.
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
        live: bool | None = None,
        credentials: tuple[str, str] | None = None,
        offline: bool = False,
    ) -> None:
        self.env, self.out_dir, self.close_timeout = env, out_dir, close_timeout
        self.store = PlotStore()
        self.sender = Sender(self.store, server_url(url), env, connect_timeout=connect_timeout,
                             read_timeout=read_timeout, max_queue=max_queue, min_interval=min_interval,
                             credentials=credentials, offline=offline)
        self.replay_path: str | None = None
        self.png_thread: threading.Thread | None = None  # the PNG being drawn after close(png_in_background=True)
        self.closed = False
        self.live = live  # whether a Visdom server answered when the plotter was made (None: not asked)
        self.yours = False  # the policy's: the server is the user's own ($VISDOM_URL), not this user's shared one
        _open.append(self)

    @property
    def url(self) -> str:
        """The server the points go to now (it changes when this user's shared server is replaced)."""
        return self.sender.address.url

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
        x: Reader | Callable[[Engine, Any], Any] = lambda e: e.state.iteration,
        window: str = "main",
    ) -> VisdomPlotter:
        if window not in self.store.windows:
            self.window(window, list(series))
        if _positional_arity(x) >= 2:  # Ignite's global_step_transform(engine, event_name)
            step = x
            x = lambda e: step(e, event)  # noqa: E731
        engine.add_event_handler(event, self._point, dict(series), x, window)
        return self

    def add(self, window: str, trace: str, x: Any, y: Any) -> None:
        """Add one point by hand (what a handler does for you); the value is checked here."""
        if self.closed:
            raise RuntimeError(f"VisdomPlotter for env {self.env!r} is closed: point ({window!r}, {trace!r}) was not "
                               "added; make a new plotter, or close this one only when every run is done")
        if window not in self.store.windows:
            self.window(window, [trace])
        self.store.add(window, trace, x, y)
        self.sender.notify(window, trace)

    def _point(self, engine: Engine, series: dict[str, Reader], x: Reader, window: str) -> None:
        at = x(engine)
        for trace, read in series.items():
            self.add(window, trace, at, read(engine))

    def new_window_name(self, base: str) -> str:
        """``base``, or ``base-2``, ``base-3`` ... when a window of that name exists (a second run)."""
        n, name = 1, base
        while name in self.store.windows:
            n += 1
            name = f"{base}-{n}"
        return name

    def __enter__(self) -> VisdomPlotter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait (bounded) until the server has every point so far; the plotter stays open.

        Returns at once when the server is known to be down: training never waits on a dead server
        (its points stay in the record, for a later flush, ``close()`` and the replay log).
        """
        if not self.sender.undelivered():
            return True
        self.sender.wake()
        return self.sender.wait_delivered(self.close_timeout if timeout is None else timeout)

    def close(self, png_in_background: bool = False, timeout: float | None = None) -> bool:
        """Flush (bounded wait), have the server save the env, write the run's own record into ``out_dir``
        (``visdom/<env>.json``, ``curves.npz``, ``curves.png`` and, if the server lacks points, the replay log).

        Returns True when the server acknowledged every point. Safe to call twice. With
        ``png_in_background``, when the server has every point the PNG is drawn on a thread
        (``self.png_thread``) the interpreter waits for at exit, so the call does not wait for
        matplotlib; when it has not, the PNG is part of the record and is written before returning.
        """
        if self.closed:
            return self.replay_path is None
        self.closed = True
        if self in _open:
            _open.remove(self)
        complete = self.sender.offline or self.sender.close(self.close_timeout if timeout is None else timeout)
        if not complete:  # the record that loses nothing comes first
            self._write_replay()
        if self.out_dir and self.store.windows:  # nothing plotted (a DDP rank > 0): no file
            self._write_record()
            png = os.path.abspath(os.path.join(self.out_dir, "curves.png"))  # as of now, whatever cwd comes next
            if png_in_background and complete:
                self.png_thread = save_png_in_background(self.store, png)
            else:
                try_save_png(self.store, png)
        return complete

    def _write_record(self) -> None:
        """The run's env (what ``d2l-ignite visdom`` serves) and every point, whatever the server did."""
        try:
            write_env(self.store, self.env, self.out_dir)
            write_points(self.store, self.out_dir)
        except OSError as e:
            say(f"could not write the plot record in {self.out_dir} ({e.strerror or e})")

    def _write_replay(self) -> None:
        folder = self.out_dir or runs_path(self.env)
        path = os.path.join(folder, "visdom-replay.log")
        try:
            os.makedirs(folder, exist_ok=True)
            n = self.sender.write_replay(path)
        except OSError as e:
            say(f"points are not in an env saved by {self.sender.address}, and the replay log cannot be written at "
                f"{path} ({e.strerror or e}); give the plotter a writable out_dir")
            return
        self.replay_path = path
        say(f"{n} points are not in an env saved by {self.sender.address}; they are in {path} "
            f"(send them later with: d2l-ignite replay {path})")

    def state_dict(self) -> dict[str, Any]:
        return {"env": self.env, "windows": self.store.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the points of an earlier run (resume) and have the sender re-create the windows."""
        self.store.load_state_dict(state["windows"])
        for name in self.store.windows:
            self.sender.notify(name)


_open: list[VisdomPlotter] = []  # plotters not closed yet: closed together at exit


def close_all(timeout: float | None = None) -> None:
    """Close every open plotter within one deadline (``timeout``, default the longest ``close_timeout``): all
    are asked to stop at once, so a hung server costs the exit one wait, not one per plotter."""
    plotters = list(_open)
    if not plotters:
        return
    for plotter in plotters:
        plotter.sender.stop()
    deadline = time.monotonic() + (max(p.close_timeout for p in plotters) if timeout is None else timeout)
    for plotter in plotters:
        plotter.close(timeout=max(0.0, deadline - time.monotonic()))


atexit.register(close_all)
