"""A run's own plot record in its run folder, whichever server drew it (or none).

``visdom/<env>.json`` is the env as Visdom saves it (what ``d2l-ignite visdom`` serves), built here from
the plotter's own points with Visdom's own window code, so it never depends on a server's folder or on
the server having had every point; long traces hold the page's view (``decimate``). ``curves.npz`` holds
every point of every trace (``export`` reads it for CSV and HTML).
"""
from __future__ import annotations

import json
import os
import zipfile
from typing import Any

import numpy as np

from handlers.plot.decimate import decimate
from handlers.plot.store import PlotStore
from handlers.local import write_atomic

__all__ = ["window_message", "page_view", "page_message", "write_env", "write_points", "read_points"]


def _builder(env: str) -> Any:
    """Visdom's own client in a mode where it only builds messages and never touches the network."""
    from visdom import Visdom

    vis = Visdom(send=False, use_incoming_socket=False, env=env, raise_exceptions=True)
    vis.offline = True  # skips the win_exists round trip its append path would make
    return vis


def window_message(env: str, win: str, opts: dict[str, Any], traces: dict[str, list[tuple[float, float]]]) -> dict:
    """One ``events`` message that (re)creates a whole line window with all its traces."""
    vis = _builder(env)
    datas, msg = [], None
    visdom_opts = {k: v for k, v in opts.items() if k not in ("legend", "grow_y")}
    if visdom_opts.get("title"):  # left-aligned: Plotly's toolbar sits at the top right, over a centred title
        visdom_opts.setdefault("layoutopts", {"plotly": {"title": {"text": visdom_opts["title"], "x": 0.02,
                                                                   "xanchor": "left"}}})
    for name, points in traces.items():
        if not points:
            continue
        xs = np.array([p[0] for p in points], dtype=float)
        ys = np.array([p[1] for p in points], dtype=float)
        msg, _ = vis.line(Y=ys, X=xs, win=win, env=env, name=name, opts=dict(visdom_opts, showlegend=True))
        datas.extend(msg["data"])
    if msg is None:
        raise ValueError(f"window {win!r} has no points yet")
    msg["data"] = datas
    return msg


def page_view(traces: dict[str, tuple]) -> dict[str, list[tuple[float, float]]]:
    """The points of each trace with any, as the page draws them (``decimate``), from ``{trace: (xs, ys)}``."""
    return {t: list(zip(*decimate(xs, ys))) for t, (xs, ys) in traces.items() if len(xs)}


def page_message(store: PlotStore, env: str, win: str) -> tuple[dict | None, dict[str, int]]:
    """The ``events`` message that draws ``win`` whole as the page shows it (None while it has no point), and
    how many points of each trace it stands for."""
    opts, traces = store.arrays(win)
    view = page_view(traces)
    return (window_message(env, win, opts, view) if view else None), {t: len(xs) for t, (xs, _) in traces.items()}


def _env_json(store: PlotStore, env: str) -> dict[str, Any]:
    from visdom.utils.server_utils import window

    jsons = {}
    for i, win in enumerate(list(store.windows)):
        msg, _ = page_message(store, env, win)
        if msg is not None:
            jsons[win] = dict(window(msg), i=i)
    return {"jsons": jsons, "reload": {}}


def write_env(store: PlotStore, env: str, folder: str) -> str:
    """Write ``folder/visdom/<env>.json`` (atomically); return its path."""
    data = json.dumps(_env_json(store, env)).encode()
    return write_atomic(os.path.join(folder, "visdom", f"{env}.json"), lambda f: f.write(data))


def write_points(store: PlotStore, folder: str) -> str:
    """Write ``folder/curves.npz``: every point (x, y and its wall time), each window's options and trace names."""
    arrays: dict[str, np.ndarray] = {}
    meta = []
    for i, win in enumerate(list(store.windows)):
        (opts, traces), times = store.arrays(win), store.times(win)
        meta.append({"window": win, "opts": opts, "traces": list(traces)})
        for j, (name, (xs, ys)) in enumerate(traces.items()):
            arrays[f"x{i}_{j}"], arrays[f"y{i}_{j}"], arrays[f"t{i}_{j}"] = xs, ys, times[name][: len(xs)]
    arrays["meta"] = np.array(json.dumps(meta))
    return write_atomic(os.path.join(folder, "curves.npz"), lambda f: np.savez(f, **arrays))


def read_points(path: str, times: bool = False) -> list[tuple[str, dict[str, Any], dict[str, tuple]]]:
    """``[(window, opts, {trace: (xs, ys)})]`` from a ``curves.npz``; with ``times``, ``(xs, ys, wall times)``
    (nan where a record has none). A file this project did not write is a ``ValueError`` naming it."""
    try:
        return _read_points(path, times)
    except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, zipfile.BadZipFile) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{path} is not a curves.npz this project wrote ({type(e).__name__}); re-export from a "
                         "run folder, or run again") from None


def _read_points(path: str, times: bool) -> list[tuple[str, dict[str, Any], dict[str, tuple]]]:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))

        def arrays(i: int, j: int) -> tuple:
            xs = data[f"x{i}_{j}"]
            ts = data[f"t{i}_{j}"] if f"t{i}_{j}" in data else np.full(len(xs), np.nan)
            return (xs, data[f"y{i}_{j}"], ts) if times else (xs, data[f"y{i}_{j}"])

        return [(m["window"], m["opts"], {t: arrays(i, j) for j, t in enumerate(m["traces"])})
                for i, m in enumerate(meta)]
