"""The process's one sending thread: it takes turns over every open plotter's sender.

However many plotters, Animators and Ignite-shape loggers a program makes, it has one thread talking to
Visdom, and its exit waits one bounded time for all of them (``plotter.close_all``), not one per plotter.
A sender's turn is short (one batch); the thread sleeps until the earliest turn any sender asked for,
or until a flush or a stop pokes it.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any

__all__ = ["WORKER", "Worker"]


class Worker:
    def __init__(self) -> None:
        self._senders: list[Any] = []
        self._lock = threading.Lock()
        self._poke = threading.Event()
        self.thread: threading.Thread | None = None

    def add(self, sender: Any) -> None:
        """Give ``sender`` turns (from now until its ``turn`` returns None); start the thread if needed."""
        with self._lock:
            if sender not in self._senders:
                self._senders.append(sender)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="visdom-sender", daemon=True)
                self.thread.start()
        self._poke.set()

    def poke(self) -> None:
        """Take turns now (a flush or a stop is waiting)."""
        self._poke.set()

    def _run(self) -> None:
        while True:
            self._poke.clear()  # before the turns: a poke during them makes the wait below return at once
            with self._lock:
                senders = list(self._senders)
                if not senders:
                    self.thread = None
                    return
            wake = time.monotonic() + 1.0
            for sender in senders:
                at = self._turn(sender)
                if at is None:
                    with self._lock:
                        self._senders.remove(sender)
                else:
                    wake = min(wake, at)
            self._poke.wait(max(0.0, wake - time.monotonic()))

    @staticmethod
    def _turn(sender: Any) -> float | None:
        try:
            return sender.turn(time.monotonic())
        except Exception as e:  # a bug in one sender must not stop the others: it ends, saying why
            sender.say(f"the sender for env {sender.env!r} stopped: {type(e).__name__}: {e}")
            sender.finish()
            return None


WORKER = Worker()


def _forked() -> None:
    """A forked child (a DataLoader worker, a DDP process) has no sending thread: it starts its own if it plots."""
    WORKER.__init__()  # type: ignore[misc]


os.register_at_fork(after_in_child=_forked)
