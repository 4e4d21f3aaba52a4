"""Which back-end shows a run's curves, and the plotter a run gets: the one module that names the back-ends.

``D2L_IGNITE_PLOT`` (or ``--plot``, ``train_ch13(plot=...)``) picks ``visdom`` (the default), ``tensorboard``, or
``off`` (``0``): the run's record in its folder alone, which every back-end also writes. A back-end's module is
imported only when it is chosen, so a run with plots off, or in TensorBoard, loads no Visdom code.
"""
from __future__ import annotations

import os
import secrets
import time

from handlers.plot.base import Plotter
from handlers.plot.report import runs_path

__all__ = ["PLOT_SWITCH", "BACKENDS", "plot_backend", "plots_enabled", "new_env", "check_address", "make_plotter",
           "run_plotter"]

PLOT_SWITCH = "D2L_IGNITE_PLOT"
BACKENDS = ("visdom", "tensorboard", "off")
_WORDS = {"": "visdom", "1": "visdom", "true": "visdom", "yes": "visdom", "on": "visdom",
          "0": "off", "false": "off", "no": "off", "none": "off"}


def plot_backend(choice: str | None = None) -> str:
    """The back-end's name: ``choice`` (``--plot``, ``train_ch13(plot="...")``), else ``$D2L_IGNITE_PLOT``, else
    visdom; 1/0 (true/false, yes/no, on/off) stay the switch they were."""
    raw = (os.environ.get(PLOT_SWITCH, "visdom") if choice is None else choice).strip().lower()
    word = _WORDS.get(raw, raw)
    if word not in BACKENDS:
        where = f"{PLOT_SWITCH}={raw!r}" if choice is None else f"plot={choice!r}"
        raise ValueError(f"{where} names no plot back-end; use one of {', '.join(BACKENDS)} (0 is off)")
    return word


def plots_enabled() -> bool:
    """False when ``$D2L_IGNITE_PLOT`` is off (0/false/no: CI, tests, batch jobs): the record alone."""
    return plot_backend() != "off"


def new_env() -> str:
    """A fresh env name per run: its start time, and a random suffix so runs started in the same
    second (or by several users) never share an env or a run folder."""
    return time.strftime("d2l-ignite-%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def check_address(url: str | None) -> None:
    """A malformed server address (``--visdom``) fails whatever the back-end, before a run folder is made."""
    if url or os.environ.get("VISDOM_URL"):
        from handlers.plot.plotter import server_url
        from handlers.plot.wire import VisdomAddress

        VisdomAddress(server_url(url))


def make_plotter(backend: str, out_dir: str | None = None, url: str | None = None, env: str | None = None) -> Plotter:
    """A plotter of ``backend`` (see ``plot_backend``) in a fresh env, its record in ``out_dir`` (``runs/<env>``)."""
    env = env or new_env()
    folder = out_dir or runs_path(env)
    if backend == "visdom":
        from handlers.plot.policy import default_plotter

        return default_plotter(folder, url, env)
    if backend == "tensorboard":
        from handlers.plot.tensorboard import TensorboardPlotter

        return TensorboardPlotter(env, out_dir=folder)
    return Plotter(env, out_dir=folder)


def run_plotter(plot: bool | str | Plotter | None, out_dir: str | None = None) -> tuple[Plotter | None, bool]:
    """``(plotter, owned)`` for a run's ``plot`` argument: True (the back-end ``$D2L_IGNITE_PLOT`` names) or a
    back-end's name gives a plotter of the run's own (owned: the run closes it); a ``Plotter`` is the caller's
    (the run only flushes it); False/None gives the record alone when ``out_dir`` is given, else nothing."""
    if plot is True or isinstance(plot, str):
        return make_plotter(plot_backend(None if plot is True else plot), out_dir), True
    if plot is None or plot is False:
        return (Plotter(new_env(), out_dir=out_dir), True) if out_dir else (None, False)
    if not isinstance(plot, Plotter):
        raise TypeError(f"plot must be True, False, one of {', '.join(BACKENDS)} or a handlers.Plotter, got "
                        f"{type(plot).__name__}")
    if plot.closed:
        raise ValueError(f"plot is a closed plotter (env {plot.env!r}): it takes no more points; make a new "
                         "one, or pass plot=True")
    return plot, False
