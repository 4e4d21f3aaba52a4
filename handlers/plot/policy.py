"""The plot policy: where plots go when a caller only says ``plot=True``, and who owns the plotter.

One rule for Python, Jupyter and the CLI.
The server at ``$VISDOM_URL`` (default 127.0.0.1:8097) if it answers as Visdom; else, when that
address is this machine's and no URL was given explicitly, a local server started once per process
(port 8097 if free, else a free one; 127.0.0.1 only), shared by every run and stopped at exit; else
no server, and the points go to the run's replay log. ``D2L_IGNITE_PLOT=0`` turns plotting off.
"""
from __future__ import annotations

import atexit
import os

from handlers.plot.plotter import VisdomPlotter, new_env, server_url
from handlers.plot.report import runs_path, say
from handlers.plot.wire import VisdomAddress
from handlers.plot.wire import Wire
from handlers.progress import in_notebook
from handlers.visdom_server import LocalVisdom, port_in_use

__all__ = ["PLOT_SWITCH", "plots_enabled", "live_url", "shared_server", "serving", "stop_shared_server",
           "default_plotter", "run_plotter", "announce"]

PLOT_SWITCH = "D2L_IGNITE_PLOT"
_LOCAL = ("127.0.0.1", "localhost", "::1")
_server: LocalVisdom | None = None


def plots_enabled() -> bool:
    """False when ``$D2L_IGNITE_PLOT`` is 0/false/no/off (CI, tests, batch jobs)."""
    return os.environ.get(PLOT_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def live_url(url: str | None = None, env_path: str | None = None) -> str | None:
    """A Visdom URL that answers, or None (said once, on stderr) when none can be had."""
    address = VisdomAddress(server_url(url))
    if Wire(address, 1.0, 5.0).is_visdom():
        return address.url
    if url is not None or address.host not in _LOCAL:
        say(f"nothing answers as Visdom at {address}; points go to the run's replay log")
        return None
    return shared_server(env_path)


def shared_server(env_path: str | None = None) -> str | None:
    """This process's local server (started on first use, kept until exit; envs in ``env_path``, default
    ``runs/visdom``); None when it cannot start."""
    global _server
    if serving() is not None:
        return _server.url
    port = None if port_in_use("127.0.0.1", 8097) else 8097
    try:
        _server = LocalVisdom(port, env_path=env_path).start()
    except (RuntimeError, OSError, TimeoutError, ValueError) as e:
        say(f"could not start a local Visdom server ({str(e).splitlines()[0]}); training goes on, the curves go "
             "to the run folder's curves.png and replay log")
        return None
    atexit.register(stop_shared_server)
    return _server.url


def serving() -> LocalVisdom | None:
    """This process's server while it runs (never starts one)."""
    alive = _server is not None and _server.process is not None and _server.process.poll() is None
    return _server if alive else None


def stop_shared_server() -> LocalVisdom | None:
    """Stop this process's server, if one was started; return it (its env folder says where plots were saved)."""
    global _server
    server, _server = _server, None
    if server is not None:
        server.stop()
    return server


def default_plotter(out_dir: str | None = None, url: str | None = None, env: str | None = None,
                    env_path: str | None = None) -> VisdomPlotter:
    """A plotter on a live server (see the module doc) in a fresh env, writing its PNG to ``out_dir``
    (default: ``runs/<env>``); a server started for it keeps its envs in ``env_path``."""
    env = env or new_env()
    live = live_url(url, env_path)
    return VisdomPlotter(live or server_url(url), env, out_dir=out_dir or runs_path(env),
                         live=live is not None)


def run_plotter(plot: bool | VisdomPlotter | None, out_dir: str | None = None) -> tuple[VisdomPlotter | None, bool]:
    """``(plotter, owned)`` for a run's ``plot`` argument: True gives a plotter of the run's own (owned: the run
    closes it), unless ``$D2L_IGNITE_PLOT=0``; a ``VisdomPlotter`` is the caller's (the run only flushes it);
    False/None gives none."""
    if plot is True:
        return (default_plotter(out_dir), True) if plots_enabled() else (None, False)
    if plot is None or plot is False:
        return None, False
    if not isinstance(plot, VisdomPlotter):
        raise TypeError(f"plot must be True, False or a handlers.VisdomPlotter, got {type(plot).__name__}")
    if plot.closed:
        raise ValueError(f"plot is a closed VisdomPlotter (env {plot.env!r}): it takes no more points; make a new "
                         "one, or pass plot=True")
    return plot, False


def announce(plotter: VisdomPlotter) -> None:
    """Print the page's link before the first step; in Jupyter also show the live window under the cell."""
    link = f"{plotter.url}/env/{plotter.env}"
    print(f"Live plots: {link}", flush=True)
    if in_notebook():
        from IPython.display import IFrame, display

        display(IFrame(link, width="100%", height=480))
