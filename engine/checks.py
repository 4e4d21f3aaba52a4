"""Argument checks that fail before the first step, naming the argument and the fix."""
from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from engine.loader_view import length

__all__ = ["check_epochs", "check_loader", "check_net", "check_optimizer", "check_schedule", "check_ema",
           "updates_per_epoch"]

_NOTHING = object()


def check_epochs(num_epochs: object) -> int:
    if isinstance(num_epochs, bool) or not isinstance(num_epochs, int) or num_epochs < 1:
        raise ValueError(f"num_epochs must be a positive int, got {num_epochs!r}")
    return num_epochs


def check_loader(name: str, data: Iterable, num_epochs: int = 1) -> Iterable:
    """``data`` checked to give batches for every epoch; returns what to iterate (``data`` itself, or a
    one-shot iterator with its first batch put back after the look)."""
    if not isinstance(data, Iterable):
        raise TypeError(f"{name} must be an iterable of (X, y) batches such as a DataLoader, got {type(data).__name__}")
    one_shot = isinstance(data, Iterator)
    if one_shot and num_epochs > 1:
        raise ValueError(
            f"{name} is a one-shot iterator ({type(data).__name__}): it yields batches in the first epoch only, and "
            f"{num_epochs} epochs were asked for; pass something that can be iterated again, such as the DataLoader "
            "itself or list(batches)"
        )
    size = length(data)
    first = None
    if size is None:  # no len(): look at the first batch (a one-shot iterator gets it back below)
        first = next(data if one_shot else iter(data), _NOTHING)
    if size == 0 or first is _NOTHING:
        raise ValueError(
            f"{name} yields no batches{' (len 0)' if size == 0 else ''}; check the dataset is not empty and, with "
            "drop_last=True, that it holds at least one full batch"
        )
    return itertools.chain([first], data) if one_shot and size is None else data


def check_net(net: object) -> nn.Module:
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be a torch.nn.Module (the model to train), got {type(net).__name__}; pass the "
                        "model first: train_ch13(net, train_iter, test_iter, loss, trainer, num_epochs)")
    return net


def check_optimizer(optimizer: torch.optim.Optimizer, net: nn.Module) -> None:
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"trainer/optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}; the loss "
                        "comes before it (the book's order: net, ..., loss, optimizer; Ignite's factory has them "
                        "the other way round)")
    own = {id(p) for p in net.parameters()}
    foreign = sum(1 for g in optimizer.param_groups for p in g["params"] if id(p) not in own)
    if foreign:
        raise ValueError(
            f"the optimizer holds {foreign} parameter(s) that are not in the model; "
            "build it from this model's parameters, e.g. torch.optim.SGD(net.parameters(), lr=0.1)"
        )


def updates_per_epoch(train_iter: Iterable, accumulation_steps: int = 1) -> int:
    """Optimizer updates each process makes per epoch in ``train_ch13``: the size of a per-update schedule.

    Under DDP every process runs ``len(train_iter)`` steps (each global batch is split, not the epoch),
    and an epoch's last, shorter group of accumulated batches still makes an update.
    """
    n = length(train_iter)
    if n is None:
        raise TypeError("train_iter has no length (a stream): a per-update schedule needs the number of batches an "
                        "epoch; step it per epoch (scheduler_every='epoch') or give the loader a length")
    return -(-n // accumulation_steps)


def check_schedule(scheduler: object, num_epochs: int, updates: int | None, every: str) -> None:
    """A schedule of fixed length (``OneCycleLR``) must last the run, or it raises in the middle of it."""
    if not isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR) or updates is None:
        return
    needed = num_epochs * (updates if every == "iteration" else 1)
    if scheduler.total_steps < needed:
        per = f"{num_epochs} epochs x {updates} updates" if every == "iteration" else f"{num_epochs} epochs"
        raise ValueError(f"lr_scheduler OneCycleLR has total_steps={scheduler.total_steps}, but this run steps it "
                         f"{needed} times ({per}); build it with total_steps=num_epochs * "
                         "engine.updates_per_epoch(train_iter, accumulation_steps) (under DDP too: every process "
                         "runs every batch of the global loader)")


def check_ema(decay: float | None, updates: int) -> None:
    """Say in one line, at start, when an EMA decay averages over more updates than the run makes (about
    ``1 / (1 - decay)``): its weights would stay near where they started, and its test acc with them."""
    if decay is None or 1 / (1 - decay) <= updates / 2:
        return
    fits = max(0.5, round(1 - 10 / updates, 3))
    print(f"ema {decay} averages over about {1 / (1 - decay):.0f} updates and this run makes {updates}: the averaged "
          f"weights stay near their start; a decay of about {fits} (--ema {fits}) follows this run",
          file=sys.stderr, flush=True)
