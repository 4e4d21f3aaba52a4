"""This user's shared local Visdom server: found through a small state file, started by the first run that
needs it, and kept up while any process of this user still draws on it.

The state folder (``$D2L_IGNITE_STATE``, default ``~/.cache/d2l-ignite``, mode 0700) holds
``visdom-<port>.json`` (the server's port, pid, URL and env folder), ``visdom-<port>.clients/<pid>`` (a
lease per process drawing on it) and ``visdom.lock``. The server ends ``$D2L_IGNITE_VISDOM_LINGER``
seconds (default 300) after its last lease goes, however its clients ended (``kill -9`` included): long
enough to open the printed link after a run and read the curves, and for the next run to find the same page
(one idle Python process of ~100 MB the while). A
server no record names is not this user's: the plot policy uses it only when ``$VISDOM_URL`` points at it.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass

from handlers.local import free_port, port_in_use
from handlers.plot.report import say
from handlers.visdom_server import leases
from handlers.visdom_server.process import LocalVisdom

__all__ = ["SharedServer", "state_dir", "find", "acquire", "release", "stop_if_idle", "held", "linger",
           "STATE_SETTING", "LINGER_SETTING"]

STATE_SETTING = "D2L_IGNITE_STATE"
LINGER_SETTING = "D2L_IGNITE_VISDOM_LINGER"
DEFAULT_PORT = 8097
_held: dict[int, SharedServer] = {}  # the servers this process leases, by port
_started: list[LocalVisdom] = []  # servers this process started (their handles, kept from the collector)


@dataclass(frozen=True)
class SharedServer:
    port: int
    pid: int
    url: str
    env_path: str
    started: str = ""  # the process's start time: a record whose pid now names another process is stale
    uid: int = -1  # whose process it is: only this user's counts

    @property
    def clients(self) -> str:
        return leases.clients_dir(state_dir(), self.port)

    def alive(self) -> bool:
        return (self.uid == os.getuid() and leases.alive(self.pid, self.started, own=True)
                and leases.runs_server(self.pid))


def linger() -> float:
    """Seconds the shared server stays after its last run (``$D2L_IGNITE_VISDOM_LINGER``, default 300)."""
    return float(os.environ.get(LINGER_SETTING) or 300)


def state_dir() -> str:
    """The state folder, refused unless it is this user's alone (``leases.private_folder``)."""
    path = os.environ.get(STATE_SETTING) or os.path.join(os.path.expanduser("~"), ".cache", "d2l-ignite")
    return leases.private_folder(path)


def _record_path(port: int) -> str:
    return leases.record_path(state_dir(), port)


def _run_envs() -> str:
    """Where a shared server a run started keeps its envs (``d2l-ignite visdom`` serves a runs folder instead)."""
    return os.path.join(state_dir(), "visdom-envs")


def find(port: int | None = None) -> SharedServer | None:
    """This user's running shared server (on ``port`` when given; else one ``d2l-ignite visdom`` serves, whose
    page a person has open, else the default port's, else any)."""
    paths = [_record_path(port)] if port is not None else glob.glob(leases.record_path(state_dir(), "*"))
    running = []
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd) as f:
                server = SharedServer(**json.load(f))
        except (OSError, ValueError, TypeError):
            continue
        if server.alive():
            running.append(server)
    return min(running, key=lambda s: (s.env_path == _run_envs(), s.port != DEFAULT_PORT), default=None)


def _start(port: int | None, base_for: Callable[[int], str] | None, env_path: str | None,
           watch_runs: str | None) -> SharedServer:
    if port is None:
        port = DEFAULT_PORT if not port_in_use("127.0.0.1", DEFAULT_PORT) else free_port()
        if port != DEFAULT_PORT:
            say(f"port {DEFAULT_PORT} is held by another program (not this user's shared plot server), so that server "
                f"starts on port {port}")
    folder = state_dir()
    local = LocalVisdom(port, env_path=env_path or _run_envs(), shared=folder, linger=linger(),
                        watch_runs=watch_runs, base_url=base_for(port) if base_for else "").start()
    _started.append(local)
    pid = local.process.pid  # type: ignore[union-attr]
    server = SharedServer(int(local.port or 0), pid, local.url, local.env_path, leases.start_time(pid), os.getuid())
    if os.path.islink(server.clients):  # never delete through a planted link
        os.remove(server.clients)
    for stale in glob.glob(os.path.join(server.clients, "*")):  # leases of an earlier server on this port
        os.remove(stale)
    tmp = _record_path(server.port) + f".{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(server), f)
    os.replace(tmp, _record_path(server.port))
    return server


def acquire(port: int | None = None, base_for: Callable[[int], str] | None = None, env_path: str | None = None,
            watch_runs: str | None = None) -> SharedServer:
    """Lease this user's shared server, starting one (on ``port``; else 8097 when free, else a free port, said;
    its paths under ``base_for(port)``, e.g. a Jupyter proxy's; its envs in ``env_path``, with the runs saved
    under ``watch_runs`` gathered there) when none runs. Raises what ``LocalVisdom.start`` raises when it cannot
    start."""
    with leases.locked(leases.lock_path(state_dir())):
        server = find(port) or _start(port, base_for, env_path, watch_runs)
        leases.write_lease(server.clients)
    _held[server.port] = server  # a lease left at exit is harmless: the server checks that its process lives
    return server


def held() -> SharedServer | None:
    """A shared server this process leases that still runs (the newest), or None."""
    alive = [s for s in _held.values() if s.alive()]
    return alive[-1] if alive else None


def stop_if_idle(server: SharedServer) -> bool:
    """Drop this process's lease and stop ``server`` now unless another process still draws on it (what Ctrl-C on
    ``d2l-ignite visdom`` asks); True when it stopped."""
    release()
    with leases.locked(leases.lock_path(state_dir())):
        if leases.live_leases(server.clients) or not server.alive():
            return not server.alive()
        os.kill(server.pid, signal.SIGTERM)
        with contextlib.suppress(FileNotFoundError):
            os.remove(_record_path(server.port))
    for local in [s for s in _started if s.process is not None and s.process.pid == server.pid]:
        local.stop()  # reaped, and its log closed
    return True


def release() -> SharedServer | None:
    """Drop this process's leases (the servers stay while others lease them); return the newest one held."""
    last = held()
    for server in _held.values():
        leases.drop_lease(server.clients)
    _held.clear()
    return last
