"""Saved runs in Visdom: serve every run under ``./runs`` at once, and compare runs side by side.

Each run keeps its Visdom env in its own folder (``runs/<env>/visdom/<env>.json``, or the shared
``runs/visdom/``); Visdom serves one flat folder, so ``serve_folder`` gathers them there. Visdom's own
compare view draws the legend but no curves for these windows, so ``compare_envs`` builds an env of
its own: one window per series (``train loss``, ...), one trace per run.
"""
from __future__ import annotations

import glob
import json
import os

from handlers.plot import VisdomAddress
from handlers.visdom_server.serve import gather
from handlers.plot.wire import Wire, window_message

__all__ = ["serve_folder", "newest_env", "compare_envs", "compare_name"]


def serve_folder(path: str) -> str:
    """The folder to serve for ``path``: itself when it already holds envs (``*.json``), else
    ``path/visdom`` with every ``path/*/visdom/*.json`` copied in (newer copies win)."""
    if glob.glob(os.path.join(path, "*.json")) or os.path.basename(os.path.normpath(path)) == "visdom":
        os.makedirs(path, exist_ok=True)
        return path
    folder = os.path.join(path, "visdom")
    os.makedirs(folder, exist_ok=True)
    gather(path, folder)  # the rule the server applies again every 2 s for runs saved later
    return folder


def newest_env(folder: str) -> str | None:
    """The most recently saved run's env in ``folder`` (not Visdom's ``main``, nor a comparison), for the link."""
    envs = [f for f in glob.glob(os.path.join(folder, "*.json")) if _is_run(os.path.basename(f)[: -len(".json")])]
    return os.path.basename(max(envs, key=os.path.getmtime))[: -len(".json")] if envs else None


def _is_run(env: str) -> bool:
    """A run's env: not Visdom's ``main``, nor a comparison this command built."""
    return env != "main" and not env.startswith("compare-")


def compare_name(envs: list[str]) -> str:
    """``compare-<suffix>-<suffix>...`` for a few runs; for many, a short name that still fits a file name."""
    if len(envs) <= 4:
        return "compare-" + "-".join(e.rsplit("-", 1)[-1] for e in envs)
    import hashlib

    return f"compare-{len(envs)}-runs-" + hashlib.sha256("\n".join(envs).encode()).hexdigest()[:8]


def _check_envs(wire: Wire, url: str, envs: list[str]) -> None:
    import requests

    try:
        held = json.loads(wire.post("env_state", {}) or "[]")
    except requests.RequestException:
        raise ConnectionError(f"no Visdom server answers at {url}: start one on the saved runs with `d2l-ignite "
                              "visdom`, or pass --visdom URL") from None
    missing = [e for e in envs if e not in held]
    if missing:
        runs = ", ".join(sorted(e for e in held if _is_run(e))) or "none"
        raise ValueError(f"{url} does not hold {', '.join(missing)}; it holds: {runs[:400]}")


def compare_envs(url: str, envs: list[str], name: str) -> dict[str, int]:
    """Post env ``name`` with a window per series of ``envs`` and a trace per env; return traces per window."""
    wire = Wire(VisdomAddress(url))
    _check_envs(wire, url, envs)
    series: dict[str, dict[str, list[tuple[float, float]]]] = {}
    titles: dict[str, str] = {}
    for env in envs:
        windows = json.loads(wire.post("win_data", {"eid": env, "win": None}) or "{}")
        if not windows:
            raise ValueError(f"env {env!r} has no windows on {url}; list the runs with `d2l-ignite visdom`")
        for win in windows.values():
            for trace in win.get("content", {}).get("data", []):
                series.setdefault(trace["name"], {})[env] = list(zip(trace["x"], trace["y"]))
                title = win.get("content", {}).get("layout", {}).get("xaxis", {}).get("title")
                titles.setdefault(trace["name"], title if isinstance(title, str) and title else "epoch")
    for trace_name, runs in series.items():
        opts = {"title": f"{trace_name}: {len(runs)} runs", "xlabel": titles[trace_name], "legend": list(runs),
                "markers": True, "markersize": 4, "width": 560, "height": 380}
        wire.post("events", window_message(name, trace_name, opts, runs))
    wire.post("save", {"data": [name], "eid": name})
    return {trace_name: len(runs) for trace_name, runs in series.items()}
