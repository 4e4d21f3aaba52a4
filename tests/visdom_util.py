"""Helpers for tests that talk to a real Visdom server."""
from __future__ import annotations

import json
import socket
import threading

import requests


def own(url: str) -> dict[str, str]:
    """The header that opens this user's own server (access.py): every request to it needs the token."""
    from handlers.visdom_server.access import HEADER, verified

    token = verified(url)
    return {HEADER: token} if token else {}


def window(url: str, env: str, win: str, session: requests.Session | None = None) -> dict:
    r = (session or requests).post(f"{url}/win_data", data=json.dumps({"eid": env, "win": win}), timeout=10,
                                   headers=own(url))
    r.raise_for_status()
    return json.loads(r.text)


def trace_counts(url: str, env: str, win: str, session: requests.Session | None = None) -> dict[str, int]:
    return {t["name"]: len(t["x"]) for t in window(url, env, win, session)["content"]["data"]}


class HungServer:
    """Accepts connections and never answers: the case Visdom's own client blocks on forever."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
                self.held.append(conn)
            except OSError:
                return

    def close(self) -> None:
        self._stop = True
        for c in self.held:
            c.close()
        self.sock.close()


def record_counts(folder: str) -> dict[str, dict[str, int]]:
    """``{window: {trace: points}}`` of the record (``curves.npz``) a run keeps in ``folder``."""
    import os

    from handlers.plot.record import read_points

    return {win: {t: len(xs) for t, (xs, _) in traces.items()}
            for win, _, traces in read_points(os.path.join(folder, "curves.npz"))}
