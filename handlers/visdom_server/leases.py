"""Who still draws on a shared local server: one lease file per process, checked by the server itself.

Standard library only: the server process (``serve.py``) loads this file by path, with nothing of this
package importable. A lease is a file named by the client's pid holding the process's start time, so a
pid reused by an unrelated process after a ``kill -9`` never keeps a server alive. The lock (``flock``)
makes "find or start a server and lease it" and "no lease left: remove the record and exit" one at a
time, so a client never leases a server that is exiting.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

__all__ = ["locked", "alive", "start_time", "write_lease", "drop_lease", "live_leases", "record_path", "clients_dir",
           "lock_path"]


def record_path(state: str, port: int | str) -> str:
    """The shared server's record (port, pid, URL, env folder) in the state folder."""
    return os.path.join(state, f"visdom-{port}.json")


def clients_dir(state: str, port: int | str) -> str:
    """The folder of the leases on the shared server at ``port``."""
    return os.path.join(state, f"visdom-{port}.clients")


def lock_path(state: str) -> str:
    return os.path.join(state, "visdom.lock")


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (Linux), [] where absent."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), '' where /proc is absent."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""


def alive(pid: int, started: str = "") -> bool:
    """True while process ``pid`` runs (and, when ``started`` is given, is the same process); a killed
    child its parent has not reaped yet (a zombie) is not alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _stat(pid)
    if fields and fields[0] in ("Z", "X"):
        return False
    return not started or start_time(pid) in ("", started)


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created 0600) for the block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_lease(folder: str, pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, str(pid))
    with open(path, "w") as f:
        f.write(start_time(pid))
    return path


def drop_lease(folder: str, pid: int | None = None) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(folder, str(os.getpid() if pid is None else pid)))


def live_leases(folder: str) -> list[int]:
    """The pids whose leases in ``folder`` belong to running processes; stale leases are removed."""
    pids = []
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        path = os.path.join(folder, name)
        try:
            with open(path) as f:
                started = f.read().strip()
            pid = int(name)
        except (OSError, ValueError):
            continue
        if alive(pid, started):
            pids.append(pid)
        else:
            with contextlib.suppress(OSError):
                os.remove(path)
    return pids
