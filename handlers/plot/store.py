"""The plot record: every window's options and every point, shared by the training and sending threads.

A value is checked when it is added, on the training thread, so a bad reader fails where it is called
and names its window and trace. Python numbers are stored as floats at once; a one-element tensor
is kept until the sender thread reads it (so plotting a device tensor never makes training wait)
and is then replaced by its float. 200k points cost about 25 MB.
"""
from __future__ import annotations

import math
import numbers
import threading
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["PlotStore", "Window", "check_value"]


def check_value(value: Any, win: str, trace: str, what: str = "value") -> float | torch.Tensor:
    """A real scalar: a number, or a one-element real tensor (read later); else an error. An infinite value
    is drawn as a gap (nan: JSON cannot hold it, and whether the run goes on is the NaN guard's call); an
    infinite x has no place on the axis and is an error."""
    if isinstance(value, torch.Tensor):
        if value.numel() == 1 and not value.is_complex() and value.dtype != torch.bool:
            return value.detach().reshape(())
        got = f"a {tuple(value.shape)} {str(value.dtype).removeprefix('torch.')} tensor"
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        if not math.isinf(number):
            return number
        if what == "value":
            return math.nan
        got = f"{number} (infinite)"
    else:
        got = f"a {type(value).__name__}"
    raise TypeError(f"plot window {win!r}, trace {trace!r}: the {what} must be a real number or a one-element "
                    f"tensor, got {got}; return e.g. engine.state.metrics['loss'] from the reader")


def _settled(value: float | torch.Tensor) -> float:
    """The float of a stored value; an infinite tensor value is drawn as a gap (nan), as JSON cannot hold it."""
    number = float(value.item()) if isinstance(value, torch.Tensor) else value
    return number if not math.isinf(number) else math.nan


@dataclass
class Window:
    opts: dict[str, Any]
    traces: dict[str, list[tuple[float, Any]]] = field(default_factory=dict)


class PlotStore:
    """Append-only series per window and trace; snapshots are taken under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.windows: dict[str, Window] = {}

    def window(self, name: str, opts: dict[str, Any]) -> None:
        with self.lock:
            if name in self.windows:
                self.windows[name].opts = dict(opts)
            else:
                legend = opts.get("legend") or []
                self.windows[name] = Window(dict(opts), {t: [] for t in legend})

    def add(self, win: str, trace: str, x: Any, y: Any) -> int:
        """Check and append a point; return its index in the trace."""
        x_value = check_value(x, win, trace, "x")
        point = (x_value if isinstance(x_value, float) else _settled(x_value), check_value(y, win, trace))
        with self.lock:
            points = self.windows[win].traces.setdefault(trace, [])
            points.append(point)
            return len(points) - 1

    def points(self, win: str, trace: str, start: int = 0) -> list[tuple[float, float]]:
        """The points of one trace from ``start`` on, as floats; tensors read here replace themselves."""
        with self.lock:
            raw = self.windows[win].traces[trace][start:]
        settled = [(x, _settled(y)) for x, y in raw]  # outside the lock: .item() may wait for the device
        with self.lock:
            points = self.windows[win].traces[trace]
            for i, (old, new) in enumerate(zip(raw, settled), start):
                if points[i] is old and not isinstance(old[1], float):
                    points[i] = new
        return settled

    def snapshot(self, win: str) -> tuple[dict[str, Any], dict[str, list[tuple[float, float]]]]:
        with self.lock:
            opts, names = dict(self.windows[win].opts), list(self.windows[win].traces)
        return opts, {t: self.points(win, t) for t in names}

    def counts(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return {w: {t: len(p) for t, p in win.traces.items()} for w, win in self.windows.items()}

    def state_dict(self) -> dict[str, Any]:
        out = {}
        for w in list(self.windows):
            opts, traces = self.snapshot(w)
            out[w] = {"opts": opts, "traces": traces}
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with self.lock:
            self.windows = {
                w: Window(dict(s["opts"]), {t: [tuple(p) for p in pts] for t, pts in s["traces"].items()})
                for w, s in state.items()
            }
