"""The background sender: the only code that talks to Visdom, so training never waits on the network.

The training thread appends to the PlotStore and queues ``(win, trace)`` without blocking; the process's one
sending thread (``worker.py``) gives each sender turns, and a turn merges queued points into one append per
trace. A refused, hung, killed or restarted server is said once, backed off from, and then gets whole windows
from the store (idempotent); a window past ``decimate.LIMIT`` points is re-drawn whole as the page's view at
most every ``LONG_EVERY`` s. ``reconnect`` (the plot policy's) may name another server when this one goes
away for good. What the server never saved is in the run's record (``d2l-ignite replay`` sends it later).
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import requests

from handlers.plot.decimate import LIMIT
from handlers.plot.record import page_message
from handlers.plot.report import say
from handlers.plot.store import PlotStore
from handlers.plot.wire import NotVisdomError, VisdomAddress, Wire, append_message
from handlers.plot.worker import WORKER

__all__ = ["Sender", "LONG_EVERY"]

LONG_EVERY = 2.0  # seconds between whole re-draws of a window past LIMIT points

_STOP = object()
_WAKE = object()  # ends the batching wait: send what is queued now (a flush)


class Sender:
    def __init__(
        self,
        store: PlotStore,
        url: str,
        env: str,
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 10.0,
        max_queue: int = 10_000,
        min_interval: float = 0.5,
        say: Callable[[str], None] = say,
        credentials: tuple[str, str] | None = None,
        offline: bool = False,
    ) -> None:
        self.address = VisdomAddress(url)
        self.store, self.env, self.say = store, env, say
        self.wire = Wire(self.address, connect_timeout, read_timeout, credentials)
        self.offline = offline  # keeps the record only: nothing is ever sent
        self.messages: list[tuple[str, dict]] = []  # Visdom calls other than points (text, image, ...), in order
        self.min_interval = min_interval  # batching window: one request per trace per interval
        self.queue: queue.Queue = queue.Queue(max_queue)
        self.delivered: dict[str, dict[str, int]] = {}  # acknowledged points per window and trace
        self._full: set[str] = set()  # windows to (re)create whole on the next send
        self._overflow = threading.Event()
        self._queued: set[tuple[str, str | None]] = set()  # notifications not yet taken by the worker
        self._added = False  # given turns on the process's sending thread (from the first point on)
        self._starting = threading.Lock()
        self.finished = threading.Event()  # set once the last batch and the save were tried
        self._dirty: set[tuple[str, str]] = set()  # traces with points beyond what was delivered
        self._stopping = self._stop_asked = False
        self._backoff, self._send_at = 0.25, 0.0
        self._progress = threading.Condition()  # notified after each send attempt
        self.failures, self.saved, self.down_since = 0, False, None
        self.saved_counts: dict[str, dict[str, int]] = {}  # points in the env the server last saved to disk
        self.reconnect: Callable[[], str | None] | None = None  # another server when this one went away
        self._next_reconnect = 0.0
        self._drawn_at: dict[str, float] = {}  # when a long window was last re-drawn whole

    def notify(self, win: str, trace: str | None = None) -> None:
        """Never blocks: a full queue only makes the worker re-send from the store. A trace already waiting in
        the queue is not queued again: the worker sends all the store holds beyond what was delivered."""
        key = (win, trace)
        if key in self._queued or self.offline:
            return
        self._queued.add(key)
        if not self._added:
            with self._starting:  # several threads may plot: added once
                if not self._added:
                    WORKER.add(self)
                    self._added = True
        try:
            self.queue.put_nowait(key)
        except queue.Full:
            self._overflow.set()

    def post_later(self, endpoint: str, msg: dict) -> None:
        """Send one ready Visdom message (a text pane, an image, ...) on the sending thread, in order."""
        if not self.offline:
            self.messages.append((endpoint, msg))
            self.notify("", "")

    def wake(self) -> None:
        """Have the worker send what is queued without waiting out its batching interval."""
        if self._added:
            try:
                self.queue.put_nowait(_WAKE)
            except queue.Full:
                self._overflow.set()
            WORKER.poke()

    def stop(self) -> None:
        """Ask for the last batch and the save (without waiting): what ``close`` does first."""
        if self._added and not self._stop_asked:
            self._stop_asked = True
            try:
                self.queue.put_nowait(_STOP)
            except queue.Full:
                self._overflow.set()
                self._stopping = True  # the worker sees it at its next turn
            WORKER.poke()

    def close(self, timeout: float = 10.0) -> bool:
        """Flush, save the env, wait (bounded) for it. Returns True when the server saved every point
        (a server that took the points but died before saving them has nothing of them)."""
        if self._added:
            self.stop()
            self.finished.wait(timeout)
        return not self.unsaved()

    def wait_delivered(self, timeout: float) -> bool:
        """Block until the server has every point, is found down, or ``timeout`` passes; True if delivered."""
        with self._progress:
            self._progress.wait_for(lambda: not self.undelivered() or self.down_since is not None, timeout)
        return not self.undelivered()

    def _behind(self, acknowledged: dict[str, dict[str, int]]) -> dict[str, int]:
        """Per window, the points of the record beyond ``acknowledged`` (windows with none are left out)."""
        behind = {w: sum(max(0, n - acknowledged.get(w, {}).get(t, 0)) for t, n in traces.items())
                  for w, traces in self.store.counts().items()}
        return {w: n for w, n in behind.items() if n}

    def undelivered(self) -> list[str]:
        """The windows with points the server has not acknowledged (and ``""`` for other calls not sent yet)."""
        return list(self._behind(self.delivered)) + ([""] if self.messages else [])

    def unsaved(self) -> list[str]:
        """The windows holding points that no save of the server has put on its disk."""
        return list(self._behind(self.saved_counts))

    def missing(self) -> int:
        """How many points of the record no save of the server holds (what an end-of-run message counts)."""
        return sum(self._behind(self.saved_counts).values())

    # -- turns on the process's one sending thread (worker.py) -------------------------------------
    def turn(self, now: float) -> float | None:
        """Take what is queued; when the batch is due (its interval or back-off is over) or a flush or a stop
        came, send it. Returns when this sender wants its next turn, or None once it has stopped."""
        urgent = self._take()
        if not urgent and now < self._send_at:
            return self._send_at
        try:
            self._round()
            if self._stopping and self.down_since is not None and self._rerouted(now=True):
                self._round()  # the server went away at the very end: its replacement gets everything now
        finally:
            self._notify()
        if self._stopping:
            self.finish()
            return None
        return self._send_at

    def finish(self) -> None:
        self.finished.set()
        self._notify()

    def _round(self) -> None:
        """One batch: tensors become floats (whether or not the server answers), then one request per trace."""
        self.store.settle()
        if self._overflow.is_set():
            self._overflow.clear()
            self._full.update(self.store.windows)
        if self._stopping:
            self._dirty.update((w, t) for w, traces in self.store.counts().items() for t in traces)
        try:
            self._send(self._dirty, self._stopping)
            self._backoff, self._send_at = 0.25, time.monotonic() + self.min_interval
            if self.down_since is not None:
                self.say(f"reconnected to {self.address}; every point kept during the outage was sent")
                self.down_since = None
            if self._stopping:
                self._save()
        except (requests.RequestException, PermissionError, OSError) as e:
            self._failed(e)

    def _failed(self, e: Exception) -> None:
        self.failures += 1
        self._full.update(self.store.windows)  # a restarted server lost what it had
        if self.down_since is None:
            self.down_since = time.monotonic()
            why = str(e) if isinstance(e, NotVisdomError) else f"cannot reach {self.address} ({type(e).__name__})"
            self.say(f"{why}; the points are kept and sent when it answers")
            self._notify()
        if self._stopping:
            return
        if self._rerouted():
            self._backoff, self._send_at = 0.25, 0.0
            return
        self._send_at = time.monotonic() + max(self._backoff, self.min_interval)
        self._backoff = min(self._backoff * 2, 5.0)

    def _rerouted(self, now: bool = False) -> bool:
        """Ask ``reconnect`` (at most every 5 s, unless ``now``: the last chance at close) for a server that
        answers; on a new address, every window goes there whole. True when the address changed."""
        if self.reconnect is None or (time.monotonic() < self._next_reconnect and not now):
            return False
        self._next_reconnect = time.monotonic() + 5.0
        url = self.reconnect()
        if url is None or VisdomAddress(url).url == self.address.url:
            return False
        self.address = VisdomAddress(url)
        self.wire = Wire(self.address, *self.wire.timeout, self.wire.credentials)
        self.delivered, self.saved_counts = {}, {}
        self._full.update(self.store.windows)
        return True

    def _save(self) -> None:
        """Have the server write the env to its disk; only then do the delivered points count as kept."""
        sent = {w: dict(t) for w, t in self.delivered.items()}
        try:
            self.wire.post("save", {"data": [self.env], "eid": self.env})
        except (requests.RequestException, OSError) as e:
            self.say(f"{self.address} did not save env {self.env!r} ({type(e).__name__}: {str(e)[:120]}); "
                     "its points are kept in the run's record")
            return
        self.saved, self.saved_counts = True, sent

    def _notify(self) -> None:
        with self._progress:
            self._progress.notify_all()

    def _take(self) -> bool:
        """Move queued notifications into the batch; True when a flush or a stop asks to send now."""
        urgent = False
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return urgent
            if item is _STOP or item is _WAKE:
                self._stopping = self._stopping or item is _STOP
                urgent = True
                continue
            self._queued.discard(item)  # before sending, so later points queue again
            if item[1] is None:
                self._full.add(item[0])
            else:
                self._dirty.add((item[0], item[1]))

    def _long(self, dirty: set[tuple[str, str]], stopping: bool) -> set[str]:
        """The dirty windows past LIMIT points: re-drawn whole when due (always at the end), else kept dirty."""
        counts, now = self.store.counts(), time.monotonic()
        long = {w for w, _ in dirty if max(counts.get(w, {}).values(), default=0) > LIMIT}
        for win in long:
            if stopping or now >= self._drawn_at.get(win, 0.0) + LONG_EVERY:
                self._full.add(win)
        return long

    def _send(self, dirty: set[tuple[str, str]], stopping: bool = False) -> None:
        self.wire.connect()  # a server that is down fails here, before whole windows are copied for it
        while self.messages:
            self.wire.post(*self.messages[0])
            self.messages.pop(0)
        dirty.discard(("", ""))
        for win in {w for w, _ in dirty}:
            if self.store.windows[win].opts.get("grow_y") and self.store.grow_y(win):
                self._full.add(win)
        long, drawn = self._long(dirty, stopping), set()
        for win in [w for w in list(self.store.windows) if w in self._full]:  # the record's order, as served
            msg, counts = page_message(self.store, self.env, win)
            if msg is None:
                continue  # Visdom rejects a window without data: create it with its first point
            self.wire.post("events", msg)
            self.delivered[win], self._drawn_at[win] = counts, time.monotonic()
            self._full.discard(win)
            drawn.add(win)
        for win, trace in sorted(dirty):
            if win in drawn:
                dirty.discard((win, trace))
            if win in drawn or win in long or win in self._full:
                continue  # drawn whole now, or at its next whole draw
            sent = self.delivered.get(win, {}).get(trace, 0)
            points = self.store.points(win, trace, sent)
            if points:
                markers = bool(self.store.windows[win].opts.get("markers"))
                self.wire.post("update", append_message(self.env, win, trace, points, markers))
                self.delivered.setdefault(win, {})[trace] = sent + len(points)
            dirty.discard((win, trace))
