"""The run folder and the plot set-up of a command-line run, decided in one place."""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

from engine.plotting import default_plotter, plots_enabled, serving, stop_shared_server
from handlers.plot import VisdomAddress, VisdomPlotter, new_env, server_url

__all__ = ["plot_for_run", "new_run_dir"]


def new_run_dir(out: str | None, env: str) -> str:
    """A fresh run folder, created exclusively: an existing one (even empty, even made by a run started
    at the same moment) is never reused, so no two runs share or overwrite a folder."""
    folder = out or os.path.join("runs", env)
    os.makedirs(os.path.dirname(os.path.abspath(folder)), exist_ok=True)
    try:
        os.mkdir(folder)
    except FileExistsError:
        held = "already holds files" if os.path.isdir(folder) and os.listdir(folder) else "already exists"
        raise FileExistsError(f"run folder {folder} {held}; choose a new --out (each run gets its own)") from None
    if not os.access(folder, os.W_OK):
        os.rmdir(folder)
        raise PermissionError(f"run folder {folder} is not writable; choose another --out")
    return folder


@contextlib.contextmanager
def plot_for_run(
    out: str | None, url: str | None, plot: bool, keep_serving: bool = False
) -> Iterator[tuple[VisdomPlotter | None, str]]:
    """Yield ``(plotter, run folder)``: the same plot rule as ``train_ch13`` (``engine.plotting``), with
    a server started for the run keeping its envs in the run folder."""
    env = new_env()
    VisdomAddress(server_url(url))  # a malformed --visdom fails even with --no-plot, before any folder
    plot = plot and plots_enabled()
    folder = new_run_dir(out, env)
    plotter = default_plotter(folder, url, env, env_path=os.path.join(folder, "visdom")) if plot else None
    try:
        yield plotter, folder
    finally:
        if plotter is not None:
            plotter.close()
        if keep_serving and serving() is not None:
            print(f"Serving the plots at {plotter.url}/env/{env} until Ctrl-C", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while serving() is not None:
                    time.sleep(0.5)
        server = stop_shared_server()
        if server is not None:
            print(f"View them again any time: d2l-ignite visdom --env-path {server.env_path}", flush=True)
        _report(folder)


def _report(folder: str) -> None:
    """Name the run folder, or remove it when a run failed before writing anything into it."""
    if os.path.isdir(folder) and not os.listdir(folder):
        os.rmdir(folder)
    else:
        print(f"Run folder: {folder}", flush=True)
