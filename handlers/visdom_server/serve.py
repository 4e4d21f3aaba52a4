"""The local Visdom server's process: Visdom's own server, taking no orders from other web pages.

Binding to loopback keeps other machines out, not other pages in the user's browser. Visdom's text
panes render raw HTML, so who may write is the server's only defence. Every request's ``Host`` must
name this machine (a loopback name; with ``--host 0.0.0.0`` also an IP literal or this machine's
name; plus the names in ``$D2L_IGNITE_VISDOM_HOSTS``), which shuts out DNS rebinding; and a write (any
method but GET/HEAD, or a websocket) that carries an ``Origin`` must come from the server's own
origin, which shuts out cross-site forms and fetches. Clients that send no ``Origin`` (this project's
plotter, ``replay``, ``compare``, Visdom's Python client) are unaffected.

Run as a script, ``python serve.py [--any-ip] -- VISDOM-ARGS``, so the server process needs nothing of
this package on its path; it wraps Tornado's ``RequestHandler.prepare``, the hook every Visdom handler
(pages, API, websockets, static files) runs first, and then starts Visdom's ``run_server.main``.
"""
from __future__ import annotations

import ipaddress
import os
import socket
import sys
from urllib.parse import urlsplit

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
HOSTS_VARIABLE = "D2L_IGNITE_VISDOM_HOSTS"


def host_name(host: str) -> str:
    """The name part of a ``Host`` header value: ``[::1]:8097`` -> ``::1``, ``a.b:80`` -> ``a.b``."""
    return (urlsplit(f"//{host}").hostname or "").lower()


def host_allowed(name: str, allowed: set[str], any_ip: bool) -> bool:
    if name in allowed:
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return any_ip or address.is_loopback


def allowed_names(any_ip: bool) -> set[str]:
    extra = os.environ.get(HOSTS_VARIABLE, "").split(",")
    names = set(LOOPBACK_NAMES) | {n.strip().lower() for n in extra if n.strip()}
    if any_ip:  # reached from other machines by this machine's own name
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    return names


def refusal(method: str, host: str, origin: str | None, websocket: bool, protocol: str, allowed: set[str],
            any_ip: bool) -> str | None:
    """Why a request is refused, or None."""
    if not host_allowed(host_name(host), allowed, any_ip):
        return f"Host {host!r} is not this machine: refused (add it to ${HOSTS_VARIABLE} if you serve through it)"
    writes = websocket or method not in ("GET", "HEAD")
    if writes and origin is not None and origin.lower() != f"{protocol}://{host}".lower():
        return f"a write from another origin ({origin}) is refused"
    return None


def install(any_ip: bool) -> None:
    import tornado.web

    allowed = allowed_names(any_ip)

    def prepare(handler: tornado.web.RequestHandler) -> None:
        r = handler.request
        why = refusal(r.method or "GET", r.host, r.headers.get("Origin"),
                      r.headers.get("Upgrade", "").lower() == "websocket", r.protocol, allowed, any_ip)
        if why is not None:  # answered here: Visdom's error page would log a traceback for each refusal
            handler.set_status(403)
            handler.finish(why)

    tornado.web.RequestHandler.prepare = prepare  # type: ignore[method-assign]


def main(argv: list[str]) -> None:
    ours, visdom_args = argv[: argv.index("--")], argv[argv.index("--") + 1:]
    install(any_ip="--any-ip" in ours)
    sys.argv = ["visdom", *visdom_args]
    from visdom.server.run_server import main as visdom_main

    visdom_main()


if __name__ == "__main__":
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        sys.path.pop(0)  # this folder's modules (process, assets) must not shadow a library's
    main(sys.argv[1:])
