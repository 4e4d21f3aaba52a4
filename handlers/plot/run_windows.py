"""The windows one run drew on a plotter: what its checkpoints keep and what its resume restores.

A plotter may hold other runs' windows (one plotter, several ``train_ch13`` calls). A checkpoint keeps
only this run's windows, and a resume puts the saved points back into this run's windows alone, under
this run's options (frame and title follow the run as it now is: more epochs, another learning rate).
Saved windows are matched by role: the name without the ``-2``, ``-3`` a second run's window gets.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from handlers.plot.base import Plotter

__all__ = ["RunWindows"]


def _role(name: str) -> str:
    return re.sub(r"-\d+$", "", name)


class RunWindows:
    def __init__(self, plotter: Plotter, windows: Iterable[str]) -> None:
        self.plotter, self.windows = plotter, list(windows)

    def state_dict(self) -> dict[str, Any]:
        """The plotter's format (``env``, ``windows``), with this run's windows only."""
        state = self.plotter.store.state_dict()
        return {"env": self.plotter.env, "windows": {w: state[w] for w in self.windows if w in state}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The saved points into this run's windows of the same role; the options stay this run's."""
        mine = {_role(w): w for w in self.windows}
        for name, saved in state.get("windows", {}).items():
            window = mine.get(_role(name))
            if window is not None:
                self.plotter.set_points(window, saved["traces"])
