"""DistributedDataParallel through ``ignite.distributed``: the model, the loaders, and who speaks.

Processes come from ``torchrun`` or ``idist.Parallel`` (see ``d2l-ignite train --nproc-per-node``);
this module only adapts what ``train_ch13`` is given once the process group exists.
"""
from __future__ import annotations

import gc
import traceback
from collections.abc import Iterable
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

from engine.shards import EmptySafeCollate, ShardBatches, sampler_with_epoch

__all__ = ["is_distributed", "is_main_process", "distribute_model", "shard_loader", "describe_world",
           "attach_sampler_epoch", "release_process_group"]


def is_distributed() -> bool:
    return idist.get_world_size() > 1


def is_main_process() -> bool:
    """Rank 0 prints, plots and writes files; the others only train."""
    return idist.get_rank() == 0


def describe_world() -> str:
    return f"[{idist.device()!r}] x {idist.get_world_size()} processes ({idist.backend()})"


def release_process_group(error: BaseException | None = None) -> None:
    """Free what still holds the process group, while the interpreter is whole; call it before the group ends.

    Gloo's group keeps its C++ threads (a TCP loop, two work loops) until the last Python reference to it
    goes: ``destroy_process_group`` does not stop them. A run's Engines hold the DDP wrapper, which holds
    the group, in reference cycles; left to the interpreter's exit they were torn down during its
    finalization, where stopping those threads can abort the process ("terminate called without an
    active exception", SIGABRT) after a successful run. With ``error``, the locals of its traceback's
    finished frames go too (its message and lines stay).
    """
    if error is not None:
        traceback.clear_frames(error.__traceback__)
    gc.collect()


def distribute_model(net: nn.Module) -> nn.Module:
    """The net on this process's device, wrapped in DDP (``idist.auto_model`` where its choices hold).

    Ignite names GPU ``local_rank`` in DDP's ``device_ids``, which is wrong where processes share GPUs
    (a gloo group with more processes than GPUs: see ``engine.app.launch``), and it leaves a group of
    one process unwrapped, where ``distributed=True`` asked for DDP; both get DDP on the process's device.
    """
    device = idist.device()
    shared = device.type == "cuda" and device.index != idist.get_local_rank()
    if not shared and idist.get_world_size() > 1:
        return idist.auto_model(net)
    net.to(device)
    if not torch.distributed.is_initialized():
        return net
    return nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)


def shard_loader(loader: Iterable, train: bool) -> DataLoader:
    """The same data set and loader options, each batch split across processes (``ShardBatches``).

    Not ``idist.auto_dataloader``: its ``DistributedSampler`` pads the data with repeated examples and
    its per-rank batches do not partition the one-process batches, so the figures and the updates of
    several processes would differ from one process's. A loader already sharded is kept.
    """
    if not isinstance(loader, DataLoader):
        raise TypeError(f"under DDP the loaders must be torch DataLoaders to be sharded, got {type(loader).__name__}; "
                        "or shard your data yourself and pass distributed=False")
    sharded = sampler_with_epoch(loader) or (loader.sampler if isinstance(loader.sampler, DistributedSampler) else None)
    if isinstance(loader.batch_sampler, ShardBatches):
        return loader
    if sharded is not None:
        _check_sharded(sharded, loader, train)
        return loader
    if loader.batch_size is None or not isinstance(loader.sampler, (RandomSampler, SequentialSampler)):
        raise ValueError(f"under DDP the {'training' if train else 'test'} loader's batches are split across "
                         "processes, which needs a batch_size and a plain (shuffle=True/False) sampler; for a custom "
                         "sampler or batch_sampler, shard it yourself (e.g. DistributedSampler) and pass that loader")
    shuffle = isinstance(loader.sampler, RandomSampler)
    batches = ShardBatches(loader.sampler, len(loader.dataset), loader.batch_size, idist.get_rank(),
                           idist.get_world_size(), drop_last=loader.drop_last, agree=shuffle)
    workers = {"num_workers": loader.num_workers, "worker_init_fn": loader.worker_init_fn,
               "multiprocessing_context": loader.multiprocessing_context, "timeout": loader.timeout}
    if loader.num_workers > 0:
        workers.update(persistent_workers=loader.persistent_workers, prefetch_factor=loader.prefetch_factor)
    collate = EmptySafeCollate(loader.collate_fn, loader.dataset)
    return DataLoader(loader.dataset, batch_sampler=batches, collate_fn=collate, generator=loader.generator,
                      pin_memory=loader.pin_memory or idist.device().type == "cuda", **workers)


def _check_sharded(sampler: Any, loader: DataLoader, train: bool) -> None:
    """A sampler with ``set_epoch`` is taken as this process's shard; one that draws the whole data set in every
    process is refused: each would train on all of it while the update is scaled for its share."""
    if hasattr(sampler, "num_replicas") or idist.get_world_size() == 1 or sampler is getattr(loader, "batch_sampler",
                                                                                             None):
        return
    try:
        drawn, size = len(sampler), len(loader.dataset)
    except TypeError:
        return
    if drawn >= size:
        raise ValueError(f"under DDP the {'training' if train else 'test'} loader's sampler "
                         f"({type(sampler).__name__}) has set_epoch but draws all {size} examples in every process: "
                         "each would train on the whole data set; give it this process's share (DistributedSampler("
                         "dataset, shuffle=True)), or pass shuffle=True and let the batches be split across processes")


def attach_sampler_epoch(trainer: Engine, loader: Iterable) -> None:
    """A new order each epoch: tell the sampler the coming epoch before its iterator is made.

    That is at the start of the run (a resumed run continues with the epoch after the saved one) and at
    each epoch's end, before the RNG snapshot starts the next epoch's iterator (attach this first).
    Ignite's Engine never calls ``set_epoch`` itself.
    """
    sampler = sampler_with_epoch(loader)
    if sampler is not None:
        for event in (Events.STARTED, Events.EPOCH_COMPLETED):
            trainer.add_event_handler(event, lambda e: sampler.set_epoch(e.state.epoch))
