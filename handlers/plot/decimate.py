"""The page's view of a long trace: at most a few thousand points that keep every peak, dip and gap.

Visdom re-serialises a whole window on every append and Plotly redraws every point, so a trace of
100k points makes both the server and the page crawl. Past ``LIMIT`` points a trace is cut into
buckets, and each bucket keeps its first, lowest, highest and last point (and its first gap, a NaN),
in order: the drawn line has the same envelope as the full one. Only the page gets this view; the
record (PNG, CSV, checkpoints, ``curves.npz``) keeps every point.
"""
from __future__ import annotations

import numpy as np

__all__ = ["LIMIT", "decimate"]

LIMIT = 4000
_KEPT = 5  # points a bucket may keep: first, lowest, highest, last, first NaN


def decimate(xs: np.ndarray, ys: np.ndarray, limit: int = LIMIT) -> tuple[np.ndarray, np.ndarray]:
    """``(xs, ys)`` itself when it has at most ``limit`` points, else an envelope-preserving subset."""
    n = len(ys)
    if n <= limit:
        return xs, ys
    size = -(-n // max(1, limit // _KEPT))
    rows = -(-n // size)
    padded = np.full(rows * size, np.nan)
    padded[:n] = ys
    grid = padded.reshape(rows, size)
    gaps = np.isnan(grid)
    base = np.arange(rows) * size
    last = np.minimum(base + size, n) - 1
    lowest = base + np.where(gaps, np.inf, grid).argmin(axis=1)
    highest = base + np.where(gaps, -np.inf, grid).argmax(axis=1)
    real_gaps = gaps.copy()
    real_gaps.reshape(-1)[n:] = False  # the padding is not a gap of the trace
    first_gap = np.where(real_gaps.any(axis=1), base + real_gaps.argmax(axis=1), base)
    keep = np.unique(np.concatenate([base, lowest, highest, last, first_gap]))
    keep = keep[keep < n]
    return xs[keep], ys[keep]
