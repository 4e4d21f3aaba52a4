"""Saved runs: serve every run under ``./runs`` at once, list them, and compare them side by side.

Each run keeps its Visdom env in its own folder (``runs/<name>/visdom/<name>.json``); Visdom serves one flat
folder, so ``serve_folder`` gathers them there. ``compare_runs`` reads the runs' own records (``curves.npz``,
``run.json``: no server needs to hold them) and posts one env of its own: a window per series (``train
loss``, ...), a trace per run, each named by what differs between the runs' manifests (``lr 0.003``).
"""
from __future__ import annotations

import glob
import json
import os

from engine.app.export import run_record
from engine.manifest import read_manifest
from handlers.plot import VisdomAddress
from handlers.plot.decimate import decimate
from handlers.plot.record import read_points
from handlers.plot.record import window_message
from handlers.plot.wire import Wire
from handlers.visdom_server.serve import gather

__all__ = ["serve_folder", "newest_env", "compare_runs", "compare_name", "run_labels", "list_runs"]


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


def compare_name(runs: list[str]) -> str:
    """``compare-<name>-<name>...`` for a few runs; for many, a short name that still fits a file name."""
    names = [os.path.basename(os.path.normpath(r)).rsplit("-", 1)[-1] for r in runs]
    if len(runs) <= 4:
        return "compare-" + "-".join(names)
    import hashlib

    return f"compare-{len(runs)}-runs-" + hashlib.sha256("\n".join(runs).encode()).hexdigest()[:8]


def run_labels(folders: list[str]) -> list[str]:
    """A legend entry per run: the hyper-parameters whose values differ between the runs (``lr 0.003, batch_size
    128``), else the run's name."""
    params = [read_manifest(f).get("hyperparameters", {}) for f in folders]
    keys = sorted({k for p in params for k in p}, key=lambda k: (k not in ("lr", "batch_size", "optimizer"), k))
    differ = [k for k in keys if len({json.dumps(p.get(k)) for p in params}) > 1]
    labels = [", ".join(f"{k} {p.get(k)}" for k in differ) or os.path.basename(os.path.normpath(f))
              for p, f in zip(params, folders)]
    return labels if len(set(labels)) == len(labels) else [f"{os.path.basename(os.path.normpath(f))}: {label}"
                                                          for f, label in zip(folders, labels)]


def compare_runs(url: str, runs: list[str], name: str) -> dict[str, int]:
    """Post env ``name`` with a window per series of ``runs`` (folders or names) and a trace per run; return the
    traces per window."""
    import requests

    records = [run_record(r) for r in runs]
    labels = run_labels([os.path.dirname(r) for r in records])
    series: dict[str, dict[str, list[tuple[float, float]]]] = {}
    xlabels: dict[str, str] = {}
    for label, record in zip(labels, records):
        for _, opts, traces in read_points(record):
            for trace, (xs, ys) in traces.items():
                series.setdefault(trace, {})[label] = list(zip(*decimate(xs, ys)))
                xlabels.setdefault(trace, opts.get("xlabel") or "epoch")
    wire = Wire(VisdomAddress(url))
    try:
        for trace, lines in series.items():
            opts = {"title": f"{trace}: {len(lines)} runs", "xlabel": xlabels[trace], "legend": list(lines),
                    "width": 560, "height": 380}
            wire.post("events", window_message(name, trace, opts, lines))
        wire.post("save", {"data": [name], "eid": name})
    except requests.RequestException:
        raise ConnectionError(f"no Visdom server answers at {url}: start one on the saved runs with `d2l-ignite "
                              "visdom`, or pass --visdom URL") from None
    return {trace: len(lines) for trace, lines in series.items()}


def list_runs(folder: str) -> list[str]:
    """One line per run under ``folder`` (newest last): name, when, how it ended, epochs, last figures."""
    rows = []
    for path in sorted(glob.glob(os.path.join(folder, "*", "run.json")), key=os.path.getmtime):
        m = read_manifest(os.path.dirname(path))
        final = m.get("final") or {}
        figures = ", ".join(f"{k.replace('_', ' ')} {final[k]:.3f}" for k in ("train_loss", "train_acc", "test_acc")
                            if isinstance(final.get(k), float))
        rows.append(f"{os.path.dirname(path)}  {str(m.get('started', '?'))[:16]}  {m.get('status', '?')}  "
                    f"{final.get('epochs', 0)} epochs  {figures or '-'}")
    return rows
