"""``VisdomPlotter``: the record shown live in Visdom, by a background sender so training never waits."""
from __future__ import annotations

import os

from handlers.plot.base import Plotter, close_all
from handlers.plot.links import announce
from handlers.plot.report import command, runs_path, say
from handlers.plot.sender import Sender
from handlers.plot.wire import VisdomAddress

__all__ = ["VisdomPlotter", "DEFAULT_URL", "server_url", "close_all"]

DEFAULT_URL = "http://127.0.0.1:8097"


def server_url(url: str | None = None) -> str:
    """The one rule for which server to talk to: the argument, else ``$VISDOM_URL``, else the local default."""
    return url or os.environ.get("VISDOM_URL", DEFAULT_URL)


def _own_server() -> str:
    """With no address given, this user's own shared server (started if none runs), never whatever answers on
    8097 (another account's, say); the default address only when no server can start (points go to the record)."""
    from handlers.plot.policy import live_url

    return live_url(None)[0] or DEFAULT_URL


class VisdomPlotter(Plotter):
    """Plot any series of any Engine to Visdom (see ``Plotter``); points are posted by the process's one
    sending thread. At close the record is written (also without ``out_dir`` when the server lacks points)."""

    def __init__(
        self,
        url: str | None = None,
        env: str = "main",
        *,
        out_dir: str | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 10.0,
        close_timeout: float = 10.0,
        max_queue: int = 10_000,
        min_interval: float = 0.5,
        live: bool | None = None,
        credentials: tuple[str, str] | None = None,
        offline: bool = False,
    ) -> None:
        url = server_url(url) if url or os.environ.get("VISDOM_URL") else _own_server()
        VisdomAddress(url)  # a malformed URL fails before the plotter counts as open
        super().__init__(env, out_dir=out_dir, close_timeout=close_timeout)
        self.sender = Sender(self.store, url, env, connect_timeout=connect_timeout,
                             read_timeout=read_timeout, max_queue=max_queue, min_interval=min_interval,
                             credentials=credentials, offline=offline)
        self.missed: str | None = None  # the run folder whose record holds points the server lacks
        self.live = live

    @property
    def url(self) -> str:
        """The server the points go to now (it changes when this user's shared server is replaced)."""
        return self.sender.address.url

    def _shown(self, window: str, trace: str | None = None, step: int | None = None) -> None:
        self.sender.notify(window, trace)

    def _delivered(self, timeout: float) -> bool:
        """Returns at once when the server is known to be down: training never waits on a dead server (its
        points stay in the record, for a later flush, ``close()`` and the replay log)."""
        if not self.sender.undelivered():
            return True
        self.sender.wake()
        return self.sender.wait_delivered(timeout)

    def stop(self) -> None:
        self.sender.stop()

    def announce(self, url: str | None = None) -> None:
        """The page's link (``url``: the server now, when it moved), the SSH tunnel to it, the Jupyter frame."""
        announce(self, url)

    def after_close(self, keep_serving: bool = False) -> None:
        from handlers.plot.policy import farewell

        farewell(self, keep_serving)

    def _finish(self, timeout: float) -> bool:
        """Flush, have the server save the env; when it lacks points, the record is kept even without ``out_dir``
        (in ``runs/<env>``), for ``d2l-ignite replay`` to send later."""
        if self.sender.offline:
            return True
        complete = self.sender.close(timeout)
        if not complete:
            self.out_dir = self.out_dir or runs_path(self.env)
        return complete

    def _write_record(self) -> bool:
        kept = super()._write_record()
        if kept and not self._complete:
            self.missed = os.path.abspath(self.out_dir)  # as of now, whatever cwd comes next
            say(f"{self.sender.missing()} points are not in an env saved by {self.sender.address}; every point is "
                f"in {self.missed} (send them later with: {command()} replay {self.missed})")
        return kept
