"""Saved runs: serve every run under ``./runs`` at once, list them, and compare them side by side.

Each run keeps its Visdom env in its own folder (``runs/<name>/visdom/<name>.json``); Visdom serves one flat
folder, so ``serve_folder`` gathers them there. ``compare_runs`` reads the runs' own records (``curves.npz``,
``run.json``: no server needs to hold them) and posts one env of its own: a window per series (``train
loss``, ...), a trace per run, each named by what differs between the runs' manifests (``lr 0.003``).
``run_windows`` rebuilds one run's windows from its record, for ``replay`` to send to a server that missed them.
"""
from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable

from engine.app.export import run_record
from engine.manifest import read_manifest
from handlers.plot import VisdomAddress
from handlers.plot.decimate import decimate
from handlers.plot.record import read_points
from handlers.plot.record import page_view, window_message
from handlers.plot.report import RUN_NAME
from handlers.plot.wire import Wire
from handlers.visdom_server.serve import gather

__all__ = ["serve_folder", "newest_env", "compare_runs", "run_windows", "post_env", "compare_name", "run_labels",
           "list_runs", "serve_shared"]


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


def serve_shared(port: int | None, folder: str, watch: str | None, hint: Callable[[str], None]) -> int:
    """Serve ``folder`` as this user's shared server, so runs started meanwhile draw on this page live; Ctrl-C
    stops it unless a run still draws on it (then it ends as the shared server does, after its last run)."""
    import time

    from handlers.local import free_port
    from handlers.visdom_server import shared
    from handlers.visdom_server.access import page_link

    running = shared.find(port)
    if port is None and running is not None and os.path.realpath(running.env_path) != os.path.realpath(folder):
        port = free_port()
        print(f"Port {running.port} holds this user's plot server of earlier runs ({page_link(running.url)}, it ends "
              f"{shared.linger():g} s after its last run); runs started from now on draw here instead", flush=True)
    server = shared.acquire(port, env_path=folder, watch_runs=watch)
    if os.path.realpath(server.env_path) != os.path.realpath(folder):
        shared.release()
        raise ValueError(f"port {server.port} is already in use by this user's plot server, which serves "
                         f"{server.env_path} ({page_link(server.url)}); choose another --port, or run this again "
                         f"once it has ended ({shared.linger():g} s after its last run)")
    link = page_link(server.url, newest_env(folder))
    try:  # from the printed link on, Ctrl-C is a clean stop (the hint's first import takes a while)
        print(f"Visdom is serving {folder} at {link}  (runs started meanwhile draw here live; Ctrl-C stops it)",
              flush=True)
        hint(link)
        while server.alive():
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        if not shared.stop_if_idle(server):
            print(f"Runs still draw on {link}: it stays until {shared.linger():g} s after the last", flush=True)


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
    records = [run_record(r) for r in runs]
    labels = run_labels([os.path.dirname(r) for r in records])
    series: dict[str, dict[str, list[tuple[float, float]]]] = {}
    xlabels: dict[str, str] = {}
    for label, record in zip(labels, records):
        for _, opts, traces in read_points(record):
            for trace, (xs, ys) in traces.items():
                series.setdefault(trace, {})[label] = list(zip(*decimate(xs, ys)))
                xlabels.setdefault(trace, opts.get("xlabel") or "epoch")
    post_env(url, name, [window_message(name, trace, {
        "title": f"{trace}: {len(lines)} runs", "xlabel": xlabels[trace], "legend": list(lines), "width": 560,
        "height": 380}, lines) for trace, lines in series.items()])
    return {trace: len(lines) for trace, lines in series.items()}


def run_windows(run: str) -> tuple[str, list[dict], int]:
    """A run's env, its windows as whole-window Visdom messages (line plots only, whatever the file says) and
    its number of points; a record Visdom cannot draw is a ``ValueError`` naming it, before anything is sent."""
    record = run_record(run)
    folder = os.path.dirname(record)
    saved = [os.path.basename(f)[: -len(".json")] for f in glob.glob(os.path.join(folder, "visdom", "*.json"))]
    env = saved[0] if len(saved) == 1 and RUN_NAME.fullmatch(saved[0]) else os.path.basename(os.path.abspath(folder))
    if not RUN_NAME.fullmatch(env):
        raise ValueError(f"{folder} names no env Visdom can save (letters, digits, '-', '_', '.'); rename the folder")
    windows, messages = read_points(record), []
    for win, opts, traces in windows:
        view = page_view(traces)
        try:
            messages += [window_message(env, win, opts, view)] if view else []
        except (AssertionError, TypeError, ValueError, KeyError) as e:
            raise ValueError(f"{record}: window {str(win)[:40]!r} cannot be drawn ({type(e).__name__}: "
                             f"{str(e)[:80]}); nothing was sent") from None
    return env, messages, sum(len(xs) for _, _, traces in windows for xs, _ in traces.values())


def post_env(url: str, env: str, windows: list[dict]) -> None:
    """Draw ``windows`` (whole-window messages) in ``env`` and have the server save it."""
    import requests

    wire = Wire(VisdomAddress(url))
    try:
        for msg in windows:
            wire.post("events", msg)
        wire.post("save", {"data": [env], "eid": env})
    except requests.RequestException:
        raise ConnectionError(f"no Visdom server answers at {url}: start one on the saved runs with `d2l-ignite "
                              "visdom`, or pass --visdom URL") from None


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
