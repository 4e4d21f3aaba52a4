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
    copy the prefetch could not hide, as the book's timer counts the copy (``handlers.StepTimer``)."""

    def __init__(self, loader: Iterable, device: torch.device) -> None:
        super().__init__(loader)
        self.device = torch.device(device)
        self.sampler = getattr(loader, "sampler", None)  # seen by handlers that set a sampler's epoch
        self.copy_waited: torch.cuda.Event | None = None

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
            waited = torch.cuda.Event(enable_timing=True)
            waited.record(main)
            main.wait_stream(side)
            batch, copies = ahead
            for t in copies:
                t.record_stream(main)  # the allocator must not reuse this memory before the step is done
            self.copy_waited = waited
            ahead = self._copy(following, side)
            yield batch

    def _copy(self, batch: Any, side: torch.cuda.Stream) -> tuple[Any, list[torch.Tensor]] | None:
        if batch is _END:
            return None
        copies: list[torch.Tensor] = []
        with torch.cuda.stream(side):
            return _moved(batch, self.device, copies), copies


def prefetch(loader: Iterable, device: torch.device) -> DevicePrefetcher:
    """A prefetcher with a length exactly when ``loader`` has one (a check for unsized iterables holds)."""
    return view(DevicePrefetcher, loader, device)
