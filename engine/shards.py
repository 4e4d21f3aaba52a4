"""Each process's share of every global batch, so several processes compute what one process would.

``ShardBatches`` splits batch ``i`` of the one-process order across the ranks (rank ``r`` takes its
``r``-th, ``r + world``-th, ... example), without the repeats ``DistributedSampler`` pads with: every
example is seen once per epoch, every rank runs the same number of steps (a rank whose share of the
last batch is empty gets an empty batch, so no rank skips a collective the others make), and the
ranks' batches together are the one-process batches. The shuffled order is drawn from
``seed + epoch`` like ``DistributedSampler``'s, so ``set_epoch`` gives each epoch a new order that
every rank agrees on, and a resumed run draws the order the uninterrupted one drew.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import Sampler

__all__ = ["ShardBatches", "EmptySafeCollate", "sampler_with_epoch"]


class ShardBatches(Sampler[list[int]]):
    def __init__(self, n: int, batch_size: int, rank: int, world: int, *, shuffle: bool, seed: int = 0,
                 drop_last: bool = False) -> None:
        self.n, self.batch_size, self.rank, self.world = n, batch_size, rank, world
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Which epoch's order the next ``iter`` draws (0-based, as ``DistributedSampler``)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        else:
            order = list(range(self.n))
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield order[start + self.rank:min(start + self.batch_size, self.n):self.world]


class EmptySafeCollate:
    """``collate_fn`` that turns an empty share into a batch of 0 examples shaped like the data set's."""

    def __init__(self, collate_fn: Callable[[list[Any]], Any], dataset: Any) -> None:
        self.collate_fn, self.dataset = collate_fn, dataset

    def __call__(self, samples: list[Any]) -> Any:
        if samples:
            return self.collate_fn(samples)
        return _empty(self.collate_fn([self.dataset[0]]))


def _empty(batch: Any) -> Any:
    """The collated one-example ``batch`` cut to 0 examples: tensors sliced, lists of plain items emptied."""
    if isinstance(batch, torch.Tensor):
        return batch[:0]
    if isinstance(batch, Mapping):
        return {k: _empty(v) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple keeps its fields
        return type(batch)(*map(_empty, batch))
    if isinstance(batch, (list, tuple)):
        fields = any(isinstance(v, (torch.Tensor, Mapping, list, tuple)) for v in batch)
        return type(batch)(map(_empty, batch)) if fields else type(batch)()
    return batch


def sampler_with_epoch(loader: Any) -> Any:
    """The loader's sampler (or batch sampler) that has ``set_epoch``, else None."""
    for name in ("batch_sampler", "sampler"):
        sampler = getattr(loader, name, None)
        if hasattr(sampler, "set_epoch"):
            return sampler
    return None
