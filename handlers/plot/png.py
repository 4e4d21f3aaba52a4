"""A PNG of the curves, for headless machines, CI and the README: no server needed."""
from __future__ import annotations

import os

from handlers.plot.store import PlotStore
from handlers.plot.wire import exclusive_temp

__all__ = ["save_png"]


def save_png(store: PlotStore, path: str) -> str:
    """Draw every window as one panel (legend, x label and limits as the window's options say)."""
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
