"""DistributedDataParallel through ``ignite.distributed``: the model, the loaders, and who speaks.

Processes come from ``torchrun`` or ``idist.Parallel`` (see ``d2l-ignite train --nproc-per-node``);
this module only adapts what ``train_ch13`` is given once the process group exists.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import ignite.distributed as idist
from ignite.engine import Engine, Events
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler

__all__ = ["is_distributed", "is_main_process", "distribute_model", "shard_loader", "describe_world"]


def is_distributed() -> bool:
    return idist.get_world_size() > 1


def is_main_process() -> bool:
    """Rank 0 prints, plots and writes files; the others only train."""
    return idist.get_rank() == 0


def describe_world() -> str:
    return f"[{idist.device()!r}] x {idist.get_world_size()} processes ({idist.backend()})"


def distribute_model(net: nn.Module) -> nn.Module:
    """``idist.auto_model``: the net on this process's device, wrapped in DDP."""
    return idist.auto_model(net)


class _Shard(Sampler[int]):
    """Every ``world``-th index from ``rank``, without the padding DistributedSampler adds, so each test
    example is counted exactly once in the global accuracy."""

    def __init__(self, n: int) -> None:
        self.indices = range(idist.get_rank(), n, idist.get_world_size())

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def shard_loader(loader: Iterable, train: bool) -> DataLoader:
    """The same data set and loader options, split across processes; the global batch keeps its size.

    Training uses a DistributedSampler (shuffled when the loader shuffled) through
    ``idist.auto_dataloader``; evaluation uses an unpadded shard.
    """
    if not isinstance(loader, DataLoader):
        raise TypeError(f"under DDP the loaders must be torch DataLoaders to be sharded, got {type(loader).__name__}; "
                        "or shard your data yourself and pass distributed=False")
    if isinstance(loader.sampler, (DistributedSampler, _Shard)):
        return loader
    options: dict[str, Any] = {"batch_size": loader.batch_size, "num_workers": loader.num_workers,
                               "collate_fn": loader.collate_fn, "pin_memory": loader.pin_memory,
                               "drop_last": loader.drop_last}
    if train:
        return idist.auto_dataloader(loader.dataset, shuffle=isinstance(loader.sampler, RandomSampler), **options)
    options["batch_size"] = max(1, loader.batch_size // idist.get_world_size())
    return DataLoader(loader.dataset, sampler=_Shard(len(loader.dataset)), **options)


def attach_sampler_epoch(trainer: Engine, loader: Iterable) -> None:
    """A different shuffle each epoch: DistributedSampler draws its order from ``set_epoch``."""
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: sampler.set_epoch(e.state.epoch - 1))
