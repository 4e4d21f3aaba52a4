"""The Visdom back-end's server rule: where its points go when a caller only says ``plot=True``, and who owns the
server.

One rule for Python, Jupyter, the CLI and ``Animator``. ``$VISDOM_URL`` (or a ``url`` argument) names the
user's own server: used as it is when it answers, and never started or stopped here. Without it, plots
go to this user's shared local server (``handlers.visdom_server.shared``): started on 8097 (a free port
when 8097 is busy), kept while any of this user's processes draws on it, and replaced, with every point
re-sent, if it goes away mid-run. A ``$VISDOM_URL`` on this machine where nothing answers is where that
server starts. Another process's server on 8097 is never used unasked. Without any server the points stay
in the run's record (``d2l-ignite replay`` sends them later).
"""
from __future__ import annotations

import atexit
import contextlib
import os
import time

from handlers.plot.backends import new_env
from handlers.plot.base import close_all
from handlers.plot.links import LOCAL, jupyter_proxy_path, proxied, ssh_hint
from handlers.plot.plotter import VisdomPlotter, server_url
from handlers.plot.report import runs_path, say
from handlers.plot.wire import VisdomAddress, Wire
from handlers.visdom_server import shared
from handlers.visdom_server.access import page_link

__all__ = ["live_url", "shared_server", "serving", "stop_shared_server", "default_plotter", "farewell"]


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
    local = address.host in LOCAL
    if _named(url):
        if local and _shared_on(address.port):
            return shared_server(address.port), True
        if Wire(address, 1.0, 5.0).is_visdom():
            return address.url, False
        if not local:
            say(f"nothing answers as Visdom at {address}; every point stays in the run's record")
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
        return shared.acquire(port, jupyter_proxy_path if proxied() else None).url
    except (RuntimeError, OSError, TimeoutError, ValueError) as e:
        say(f"could not start a local Visdom server ({str(e).splitlines()[0]}); the curves go to the run "
            "folder's curves.png and curves.npz")
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
        server = shared.acquire(port, jupyter_proxy_path if proxied() else None)
    except (RuntimeError, OSError, TimeoutError, ValueError):
        return None
    if drawn_by[0] is None or server.pid != drawn_by[0].pid:
        drawn_by[0] = server
        say(f"the Visdom server at {plotter.url} went away; every point is re-sent to {server.url}")
        plotter.announce(server.url)
    return server.url


def farewell(plotter: VisdomPlotter, keep_serving: bool = False) -> None:
    """After a command's run: serve until Ctrl-C (``keep_serving``), else say how long the page stays."""
    if keep_serving and serving() is not None:
        print(f"Serving the plots at {page_link(plotter.url, plotter.env)} until Ctrl-C", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while serving() is not None:
                time.sleep(0.5)
    if stop_shared_server() is not None and not keep_serving:
        link = page_link(plotter.url, plotter.env)
        print(f"The page stays at {link} for {shared.linger() / 60:g} minutes after the last run (--keep-serving: "
              "until Ctrl-C)", flush=True)
        if hint := ssh_hint(link):
            print(hint, flush=True)
