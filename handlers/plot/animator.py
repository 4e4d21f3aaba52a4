"""The book's ``Animator`` with its signature, drawing into a Visdom window instead of matplotlib.

A hand-written book loop (``animator.add(x, (a, b, None))``) gets live plots through the same
non-blocking plotter ``train_ch13`` uses: ``add`` only records points; a background thread sends them.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from handlers.plot.plotter import VisdomPlotter, new_env

__all__ = ["Animator"]

_count = itertools.count(1)


class Animator:
    """``Animator(xlabel, ylabel, legend, xlim, ylim, xscale, yscale, fmts, nrows, ncols, figsize)``.

    Like the book, ``add(x, y)`` takes one x (or one per line) and a value per line, skips ``None``
    values, and draws every line in the first panel (``nrows``/``ncols`` only size the window).
    ``fmts`` are matplotlib styles and do not apply to Visdom. ``plotter`` picks the server and env
    (default: ``$VISDOM_URL`` in a fresh env); points are flushed at ``close()``, or when the program exits
    (an open plotter closes itself then).
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
        self.plotter = plotter if plotter is not None else VisdomPlotter(env=new_env())
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

    def close(self) -> bool:
        """Flush the points (a plotter passed in is only flushed, and stays usable)."""
        return self.plotter.close() if self.own else self.plotter.flush()
