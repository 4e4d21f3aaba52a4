"""The book's ``Animator`` with its signature, drawing into a Visdom window instead of matplotlib.

A hand-written book loop (``animator.add(x, (a, b, None))``) gets live plots by the same rule and through
the same non-blocking plotter as ``train_ch13`` (``handlers.plot.policy``): a server, the link (in Jupyter
the live window under the cell), and the record in ``runs/<env>`` when ``close()`` is called or the
program ends. ``add`` only records points; a background thread sends them.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from handlers.plot.plotter import VisdomPlotter
from handlers.plot.policy import announce, default_plotter, plots_enabled

__all__ = ["Animator"]

_count = itertools.count(1)


class Animator:
    """``Animator(xlabel, ylabel, legend, xlim, ylim, xscale, yscale, fmts, nrows, ncols, figsize)``.

    Like the book, ``add(x, y)`` takes one x (or one per line) and a value per line, skips ``None``
    values, and draws every line in the first panel (``nrows``/``ncols`` only size the window).
    ``fmts`` are matplotlib styles and do not apply to Visdom. ``plotter`` picks the server and env
    (default: a plotter of its own, by ``train_ch13``'s rule; none when ``D2L_IGNITE_PLOT=0``: then only
    ``X``/``Y`` are kept); points are flushed at ``close()``, or when the program exits.
    """

    def __init__(
        self,
        xlabel: str | None = None,
        ylabel: str | None = None,
        legend: Sequence[str] | None = None,
        xlim: Sequence[float] | None = None,
        ylim: Sequence[float] | None = None,
        xscale: str = "linear",
        yscale: str = "linear",
        fmts: Sequence[str] = ("-", "m--", "g-.", "r:"),
        nrows: int = 1,
        ncols: int = 1,
        figsize: tuple[float, float] = (3.5, 2.5),
        *,
        plotter: VisdomPlotter | None = None,
        title: str | None = None,
    ) -> None:
        self.legend = list(legend or [])
        self.fmts = fmts
        self.own = plotter is None
        self.plotter = plotter if plotter is not None else _own_plotter()
        self.window = f"animator-{next(_count)}"
        self.X: list[list[float]] | None = None  # what the book's Animator keeps, per line
        self.Y: list[list[float]] | None = None
        width, height = (max(1, ncols) * figsize[0] * 130, max(1, nrows) * figsize[1] * 130)
        if self.plotter is None:
            return
        self.plotter.window(self.window, self.legend, title=title or ylabel or xlabel or "Animator", xlabel=xlabel,
                            ylabel=ylabel, xlim=tuple(xlim) if xlim else None, ylim=tuple(ylim) if ylim else None,
                            extra={"xtype": xscale, "ytype": yscale, "width": int(width), "height": int(height)})

    def _name(self, i: int) -> str:
        return self.legend[i] if i < len(self.legend) else f"line {i + 1}"

    def add(self, x: Any, y: Any) -> None:
        """Add a point to each line whose value is not ``None``."""
        if not hasattr(y, "__len__"):
            y = [y]
        n = len(y)
        if not hasattr(x, "__len__"):
            x = [x] * n
        if not self.X:
            self.X = [[] for _ in range(n)]
        if not self.Y:
            self.Y = [[] for _ in range(n)]
        for i, (a, b) in enumerate(zip(x, y)):
            if a is not None and b is not None:
                self.X[i].append(a)
                self.Y[i].append(b)
                if self.plotter is not None:
                    self.plotter.add(self.window, self._name(i), float(a), b)

    def close(self) -> bool:
        """Flush the points and write the record (a plotter passed in is only flushed, and stays usable)."""
        if self.plotter is None:
            return True
        return self.plotter.close() if self.own else self.plotter.flush()

    def __repr__(self) -> str:
        points = sum(len(x) for x in self.X or [])
        where = f"{self.plotter.url}/env/{self.plotter.env}" if self.plotter is not None else "not plotted"
        return f"Animator({len(self.X or [])} lines, {points} points; {where})"

    def _ipython_display_(self) -> None:
        """A cell ending in the Animator shows nothing more: its live window is already under the cell."""


def _own_plotter() -> VisdomPlotter | None:
    if not plots_enabled():
        return None
    plotter = default_plotter()
    if plotter.live:
        announce(plotter)
    return plotter
