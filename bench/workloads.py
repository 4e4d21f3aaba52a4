"""The benchmark's models and data: LeNet on 28x28 and the book's ResNet-18 on 32x32, synthetic,
either already on the device or fed by a DataLoader with workers (and pinned memory on a GPU)."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))

from engine.app.data import lenet  # noqa: E402
from vision import resnet18  # noqa: E402

SHAPES = {"lenet": (1, 28, 28), "resnet18": (3, 32, 32)}


def model(workload: str) -> nn.Module:
    torch.manual_seed(0)
    return lenet() if workload == "lenet" else resnet18(10, 3)


def data(workload: str, feed: str, batch: int, iters: int, device: torch.device) -> tuple[Iterable, Iterable]:
    """``iters`` training batches and 2 test batches of random images with 10 classes."""
    g = torch.Generator().manual_seed(0)
    n = batch * iters
    X = torch.rand((n + 2 * batch, *SHAPES[workload]), generator=g)
    y = torch.randint(0, 10, (n + 2 * batch,), generator=g)
    if feed == "device":
        batches = [(X[i:i + batch].to(device), y[i:i + batch].to(device)) for i in range(0, n + 2 * batch, batch)]
        return batches[:iters], batches[iters:]
    pin = device.type == "cuda"
    train = DataLoader(TensorDataset(X[:n], y[:n]), batch, num_workers=2, pin_memory=pin, persistent_workers=True)
    test = DataLoader(TensorDataset(X[n:], y[n:]), batch, num_workers=0, pin_memory=pin)
    return train, test
