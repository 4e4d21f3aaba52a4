"""The plot record: every window's options and every point, shared by the training and sending threads.

A value is checked when it is added, on the training thread, so a bad reader fails where it is called
and names its window and trace. Python numbers are stored as floats at once; a one-element tensor
waits in its trace's ``pending`` until the sender thread reads it (``settle``: plotting a device
tensor never makes training wait), then only its float is kept. A tensor that is an element of a
larger one is copied (on its device, asynchronously) so the record never holds the large one alive.
Points live in three ``array('d')`` per trace (x, y, and the wall time each was added, nan for points
restored from a checkpoint): 24 bytes a point, 200k points about 4.8 MB.
"""
from __future__ import annotations

import math
import numbers
import threading
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

import torch

from handlers.plot.report import say

__all__ = ["PlotStore", "Window", "Trace", "check_value", "PENDING_LIMIT"]

PENDING_LIMIT = 4096  # tensors waiting to be read (~2 MB): past it the training thread reads them in one go
_warned: list[bool] = []  # the message above is said once per process


def check_value(value: Any, win: str, trace: str, what: str = "value") -> float | torch.Tensor:
    """A real scalar: a number, or a one-element real tensor (read later); else an error. An infinite value
    is drawn as a gap (nan: JSON cannot hold it, and whether the run goes on is the NaN guard's call); an
    infinite x has no place on the axis and is an error."""
    if isinstance(value, torch.Tensor):
        if value.numel() == 1 and not value.is_complex() and value.dtype != torch.bool:
            scalar = value.detach().reshape(())
            if scalar.untyped_storage().nbytes() > scalar.element_size():  # a view into a larger tensor
                scalar = scalar.clone()
            return scalar
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


def _read_all(values: list[torch.Tensor]) -> list[float]:
    """The floats of one device's 0-dim tensors in one read (one sync on a GPU), each as ``_settled`` says."""
    try:
        numbers = torch.stack(values).double().tolist()
    except RuntimeError:  # a device that can no longer give them, or dtypes torch.stack refuses together
        return [_settled(v) for v in values]
    return [n if not math.isinf(n) else math.nan for n in numbers]


def _settled(value: float | torch.Tensor) -> float:
    """The float of a stored value; an infinite value, or one the device can no longer give (a CUDA error
    earlier in the run), is drawn as a gap (nan), so reading the record never raises in its place."""
    try:
        number = float(value.item()) if isinstance(value, torch.Tensor) else float(value)
    except RuntimeError:
        return math.nan
    return number if not math.isinf(number) else math.nan


@dataclass
class Trace:
    xs: array = field(default_factory=lambda: array("d"))
    ys: array = field(default_factory=lambda: array("d"))
    ts: array = field(default_factory=lambda: array("d"))  # wall time (time.time()) of each point
    pending: dict[int, torch.Tensor] = field(default_factory=dict)  # index -> tensor not read yet (y is nan)

    def __len__(self) -> int:
        return len(self.xs)


@dataclass
class Window:
    opts: dict[str, Any]
    traces: dict[str, Trace] = field(default_factory=dict)


class PlotStore:
    """Append-only series per window and trace; snapshots are taken under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.windows: dict[str, Window] = {}
        self.waiting = 0  # tensors added and not yet read (bounded by PENDING_LIMIT)

    def window(self, name: str, opts: dict[str, Any]) -> None:
        with self.lock:
            if name in self.windows:
                self.windows[name].opts = dict(opts)
            else:
                legend = opts.get("legend") or []
                self.windows[name] = Window(dict(opts), {t: Trace() for t in legend})

    def grow_y(self, win: str) -> bool:
        """Raise a ``grow_y`` window's top past its highest value; True when it moved (re-draw it whole)."""
        import numpy as np

        opts, traces = self.arrays(win)
        finite = [ys[~np.isnan(ys)] for _, ys in traces.values()]
        top = max((float(ys.max()) for ys in finite if len(ys)), default=None)
        if top is None or top <= opts.get("ytickmax", top):
            return False
        self.window(win, dict(opts, ytickmax=float(f"{top * 1.05:.3g}")))
        return True

    def add(self, win: str, trace: str, x: Any, y: Any) -> int:
        """Check and append a point; return its index in the trace."""
        x_value = check_value(x, win, trace, "x")
        x_float = x_value if isinstance(x_value, float) else _settled(x_value)
        y_value = check_value(y, win, trace)
        with self.lock:
            points = self.windows[win].traces.setdefault(trace, Trace())
            i = len(points)
            points.xs.append(x_float)
            points.ts.append(time.time())
            if isinstance(y_value, float):
                points.ys.append(y_value)
            else:
                points.ys.append(math.nan)
                points.pending[i] = y_value
                self.waiting += 1
        if self.waiting > PENDING_LIMIT:  # the sender is behind: read them here, keeping memory bounded
            self._settle_here(y_value)
        return i

    def _settle_here(self, value: float | torch.Tensor) -> None:
        if isinstance(value, torch.Tensor) and value.device.type != "cpu" and not _warned:
            _warned.append(True)
            say(f"more than {PENDING_LIMIT} plot values wait to be read: they are read on the training thread from "
                f"now on when that happens (one device sync per {PENDING_LIMIT} points), so memory stays bounded")
        self.settle()

    def settle(self) -> int:
        """Read every pending tensor into its float (the sender thread calls this whether or not a server
        answers; the training thread past ``PENDING_LIMIT``); one read per device; return how many were read."""
        with self.lock:
            work = [(t, i, v) for w in self.windows.values() for t in w.traces.values() for i, v in t.pending.items()]
        by_device: dict[torch.device, list[tuple[Trace, int, torch.Tensor]]] = {}
        for item in work:
            by_device.setdefault(item[2].device, []).append(item)
        for items in by_device.values():
            values = _read_all([v for _, _, v in items])  # outside the lock: it waits for the device
            with self.lock:
                for (trace, i, tensor), value in zip(items, values):
                    if trace.pending.get(i) is tensor:
                        trace.ys[i] = value
                        del trace.pending[i]
                self.waiting = sum(len(t.pending) for w in self.windows.values() for t in w.traces.values())
        return len(work)

    def points(self, win: str, trace: str, start: int = 0) -> list[tuple[float, float]]:
        """The points of one trace from ``start`` on, as floats (pending tensors are read first)."""
        with self.lock:
            waiting = bool(self.windows[win].traces[trace].pending)
        if waiting:
            self.settle()
        with self.lock:
            t = self.windows[win].traces[trace]
            return list(zip(t.xs[start:], t.ys[start:]))

    def snapshot(self, win: str) -> tuple[dict[str, Any], dict[str, list[tuple[float, float]]]]:
        with self.lock:
            opts, names = dict(self.windows[win].opts), list(self.windows[win].traces)
        return opts, {t: self.points(win, t) for t in names}

    def arrays(self, win: str) -> tuple[dict[str, Any], dict[str, tuple[Any, Any]]]:
        """``(opts, {trace: (xs, ys)})`` as numpy copies: a million points in milliseconds, no tuples."""
        import numpy as np

        self.settle()
        with self.lock:
            window = self.windows[win]
            return dict(window.opts), {t: (np.array(tr.xs), np.array(tr.ys)) for t, tr in window.traces.items()}

    def times(self, win: str) -> dict[str, Any]:
        """``{trace: wall times}`` of ``win``'s points, as numpy copies."""
        import numpy as np

        with self.lock:
            return {t: np.array(tr.ts) for t, tr in self.windows[win].traces.items()}

    def counts(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return {w: {t: len(p) for t, p in win.traces.items()} for w, win in self.windows.items()}

    def state_dict(self) -> dict[str, Any]:
        out = {}
        for w in list(self.windows):
            opts, traces = self.snapshot(w)
            out[w] = {"opts": opts, "traces": traces}
        return out

    def set_points(self, win: str, traces: dict[str, list]) -> None:
        """Replace the points of ``win``'s traces (a resumed run's own window); its options stay."""
        fresh = {name: _trace(points) for name, points in traces.items()}
        with self.lock:
            self.windows[win].traces.update(fresh)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        windows = {w: Window(dict(s["opts"]), {name: _trace(pts) for name, pts in s["traces"].items()})
                   for w, s in state.items()}
        with self.lock:
            self.windows = windows


def _trace(points: list) -> Trace:
    trace = Trace()
    for x, y in points:
        trace.xs.append(float(x))
        trace.ys.append(float(y))
        trace.ts.append(math.nan)  # a checkpoint keeps no wall times
    return trace
