"""Where a ``train_ch13`` run computes: the device list, the wrapped model and the loaders, decided once.

One process: the net on ``devices[0]``, wrapped in DataParallel for several GPUs (the book's way).
Under ``torchrun`` / ``idist.Parallel``: DDP through ``ignite.distributed`` and sharded loaders.
On a GPU the training loader copies the next batch on a side stream.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import ignite.distributed as idist
import torch
from torch import nn

from engine.loader_view import length
from engine.devices import devices_label, place_model, resolve_devices
from engine.distributed import describe_world, distribute_model, is_distributed, shard_loader
from engine.prefetch import prefetch

__all__ = ["Placement", "place", "run_device"]


@dataclass(frozen=True)
class Placement:
    model: nn.Module  # what the steps call: the net, DataParallel(net) or DDP(net)
    devices: list[torch.device]
    train_iter: Iterable
    test_iter: Iterable
    world_size: int  # processes DDP averages gradients over
    label: str  # the device list as the closing line prints it

    @property
    def device(self) -> torch.device:
        return self.devices[0]

    @property
    def epoch_length(self) -> int | None:
        return length(self.train_iter)


def run_device(devices: Sequence[Any] | None, distributed: bool | None = None) -> torch.device:
    """The device ``place`` will put the net on, known before anything moves or is wrapped."""
    return idist.device() if (is_distributed() if distributed is None else distributed) else \
        resolve_devices(devices)[0]


def place(net: nn.Module, train_iter: Iterable, test_iter: Iterable, devices: Sequence[Any] | None,
          distributed: bool | None = None) -> Placement:
    """Place ``net`` and adapt the loaders; ``distributed=None`` detects a process group."""
    if is_distributed() if distributed is None else distributed:
        devices_, model, label = [idist.device()], distribute_model(net), describe_world()
        train_iter, test_iter = shard_loader(train_iter, True), shard_loader(test_iter, False)
    else:
        devices_ = resolve_devices(devices)
        model, label = place_model(net, devices_), devices_label(devices, devices_)
    if devices_[0].type == "cuda":
        train_iter = prefetch(train_iter, devices_[0])
    return Placement(model, devices_, train_iter, test_iter, idist.get_world_size(), label)
