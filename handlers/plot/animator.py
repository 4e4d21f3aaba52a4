"""The book's ``Animator`` with its signature, drawing live (Visdom by default) instead of with matplotlib.

A hand-written book loop (``animator.add(x, (a, b, None))``) gets plots by the same rule and through the
same plotter as ``train_ch13`` (``handlers.plot.policy``): the record in ``runs/<env>`` when ``close()`` is
called or the program ends, and with the default back-end a server and the link (in Jupyter the live window
under the cell). In Jupyter, ``close()`` also leaves the final figure as an image in the cell's output, so a
saved notebook keeps it as the book's Animator does. ``add`` only records points.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from handlers.plot.base import Plotter
from handlers.plot.notebook import show_after_cell, show_final, shown_now
from handlers.plot.backends import make_plotter, plot_backend

__all__ = ["Animator"]

_count = itertools.count(1)


class Animator:
    """``Animator(xlabel, ylabel, legend, xlim, ylim, xscale, yscale, fmts, nrows, ncols, figsize)``.

    Like the book, ``add(x, y)`` takes one x (or one per line) and a value per line, skips ``None``
    values, and draws every line in the first panel (``nrows``/``ncols`` only size the window).
    ``fmts`` are matplotlib styles and do not apply to Visdom. ``plotter`` picks the back-end and env
    (default: a plotter of its own, by ``train_ch13``'s rule); points are flushed at ``close()``, or when the
    program exits.
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
        plotter: Plotter | None = None,
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
                self.plotter.add(self.window, self._name(i), float(a), b)
        show_after_cell(self)

    def close(self) -> bool:
        """Flush the points and write the record (a plotter passed in is only flushed, and stays usable); in
        Jupyter, show the final figure as an image under the cell."""
        done = self.plotter.close() if self.own else self.plotter.flush()
        shown_now(self)
        self.show()
        return done

    def show(self) -> bool:
        """In Jupyter, the figure so far as an image under the running cell (what a saved notebook keeps)."""
        return show_final(self.plotter.store, [self.window])

    def __repr__(self) -> str:
        points = sum(len(x) for x in self.X or [])
        url, env = self.plotter.url, self.plotter.env
        where = f"{url}/env/{env}" if url and url.startswith("http") else f"record in {self.plotter.out_dir}"
        return f"Animator({len(self.X or [])} lines, {points} points; {where})"

    def _ipython_display_(self) -> None:
        """A cell ending in the Animator shows nothing more: its live window is already under the cell."""


def _own_plotter() -> Plotter:
    plotter = make_plotter(plot_backend())
    if plotter.live:
        plotter.announce()
    return plotter
