"""Who still draws on a shared local server: one lease file per process, checked by the server itself.

Standard library only: the server process (``serve.py``) loads this file by path, with nothing of this
package importable (which is also why ``flock`` and ``/proc`` are used directly here rather than through
filelock and psutil: the two calls they would wrap are not worth two dependencies in the server process).
A lease is a file named by the client's pid holding the process's start time, so a
pid reused by an unrelated process after a ``kill -9`` never keeps a server alive. The lock (``flock``)
makes "find or start a server and lease it" and "no lease left: remove the record and exit" one at a
time, so a client never leases a server that is exiting.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator

__all__ = ["locked", "alive", "runs_server", "private_folder", "start_time", "write_lease", "drop_lease", "live_leases",
           "record_path", "clients_dir", "lock_path"]


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


def alive(pid: int, started: str = "", own: bool = False) -> bool:
    """True while process ``pid`` runs (and, when ``started`` is given, is the same process: a pid reused after
    a ``kill -9`` or a reboot is not); with ``own``, only a process of this user counts. A killed child its parent
    has not reaped yet (a zombie) is not alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        if own:
            return False
    fields = _stat(pid)
    if fields and fields[0] in ("Z", "X"):
        return False
    return not started or start_time(pid) in ("", started)


def runs_server(pid: int) -> bool:
    """Whether process ``pid`` runs this project's Visdom server (``serve.py``), by its command line (Linux);
    True where ``/proc`` is absent."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().split(b"\0")
    except FileNotFoundError:
        return not os.path.isdir("/proc/self")
    except OSError:
        return False
    return any(w.endswith(b"serve.py") for w in words)


def private_folder(path: str) -> str:
    """``path`` made (0700) if missing, and refused unless it is a real folder of this user that no one else
    may write: a state folder another user made first (under /tmp, say) could redirect the points."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise PermissionError(f"state folder {path} is not a private folder of this user (a link, another user's, "
                              "or writable by others); remove it, or set $D2L_IGNITE_STATE to a folder of your own")
    return path


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created 0600) for the block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_lease(folder: str, pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    private_folder(folder)
    path = os.path.join(folder, str(pid))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
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
