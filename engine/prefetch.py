"""Overlap the host-to-device copy of the next batch with the current step (CUDA only).

A side stream copies batch i+1 while batch i trains; the compute stream waits for the copy only
when it needs the batch. Tensors anywhere in a list, tuple or dict batch move; other leaves (ids,
strings) pass through as they do on a CPU. On a CPU the loader passes through unchanged.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch

from engine.loader_view import LoaderView, view

__all__ = ["DevicePrefetcher", "prefetch"]

_END = object()


def _moved(x: Any, device: torch.device, record: list[torch.Tensor]) -> Any:
    """``x`` with every tensor copied to ``device`` (asynchronously); the copies are listed in ``record``."""
    if isinstance(x, torch.Tensor):
        out = x.to(device, non_blocking=True)
        record.append(out)
        return out
    if isinstance(x, Mapping):
        return {k: _moved(v, device, record) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # a namedtuple keeps its type
        return type(x)(*(_moved(e, device, record) for e in x))
    if isinstance(x, (list, tuple)):
        return type(x)(_moved(e, device, record) for e in x)
    return x


class DevicePrefetcher(LoaderView):
    """The loader, each batch already on ``device``. ``copy_waited`` is a CUDA event recorded on the
    compute stream just before it waits for the batch's copy: a step timer that starts there counts a
    copy the prefetch could not hide, as the book's timer counts the copy (``handlers.StepTimer``), and
    hands the event back to ``free_events`` once it has read it (at its epoch's end): the events are pooled,
    so their number stays flat however many epochs run. The copy's end is a pooled event too, waited on by
    the compute stream (``wait_event``: no event made per batch, as ``wait_stream`` makes)."""

    def __init__(self, loader: Iterable, device: torch.device) -> None:
        super().__init__(loader)
        self.device = torch.device(device)
        self.sampler = getattr(loader, "sampler", None)  # seen by handlers that set a sampler's epoch
        self.copy_waited: torch.cuda.Event | None = None
        self.free_events: list[torch.cuda.Event] = []  # timing events handed back by the step timer
        self._copy_done: list[torch.cuda.Event] = []  # one per batch in flight (two at most), reused
        self.events_made = 0  # CUDA events created so far (flat after the first epoch: tests count it)

    def _timing_event(self) -> torch.cuda.Event:
        if self.free_events:
            return self.free_events.pop()
        self.events_made += 1
        return torch.cuda.Event(enable_timing=True)

    def __iter__(self) -> Iterator[Any]:
        if self.device.type != "cuda":
            yield from self.loader
            return
        side = torch.cuda.Stream(self.device)
        main = torch.cuda.current_stream(self.device)
        batches = iter(self.loader)
        ahead = self._copy(next(batches, _END), side)
        while ahead is not None:
            following = next(batches, _END)  # the loader's host work before the compute stream waits
            waited = self._timing_event()
            waited.record(main)
            batch, copies, done = ahead
            main.wait_event(done)
            for t in copies:
                t.record_stream(main)  # the allocator must not reuse this memory before the step is done
            self.copy_waited = waited
            self._copy_done.append(done)  # free again: the compute stream's wait on it is queued
            ahead = self._copy(following, side)
            yield batch

    def _copy(self, batch: Any, side: torch.cuda.Stream) -> tuple[Any, list[torch.Tensor], torch.cuda.Event] | None:
        if batch is _END:
            return None
        copies: list[torch.Tensor] = []
        with torch.cuda.stream(side):
            moved = _moved(batch, self.device, copies)
        if self._copy_done:
            done = self._copy_done.pop()
        else:
            self.events_made += 1
            done = torch.cuda.Event()
        done.record(side)
        return moved, copies, done


def prefetch(loader: Iterable, device: torch.device) -> DevicePrefetcher:
    """A prefetcher with a length exactly when ``loader`` has one (a check for unsized iterables holds)."""
    return view(DevicePrefetcher, loader, device)
