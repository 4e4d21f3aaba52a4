"""``Plotter``: a run's record of curves, and the interface every back-end implements.

The record comes first: whatever the plot setting, a run's windows and every point live in a ``PlotStore``
and are written to its folder at ``close()`` (``curves.npz``, ``curves.png``, the Visdom env
``visdom/<env>.json`` that ``d2l-ignite visdom`` serves). Showing the curves is optional and done by a
back-end, a subclass that overrides the hooks: ``_shown`` (a window or point was recorded), ``_delivered``
(flush), ``_finish`` (close) and ``stop``. ``Plotter`` itself is the back-end that shows nothing (``--plot
off``); ``VisdomPlotter`` draws live in Visdom; ``TensorboardPlotter`` writes TensorBoard event files.
"""
from __future__ import annotations

import atexit
import inspect
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ignite.engine import Engine

from handlers.plot.png import save_png_in_background, try_save_png
from handlers.plot.record import write_env, write_points
from handlers.plot.report import say
from handlers.plot.store import PlotStore

__all__ = ["Plotter", "close_all"]

Reader = Callable[[Engine], Any]
FEW_POINTS = 30  # a trace with at most this many points is drawn with markers too (else lines alone)


def _positional_arity(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds and p.default is p.empty)


class Plotter:
    """Record any series of any Engine, at any event, in any number of windows.

    ``attach(engine, event, {"name": reader}, x=reader, window=...)`` adds a point per trace each time
    ``event`` fires; readers may return numbers or one-element tensors (read off the training thread).
    Whoever creates a plotter closes it (``close()``, or ``with Plotter(...) as plotter``); plotters still
    open when the program exits are closed then, together within one bounded wait, so no point is lost.
    """

    live: bool | None = None  # whether a live view answered when the plotter was made (None: none is asked)
    yours = False  # the policy's: the server is the user's own ($VISDOM_URL), not this user's shared one

    def __init__(self, env: str = "main", *, out_dir: str | None = None, close_timeout: float = 10.0) -> None:
        self.env, self.out_dir, self.close_timeout = env, out_dir, close_timeout
        self.store = PlotStore()
        self.png_thread: threading.Thread | None = None  # the PNG being drawn after close(png_in_background=True)
        self.closed, self._complete = False, True
        _open.append(self)

    @property
    def url(self) -> str | None:
        """Where the curves can be seen live (None: only in the record)."""
        return None

    def window(self, name: str, legend: Sequence[str] = (), *, title: str | None = None, xlabel: str | None = None,
               ylabel: str | None = None, xlim: tuple[float, float] | None = None,
               ylim: tuple[float, float] | None = None, log_y: bool = False,
               extra: Mapping[str, Any] | None = None) -> Plotter:
        """Declare a window; ``xlim``/``ylim`` become the tick options Visdom honours, ``log_y`` a log y axis;
        ``extra`` adds other Visdom line options (``xtype="log"``, ``width``, ...)."""
        opts: dict[str, Any] = {"title": title or name, "legend": list(legend), "xlabel": xlabel or "x",
                                **({"ytype": "log"} if log_y else {}), **(extra or {})}
        if ylabel:
            opts["ylabel"] = ylabel
        if xlim:
            opts["xtickmin"], opts["xtickmax"] = xlim
        if ylim and not log_y:
            opts["ytickmin"], opts["ytickmax"] = ylim
        self.store.window(name, opts)
        self._shown(name)
        return self

    def attach(self, engine: Engine, event: Any, series: Mapping[str, Reader] | Callable[[], Mapping[str, Any]],
               x: Reader | Callable[[Engine, Any], Any] = lambda e: e.state.iteration, window: str = "main") -> Plotter:
        """A point per trace each time ``event`` fires: ``series`` maps traces to readers of the engine, or is
        one call that returns ``{trace: value}`` (a set of figures that grows with the metrics attached)."""
        if window not in self.store.windows:
            self.window(window, [] if callable(series) else list(series), xlabel="iteration")
        if _positional_arity(x) >= 2:  # Ignite's global_step_transform(engine, event_name)
            step = x
            x = lambda e: step(e, event)  # noqa: E731
        if callable(series):
            figures = series
            read: Callable[[Engine], Mapping[str, Any]] = lambda e: figures()  # noqa: E731
        else:
            readers = dict(series)
            read = lambda e: {trace: r(e) for trace, r in readers.items()}  # noqa: E731
        engine.add_event_handler(event, self._point, read, x, window)
        return self

    def add(self, window: str, trace: str, x: Any, y: Any, step: int | None = None) -> None:
        """Add one point by hand (what a handler does for you); the value is checked here. ``step``: the
        iteration it belongs to, for back-ends that count in whole steps (TensorBoard)."""
        if self.closed:
            raise RuntimeError(f"plotter for env {self.env!r} is closed: point ({window!r}, {trace!r}) was not "
                               "added; make a new plotter, or close this one only when every run is done")
        if window not in self.store.windows:
            self.window(window, [trace])
        self.store.add(window, trace, x, y)
        self._shown(window, trace, step)

    def _point(self, engine: Engine, read: Callable[[Engine], Mapping[str, Any]], x: Reader, window: str) -> None:
        at = x(engine)
        for trace, value in read(engine).items():
            self.add(window, trace, at, value, engine.state.iteration)

    def set_points(self, window: str, traces: dict[str, list]) -> None:
        """Replace the points of ``window``'s traces (a resumed run's own window); the back-end re-draws it."""
        self.store.set_points(window, traces)
        self._shown(window)

    def new_window_name(self, base: str) -> str:
        """``base``, or ``base-2``, ``base-3`` ... when a window of that name exists (a second run)."""
        n, name = 1, base
        while name in self.store.windows:
            n += 1
            name = f"{base}-{n}"
        return name

    def __enter__(self) -> Plotter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait (bounded) until the back-end shows every point so far; the plotter stays open."""
        return self._delivered(self.close_timeout if timeout is None else timeout)

    def close(self, png_in_background: bool = False, timeout: float | None = None) -> bool:
        """Finish the back-end (bounded wait), then write the run's record into ``out_dir``. Returns True when
        the back-end shows every point. Safe to call twice. With ``png_in_background`` and every point shown,
        the PNG is drawn on a thread (``self.png_thread``) the interpreter waits for at exit."""
        if self.closed:
            return self._complete
        self.closed = True
        if self in _open:
            _open.remove(self)
        self._complete = self._finish(self.close_timeout if timeout is None else timeout)
        points = any(n for traces in self.store.counts().values() for n in traces.values())
        if self.out_dir and points:  # nothing plotted (a DDP rank > 0, a run refused before its first step): no file
            self._write_record()
            png = os.path.abspath(os.path.join(self.out_dir, "curves.png"))  # as of now, whatever cwd comes next
            if png_in_background and self._complete:
                self.png_thread = save_png_in_background(self.store, png)
            else:
                try_save_png(self.store, png)
        return self._complete

    def discard(self) -> None:
        """Close without a record: for a run refused before its first step (nothing of it is worth keeping)."""
        self.stop()
        self.closed = True
        if self in _open:
            _open.remove(self)

    def _write_record(self) -> bool:
        """The run's env (what ``d2l-ignite visdom`` serves) and every point, whatever the back-end did."""
        try:
            write_env(self.store, self.env, self.out_dir)
            write_points(self.store, self.out_dir)
            return True
        except OSError as e:
            say(f"could not write the plot record in {self.out_dir} ({e.strerror or e}); give the plotter a "
                "writable out_dir")
            return False

    # -- the back-end's hooks: this class shows nothing, so everything is always shown -----------------------
    def _shown(self, window: str, trace: str | None = None, step: int | None = None) -> None:
        """A window was declared or changed (``trace`` None), or a point was added to ``trace``."""

    def _delivered(self, timeout: float) -> bool:
        return True

    def _finish(self, timeout: float) -> bool:
        return True

    def stop(self) -> None:
        """Start finishing without waiting (``close_all`` asks every plotter at once)."""

    def announce(self) -> None:
        """Say, before a run's first step, where its curves can be seen while it goes on."""
        if self.url:
            print(f"Plots: {self.url}", flush=True)

    def after_close(self, keep_serving: bool = False) -> None:
        """After a command's run and ``close()``: how long the live view stays (``keep_serving``: until Ctrl-C)."""

    def state_dict(self) -> dict[str, Any]:
        return {"env": self.env, "windows": self.store.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the points of an earlier run (resume); the back-end shows them again."""
        self.store.load_state_dict(state["windows"])
        for name in self.store.windows:
            self._shown(name)


_open: list[Plotter] = []  # plotters not closed yet: closed together at exit


def close_all(timeout: float | None = None) -> None:
    """Close every open plotter within one deadline (``timeout``, default the longest ``close_timeout``): all
    are asked to stop at once, so a hung server costs the exit one wait, not one per plotter."""
    plotters = list(_open)
    if not plotters:
        return
    for plotter in plotters:
        plotter.stop()
    deadline = time.monotonic() + (max(p.close_timeout for p in plotters) if timeout is None else timeout)
    for plotter in plotters:
        plotter.close(timeout=max(0.0, deadline - time.monotonic()))


atexit.register(close_all)
