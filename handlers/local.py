"""What this machine lends a run, taken safely: files written whole or not at all, and free ports."""
from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["write_atomic", "exclusive_temp", "free_port", "port_in_use"]


def write_atomic(path: str, write: Callable[[Any], object]) -> str:
    """Have ``write(f)`` fill a binary file that then replaces ``path`` whole (its folder made if needed), through
    a temporary file created exclusively (a planted symlink is never followed); return ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with exclusive_temp(path) as (f, tmp):
        write(f)
    try:
        os.replace(tmp, path)
    except OSError:
        os.remove(tmp)  # nothing of a failed write is left behind
        raise
    return path


@contextlib.contextmanager
def exclusive_temp(path: str) -> Iterator[tuple[Any, str]]:
    """A new temporary file beside ``path`` (``O_EXCL``, mode 0600), removed if the block fails."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f, tmp
    except BaseException:
        os.remove(tmp)
        raise


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False
