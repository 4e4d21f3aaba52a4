"""A PNG of the curves, for headless machines, CI and the README: no server needed."""
from __future__ import annotations

import os
import threading

from handlers.plot.report import say
from handlers.plot.store import PlotStore
from handlers.plot.wire import exclusive_temp

__all__ = ["save_png", "save_png_in_background", "try_save_png"]

_DRAWING = threading.Lock()  # matplotlib's Agg canvas is used by one thread at a time


def save_png_in_background(store: PlotStore, path: str) -> threading.Thread:
    """``save_png`` on a thread of its own, so a run's end does not wait ~0.1 s for matplotlib.

    The store must no longer change (a closed plotter's). The thread is not a daemon: the interpreter
    waits for it before exiting, so a script's or a command's PNG is always complete.
    """
    thread = threading.Thread(target=try_save_png, args=(store, path), name="curves-png")
    thread.start()
    return thread


def try_save_png(store: PlotStore, path: str) -> bool:
    """``save_png``, saying in one line why the file could not be written instead of raising."""
    try:
        save_png(store, path)
        return True
    except (OSError, RuntimeError, ValueError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        say(f"could not write {path}: {why}")
        return False


def save_png(store: PlotStore, path: str) -> str:
    """Draw every window as one panel (legend, x label and limits as the window's options say)."""
    with _DRAWING:
        return _draw(store, path)


def _draw(store: PlotStore, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    names = list(store.windows)
    fig = Figure(figsize=(4.5 * max(len(names), 1), 3.2), dpi=110)
    for k, name in enumerate(names, 1):
        ax = fig.add_subplot(1, max(len(names), 1), k)
        opts, traces = store.snapshot(name)
        for trace, points in traces.items():
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], label=trace,
                        marker="o" if len(points) == 1 or opts.get("markers") else None, markersize=3)
        ax.set_title(opts.get("title", name))
        ax.set_xlabel(opts.get("xlabel", ""))
        ax.set_xscale(opts.get("xtype", "linear"))
        ax.set_yscale(opts.get("ytype", "linear"))
        if "xtickmin" in opts and "xtickmax" in opts:  # one epoch: 1..1 would be an empty range
            lo, hi = opts["xtickmin"], opts["xtickmax"]
            ax.set_xlim(min(lo, hi - 1), hi)
        if "ytickmin" in opts and "ytickmax" in opts:
            ax.set_ylim(opts["ytickmin"], opts["ytickmax"])
        ax.grid(True, alpha=0.3)
        if any(traces.values()):
            ax.legend(loc="best")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with exclusive_temp(path) as (f, tmp):
        fig.savefig(f, format="png")
    os.replace(tmp, path)
    return path
