"""The final figure as an image output in Jupyter, so a saved notebook keeps the curves (as the book's
Animator's SVG stays), whether or not a live frame was shown and whatever became of its server.

``train_ch13`` shows it when it ends. A book loop never closes its ``Animator``, so an Animator's figure is
shown when the cell that added its points finishes (IPython's ``post_run_cell``), once per cell, in that cell.
"""
from __future__ import annotations

import weakref
from typing import Any

from handlers.plot.png import render
from handlers.plot.store import PlotStore
from handlers.progress import in_notebook

__all__ = ["show_final", "show_after_cell", "shown_now"]

_waiting: weakref.WeakKeyDictionary[Any, None] = weakref.WeakKeyDictionary()  # Animators with new points


def show_final(store: PlotStore, windows: list[str]) -> bool:
    """In Jupyter, ``windows`` drawn as one PNG image under the running cell; True when shown."""
    windows = [w for w in windows if w in store.windows]
    if not in_notebook() or not windows or not any(n for c in store.counts().values() for n in c.values()):
        return False
    from IPython.display import Image, display

    display(Image(data=render(store, windows), format="png"))
    return True


def show_after_cell(animator: Any) -> None:
    """Show ``animator``'s figure when the running cell finishes (once, however many points the cell added)."""
    if not in_notebook():
        return
    if not _waiting:
        from IPython import get_ipython

        events = get_ipython().events
        if _after_cell not in events.callbacks["post_run_cell"]:
            events.register("post_run_cell", _after_cell)
    _waiting[animator] = None


def shown_now(animator: Any) -> None:
    """``animator`` showed its figure itself (``close()``): nothing more at the cell's end."""
    _waiting.pop(animator, None)


def _after_cell(*_: object) -> None:
    for animator in list(_waiting):
        _waiting.pop(animator, None)
        animator.show()
