"""The local Visdom server's process: Visdom's own server, taking no orders from other web pages.

Binding to loopback keeps other machines out, not other pages in the user's browser. Visdom's text
panes render raw HTML, so who may write is the server's only defence. Every request's ``Host`` must
name this machine (a loopback name; with ``--host 0.0.0.0`` also an IP literal or this machine's
name; plus the names in ``$D2L_IGNITE_VISDOM_HOSTS``), which shuts out DNS rebinding; and a write (any
method but GET/HEAD, or a websocket) that carries an ``Origin`` must come from the server's own
origin, which shuts out cross-site forms and fetches. Clients that send no ``Origin`` (this project's
plotter, ``replay``, ``compare``, Visdom's Python client) are unaffected.

With ``--token-file`` every request must also carry the user's token (``access.py``).

Run as a script, ``python serve.py [--any-ip] [--token-file F] [--watch-pid PID] [--shared DIR --linger S] -- ARGS``,
so the server process needs nothing of this package on its path; it wraps Tornado's
``RequestHandler.prepare``, the hook every Visdom handler (pages, API, websockets, static files) runs
first, and then starts Visdom's ``run_server.main``. Its lifetime is watched here, by process id rather
than by the starting thread (Linux's parent-death signal follows the thread): ``--watch-pid`` ends it
with that process; ``--shared`` ends it ``S`` seconds after the last lease in ``DIR`` goes (``shared.py``).
"""
from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import socket
import sys
import threading
import time
from types import ModuleType
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


def install(any_ip: bool, token: str | None = None, port: int = 0) -> None:
    import tornado.web

    allowed = allowed_names(any_ip)
    secret = _load("access.py")

    def prepare(handler: tornado.web.RequestHandler) -> None:
        r = handler.request
        why = refusal(r.method or "GET", r.host, r.headers.get("Origin"),
                      r.headers.get("Upgrade", "").lower() == "websocket", r.protocol, allowed, any_ip)
        if why is None and token is not None:
            if r.path.endswith(secret.PROOF_PATH):  # anyone may ask; only the token's holder answers right
                handler.finish(secret.proof(token, handler.get_query_argument("nonce", ""), port))
                return
            why = _without_token(handler, token, secret)
        if why is not None:  # answered here: Visdom's error page would log a traceback for each refusal
            handler.set_status(403)
            handler.finish(why)

    tornado.web.RequestHandler.prepare = prepare  # type: ignore[method-assign]


def _without_token(handler: object, token: str, secret: ModuleType) -> str | None:
    """Why a request without this user's token is refused, or None. The link's ``?token=`` becomes a cookie
    (HttpOnly, same-site only) so the page's own requests and websocket carry it."""
    import hmac

    given = handler.get_query_argument("token", None)  # type: ignore[attr-defined]
    if given is not None and hmac.compare_digest(given, token):
        handler.set_cookie(secret.COOKIE, token, httponly=True, samesite="Strict")  # type: ignore[attr-defined]
        return None
    for held in (handler.request.headers.get(secret.HEADER), handler.get_cookie(secret.COOKIE)):  # type: ignore
        if held is not None and hmac.compare_digest(held, token):
            return None
    return (secret.PRIVATE + ": open the link its run printed (it carries ?token=...), or send the token in the "
            + secret.HEADER + " header")


def _load(name: str) -> ModuleType:
    """A module beside this file (``leases.py``, ``access.py``), loaded by path (this package is not importable
    here)."""
    spec = importlib.util.spec_from_file_location(f"d2l_{name[:-3]}", os.path.join(os.path.dirname(__file__), name))
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def watch(pid: int | None, shared: str | None, port: str, linger: float, poll: float = 0.5) -> None:
    """End this process when ``pid`` ends, or ``linger`` s after the shared server's last lease went; the
    record is removed under the lock first, so no client leases a server that is going away."""
    leases = _load("leases.py")
    idle_since: float | None = None
    while True:
        time.sleep(poll)
        if pid is not None and not leases.alive(pid):
            os._exit(0)
        if shared is None:
            continue
        with leases.locked(leases.lock_path(shared)):
            if leases.live_leases(leases.clients_dir(shared, port)):
                idle_since = None
                continue
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= linger:
                _drop_record(leases.record_path(shared, port))
                os._exit(0)


def _drop_record(path: str) -> None:
    """Remove the shared server's record if it names this process (a newer server's is left alone)."""
    try:
        with open(path) as f:
            holder = json.load(f).get("pid")
    except (OSError, ValueError, AttributeError):
        return
    if holder == os.getpid():
        os.remove(path)


def _only_lines(path: str) -> bool:
    """A regular file holding a Visdom env of line plots only, as this project writes them (a text pane renders
    raw HTML: an env from a tarball or a checkout could carry script into the page)."""
    try:
        with open(path, encoding="utf-8") as f:
            env = json.load(f)
        windows = env["jsons"].values()
        return all(d.get("type") == "scatter" for w in windows for d in w["content"]["data"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def gather(runs: str, env_path: str) -> list[str]:
    """Copy every ``runs/*/visdom/<env>.json`` that is newer than its copy into ``env_path`` (Visdom serves one
    flat folder); return the copies made. A link is never followed: not as a source (a runs folder from a tarball
    could link to any file of the user's), and a link already at the target is replaced, not written through."""
    import glob
    import shutil
    import tempfile

    copied = []
    for found in glob.glob(os.path.join(runs, "*", "visdom", "*.json")):
        target = os.path.join(env_path, os.path.basename(found))
        if os.path.islink(found) or os.path.islink(os.path.dirname(found)) or not _only_lines(found):
            continue
        if os.path.islink(target) or not os.path.exists(target) or os.path.getmtime(found) > os.path.getmtime(target):
            fd, tmp = tempfile.mkstemp(dir=env_path, prefix=".gather-")
            os.close(fd)
            shutil.copy2(found, tmp)
            os.replace(tmp, target)  # replaces a link at the target itself
            copied.append(target)
    return copied


def _refresh(app: object, runs: str, env_path: str) -> None:
    """Serve every run saved or changed since the last look (a run folder removed meanwhile: the next look)."""
    try:
        copied = gather(runs, env_path)
    except OSError:
        return
    for target in copied:
        try:
            with open(target) as f:
                env = json.load(f)  # loaded as it is (visdom 0.2.4 and 0.3.0 load lazily in different ways)
            name = os.path.basename(target)[: -len(".json")]
            app.state[name] = {"jsons": env["jsons"], "reload": env.get("reload", {})}  # type: ignore[attr-defined]
        except (OSError, ValueError, KeyError, TypeError):
            continue


def watch_runs(runs: str, env_path: str, every_ms: int = 2000) -> None:
    """Have the Visdom application look for newly saved runs every ``every_ms`` (a page reload shows them)."""
    import tornado.ioloop
    import visdom.server.app as visdom_app

    start = visdom_app.Application.__init__

    def init(app: object, *args: object, **kwargs: object) -> None:
        start(app, *args, **kwargs)
        tornado.ioloop.PeriodicCallback(lambda: _refresh(app, runs, env_path), every_ms).start()

    visdom_app.Application.__init__ = init  # type: ignore[method-assign]


def main(argv: list[str]) -> None:
    ours, visdom_args = argv[: argv.index("--")], argv[argv.index("--") + 1:]
    token_file = _option(ours, "--token-file")  # the user's token, read from their private file (never an argument)
    install(any_ip="--any-ip" in ours, token=_load("access.py").user_token(token_file) if token_file else None,
            port=int(_option(visdom_args, "-port") or 0))  # the port it listens on, not a header a client sets
    if "--watch-runs" in ours:
        watch_runs(_option(ours, "--watch-runs"), _option(visdom_args, "-env_path"))  # type: ignore[arg-type]
    pid, shared = _option(ours, "--watch-pid"), _option(ours, "--shared")
    if pid is not None or shared is not None:
        threading.Thread(target=watch, daemon=True, name="lifetime", args=(
            None if pid is None else int(pid), shared, _option(visdom_args, "-port"),
            float(_option(ours, "--linger") or 30))).start()
    sys.argv = ["visdom", *visdom_args]
    from visdom.server.run_server import main as visdom_main

    visdom_main()


if __name__ == "__main__":
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        sys.path.pop(0)  # this folder's modules (process, assets) must not shadow a library's
    main(sys.argv[1:])
