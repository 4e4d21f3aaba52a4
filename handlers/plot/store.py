"""The plot record: every window's options and every point, shared by the training and sending threads.

Values may be 0-dim tensors: they are turned into floats off the training thread, so plotting a
device tensor every iteration never makes training wait for the device.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PlotStore", "Window", "as_float"]


def as_float(value: Any) -> float:
    return float(value.item()) if hasattr(value, "item") else float(value)


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

    def add(self, win: str, trace: str, x: float, y: Any) -> int:
        """Append a point and return its index in the trace."""
        with self.lock:
            points = self.windows[win].traces.setdefault(trace, [])
            points.append((x, y))
            return len(points) - 1

    def snapshot(self, win: str) -> tuple[dict[str, Any], dict[str, list[tuple[float, float]]]]:
        with self.lock:
            w = self.windows[win]
            opts, traces = dict(w.opts), {t: list(p) for t, p in w.traces.items()}
        return opts, {t: [(float(x), as_float(y)) for x, y in p] for t, p in traces.items()}

    def points(self, win: str, trace: str, start: int) -> list[tuple[float, float]]:
        """The points of one trace from ``start`` on, as floats (converted outside the lock)."""
        with self.lock:
            raw = self.windows[win].traces[trace][start:]
        return [(float(x), as_float(y)) for x, y in raw]

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
