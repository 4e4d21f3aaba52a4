"""The run folder and the plot set-up of a command-line run, decided in one place."""
from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator

from handlers.plot import VisdomAddress, VisdomPlotter, new_env, server_url
from handlers.visdom_server import LocalVisdom
from handlers.plot.wire import Wire

__all__ = ["plot_for_run", "new_run_dir"]


def new_run_dir(out: str | None, env: str) -> str:
    """A fresh run folder; an existing non-empty one is refused so nothing of an earlier run is overwritten."""
    folder = out or os.path.join("runs", env)
    if os.path.isdir(folder) and os.listdir(folder):
        raise FileExistsError(f"run folder {folder} already holds files; choose a new --out")
    os.makedirs(folder, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"run folder {folder} is not writable; choose another --out")
    return folder


@contextlib.contextmanager
def plot_for_run(
    out: str | None, url: str | None, plot: bool, keep_serving: bool = False
) -> Iterator[tuple[VisdomPlotter | None, str]]:
    """Yield ``(plotter, run folder)``; start a local Visdom for the run when none answers locally."""
    env = new_env()
    address = VisdomAddress(server_url(url))
    folder = new_run_dir(out, env)
    server = None
    if plot and not Wire(address, 1.0, 5.0).alive():
        if url is None and address.host in ("127.0.0.1", "localhost"):
            server = LocalVisdom(env_path=os.path.join(folder, "visdom")).start()
            address = VisdomAddress(server.url)
        else:
            print(f"[visdom] nothing answers at {address}; points go to the run's replay log", file=sys.stderr)
    if plot:
        print(f"Live plots: {address.url}/env/{env}", flush=True)
    plotter = VisdomPlotter(address.url, env, out_dir=folder) if plot else None
    try:
        yield plotter, folder
    finally:
        if server is not None:
            _linger(server, env, folder, keep_serving)
        _report(folder)


def _report(folder: str) -> None:
    """Name the run folder, or remove it when a run failed before writing anything into it."""
    if os.path.isdir(folder) and not os.listdir(folder):
        os.rmdir(folder)
    else:
        print(f"Run folder: {folder}", flush=True)


def _linger(server: LocalVisdom, env: str, folder: str, keep_serving: bool) -> None:
    if keep_serving:
        print(f"Serving the plots at {server.url}/env/{env} until Ctrl-C", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while server.process is not None and server.process.poll() is None:
                time.sleep(0.5)
    server.stop()
    print(f"View them again any time: d2l-ignite visdom --env-path {os.path.join(folder, 'visdom')}", flush=True)
