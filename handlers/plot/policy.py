"""The plot policy: where plots go when a caller only says ``plot=True``, and who owns the server.

One rule for Python, Jupyter, the CLI and ``Animator``. ``$VISDOM_URL`` (or a ``url`` argument) names the
user's own server: used as it is when it answers, and never started or stopped here. Without it, plots
go to this user's shared local server (``handlers.visdom_server.shared``): started on 8097 (a free port
when 8097 is busy), kept while any of this user's processes draws on it, and replaced, with every point
re-sent, if it goes away mid-run. A ``$VISDOM_URL`` on this machine where nothing answers is where that
server starts. Another process's server on 8097 is never used unasked. Without any server the points go
to the run's replay log. ``D2L_IGNITE_PLOT`` (or ``--plot``) picks the back-end: ``visdom`` (the default),
``tensorboard``, or ``off`` (``0``): the run's record in its folder alone, which every back-end also writes.
"""
from __future__ import annotations

import atexit
import os
import sys
import time
from urllib.parse import urlsplit

from handlers.plot.base import Plotter, close_all
from handlers.plot.plotter import VisdomPlotter, new_env, server_url
from handlers.plot.report import runs_path, say
from handlers.plot.wire import VisdomAddress
from handlers.plot.wire import Wire
from handlers.progress import in_notebook
from handlers.visdom_server import shared
from handlers.visdom_server.access import page_link

__all__ = ["PLOT_SWITCH", "BACKENDS", "plot_backend", "plots_enabled", "live_url", "shared_server", "serving",
           "stop_shared_server", "default_plotter", "make_plotter", "run_plotter", "announce"]

PLOT_SWITCH = "D2L_IGNITE_PLOT"
BACKENDS = ("visdom", "tensorboard", "off")
_WORDS = {"": "visdom", "1": "visdom", "true": "visdom", "yes": "visdom", "on": "visdom",
          "0": "off", "false": "off", "no": "off", "none": "off"}
_LOCAL = ("127.0.0.1", "localhost", "::1")


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


def _named(url: str | None) -> bool:
    return url is not None or bool(os.environ.get("VISDOM_URL"))


_NO_SERVER_FOR = 30.0  # seconds a "no server at this address" answer is reused
_no_server: dict[str, float] = {}  # address -> when none could be had there


def live_url(url: str | None = None) -> tuple[str | None, bool]:
    """``(URL that answers, whether it is this user's shared server)``; ``(None, False)``, said once on
    stderr, when none can be had. That answer is kept for 30 s, so the next plotters (several Animators)
    do not each wait out the probe of an address that accepts but never answers."""
    key = server_url(url) if _named(url) else ""
    if time.monotonic() - _no_server.get(key, -_NO_SERVER_FOR) < _NO_SERVER_FOR:
        return None, False
    live, ours = _find_live(url)
    if live is None:
        _no_server[key] = time.monotonic()
    return live, ours


def _find_live(url: str | None) -> tuple[str | None, bool]:
    address = VisdomAddress(server_url(url))
    local = address.host in _LOCAL
    if _named(url):
        if local and _shared_on(address.port):
            return shared_server(address.port), True
        if Wire(address, 1.0, 5.0).is_visdom():
            return address.url, False
        if not local:
            say(f"nothing answers as Visdom at {address}; points go to the run's replay log")
            return None, False
    live = shared_server(address.port if _named(url) else None)
    return live, live is not None


def _shared_on(port: int) -> bool:
    """Whether this user's shared server runs on ``port`` (an unusable state folder: none does; said later, once,
    by the start that fails)."""
    try:
        return shared.find(port) is not None
    except OSError:
        return False


def shared_server(port: int | None = None) -> str | None:
    """The URL of this user's shared server, leased by this process (started when none runs; from a Jupyter
    kernel with jupyter-server-proxy, under its ``proxy/absolute/PORT`` path); None, said once, when it cannot
    start."""
    try:
        return shared.acquire(port, jupyter_proxy_path if _proxied() else None).url
    except (RuntimeError, OSError, TimeoutError, ValueError) as e:
        say(f"could not start a local Visdom server ({str(e).splitlines()[0]}); the curves go to the run "
            "folder's curves.png and replay log")
        return None


def _at_exit() -> None:
    """Close the open plotters first (their last points go to the server), then drop this process's lease."""
    close_all()
    shared.release()


atexit.register(_at_exit)  # after plotter's own close_all is registered: so it runs before it


def serving() -> shared.SharedServer | None:
    """The shared server this process draws on, while it runs (never starts one)."""
    return shared.held()


def stop_shared_server() -> shared.SharedServer | None:
    """This process no longer draws on the shared server (it stays while others do); return it."""
    return shared.release()


def default_plotter(out_dir: str | None = None, url: str | None = None, env: str | None = None) -> VisdomPlotter:
    """A plotter on a live server (see the module doc) in a fresh env, writing its record to ``out_dir``
    (default: ``runs/<env>``)."""
    env = env or new_env()
    live, ours = live_url(url)
    plotter = VisdomPlotter(live or server_url(url), env, out_dir=out_dir or runs_path(env), live=live is not None)
    plotter.yours = live is not None and not ours
    if ours:
        port = VisdomAddress(server_url(url)).port if _named(url) else None
        drawn_by = [shared.held()]
        plotter.sender.reconnect = lambda: _moved(plotter, port, drawn_by)
    return plotter


def _moved(plotter: VisdomPlotter, port: int | None, drawn_by: list) -> str | None:
    """On the sender thread, when the shared server went away: this user's shared server now (another
    process may have started it, maybe on the same port), with the new link said and, in Jupyter, shown."""
    try:
        server = shared.acquire(port, jupyter_proxy_path if _proxied() else None)
    except (RuntimeError, OSError, TimeoutError, ValueError):
        return None
    if drawn_by[0] is None or server.pid != drawn_by[0].pid:
        drawn_by[0] = server
        say(f"the Visdom server at {plotter.url} went away; every point is re-sent to {server.url}")
        announce(plotter, server.url)
    return server.url


def make_plotter(backend: str, out_dir: str | None = None, url: str | None = None, env: str | None = None) -> Plotter:
    """A plotter of ``backend`` (see ``plot_backend``) in a fresh env, its record in ``out_dir`` (``runs/<env>``)."""
    env = env or new_env()
    folder = out_dir or runs_path(env)
    if backend == "visdom":
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


def announce(plotter: Plotter, url: str | None = None) -> None:
    """Print the page's link before the first step; in Jupyter also show the live window under the cell. A
    back-end without a page (TensorBoard) says where its files are and how to view them."""
    if not isinstance(plotter, VisdomPlotter):
        print(f"Plots: {plotter.url}", flush=True)
        return
    link = page_link(plotter.url, plotter.env, shown_at=url)
    whose = "  (your own server, as $VISDOM_URL or --visdom says)" if getattr(plotter, "yours", False) else ""
    print(f"Live plots: {link}{whose}", flush=True)
    hint = ssh_hint(link) if "google.colab" not in sys.modules else None
    if hint:
        print(hint, flush=True)
    if in_notebook():
        show_frame(link)


def _proxied() -> bool:
    """In a Jupyter kernel, with a Jupyter server of this user's on this machine whose jupyter-server-proxy
    answers (JupyterLab or JupyterHub on a remote box). Asked of the server, not of an import: nbconvert,
    VS Code and other kernels without such a server get a frame on the page's own address instead."""
    if not in_notebook():
        return False
    if not _proxy_answer:
        _proxy_answer.append(_proxy_answers())
    return _proxy_answer[0]


_proxy_answer: list[bool] = []  # asked once per process


def _proxy_answers() -> bool:
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return False
    import requests

    for info in list_running_servers():
        try:  # the proxy's handler answers for any port (502 when nothing listens); without it: 404
            r = requests.get(info["url"].rstrip("/") + "/proxy/absolute/1/", params={"token": info.get("token", "")},
                             timeout=2, allow_redirects=False)
        except (requests.RequestException, KeyError):
            continue
        if r.status_code != 404:
            return True
    return False


def jupyter_proxy_path(port: int) -> str:
    """Where jupyter-server-proxy serves ``port`` unchanged: ``[hub prefix]/proxy/absolute/PORT`` (the server
    runs under that path, so its pages' own links work through the proxy)."""
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/").rstrip("/")
    return f"{prefix}/proxy/absolute/{port}"


def show_frame(link: str) -> None:
    """The live window under the cell. A remote kernel's loopback is not the browser's: with
    jupyter-server-proxy the frame opens the page through Jupyter's own origin; in Colab through Colab's
    proxy for the kernel port (a whole origin of its own, so Visdom's absolute paths work)."""
    address, parts = VisdomAddress(link), urlsplit(link)
    local = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")  # the token stays with the path
    if _proxied() and address.host in _LOCAL and address.base.startswith(jupyter_proxy_path(address.port)):
        link = local  # the page's own origin (Jupyter's), which the browser reaches wherever it is
    elif "google.colab" in sys.modules and address.host in _LOCAL:
        from google.colab import output  # type: ignore[import-not-found]

        output.serve_kernel_port_as_iframe(address.port, path=local, height=480)
        return
    from IPython.display import IFrame, display

    display(IFrame(link, width="100%", height=480))


def ssh_hint(link: str) -> str | None:
    """On a machine reached over SSH, the tunnel that makes a loopback link open in the user's own browser:
    to the address and port this SSH session came in on (``$SSH_CONNECTION``: client ip, port, server ip, port)."""
    address = VisdomAddress(link)
    fields = os.environ.get("SSH_CONNECTION", "").split()
    if address.host not in _LOCAL or len(fields) < 4:
        return None
    import getpass

    host, port = fields[2], fields[3]
    flag = f" -p {port}" if port != "22" else ""
    return (f"  (this machine is reached over SSH: on yours, run `ssh -N -L {address.port}:127.0.0.1:{address.port}"
            f"{flag} {getpass.getuser()}@{host}` and open the link there)")
