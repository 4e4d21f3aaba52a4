"""Overlap the host-to-device copy of the next batch with the current step (CUDA only).

A side stream copies batch i+1 from pinned memory while batch i trains; the compute stream waits
for the copy only when it needs the batch. On a CPU the loader passes through unchanged.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from engine.batch import move

__all__ = ["DevicePrefetcher"]


def _tensors(x: Any) -> Iterator[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (list, tuple)):
        for e in x:
            yield from _tensors(e)


class DevicePrefetcher:
    def __init__(self, loader: Iterable, device: torch.device) -> None:
        self.loader, self.device = loader, torch.device(device)
        self.sampler = getattr(loader, "sampler", None)  # seen by handlers that set a sampler's epoch

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:  # generator, dataset, batch_size ... of the wrapped loader
        return getattr(self.__dict__["loader"], name)

    def __iter__(self) -> Iterator[Any]:
        if self.device.type != "cuda":
            yield from self.loader
            return
        side = torch.cuda.Stream(self.device)
        main = torch.cuda.current_stream(self.device)
        batches = iter(self.loader)
        ahead = self._copy(batches, side)
        while ahead is not None:
            main.wait_stream(side)
            for t in _tensors(ahead):
                t.record_stream(main)  # the allocator must not reuse this memory before the step is done
            batch, ahead = ahead, self._copy(batches, side)
            yield batch

    def _copy(self, batches: Iterator[Any], side: torch.cuda.Stream) -> Any:
        try:
            batch = next(batches)
        except StopIteration:
            return None
        with torch.cuda.stream(side):
            return move(batch, self.device, True) if isinstance(batch, (list, tuple)) else batch
