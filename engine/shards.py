"""Each process's share of every global batch, so several processes compute what one process would.

``ShardBatches`` splits batch ``i`` of the one-process order across the ranks (rank ``r`` takes its
``r``-th, ``r + world``-th, ... example), without the repeats ``DistributedSampler`` pads with: every
example is seen once per epoch, every rank runs the same number of steps (a rank whose share of the
last batch is empty gets an empty batch, so no rank skips a collective the others make), and the
ranks' batches together are the one-process batches. The order is the one the loader's own sampler draws,
from the same random state (the loader's generator, else torch's), so a seeded script shuffles under DDP as
in one process, and a resumed run draws what the uninterrupted one drew (the RNG state is checkpointed).
Every rank draws it (their random states advance alike) and takes rank 0's, so the shares always partition.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import ignite.distributed as idist
import torch
from torch.utils.data import Sampler

__all__ = ["ShardBatches", "EmptySafeCollate", "sampler_with_epoch"]


class ShardBatches(Sampler[list[int]]):
    def __init__(self, order: Iterable[int], n: int, batch_size: int, rank: int, world: int, *,
                 drop_last: bool = False, agree: bool = True) -> None:
        self.order, self.n, self.batch_size, self.rank, self.world = order, n, batch_size, rank, world
        self.drop_last, self.agree = drop_last, agree  # agree: take rank 0's drawn order (a collective)

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = list(self.order)
        if self.agree and idist.get_world_size() > 1:
            order = idist.broadcast(torch.tensor(order, dtype=torch.int64), src=0).tolist()
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
