"""The rest of the book's toolbox as drop-ins: ``train_batch_ch13``, ``train_ch6``, ``accuracy``,
``Accumulator`` and ``Timer`` (``Animator`` is ``handlers.plot.Animator``).

``train_batch_ch13`` runs the same step body as ``create_trainer``'s Engine; ``train_ch6`` is the
book's LeNet trainer (Xavier init, SGD, mean cross-entropy) on ``train_ch13``'s Engines.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from engine.batch import move
from engine.devices import resolve_devices
from engine.step_options import StepOptions
from engine.step import correct_count, train_batch
from engine.train import train_ch13
from engine.updater import Updater
from handlers import History

__all__ = ["train_batch_ch13", "train_ch6", "accuracy", "Accumulator", "Timer"]


def train_batch_ch13(net: nn.Module, X: Any, y: torch.Tensor, loss: Callable[..., torch.Tensor],
                     trainer: torch.optim.Optimizer, devices: Sequence[Any] | None) -> tuple[float, float]:
    """One training step, as the book's: the batch's loss sum and number of correct predictions.

    ``X`` may be a list of tensors (BERT, NLI); everything moves to ``devices[0]`` (``[]`` or ``None``:
    the first GPU, else the CPU). This reads two numbers, so it waits for the device, as the book does.
    """
    device = resolve_devices(devices)[0]
    X, y = move(X, device, False), move(y, device, False)
    stats, _ = train_batch(net, net, X, y, loss, Updater(trainer, ()), StepOptions(), device)
    return float(stats["loss"]), float(stats["correct"])


def train_ch6(net: nn.Module, train_iter: Iterable, test_iter: Iterable, num_epochs: int, lr: float,
              device: torch.device | str, **options: Any) -> History:
    """The book's chapter-6/7 trainer: Xavier-uniform init of every Linear and Conv2d, SGD at ``lr``,
    mean cross-entropy, on one ``device``; prints ``training on <device>`` and the book's two lines.

    ``options`` go to ``train_ch13`` (``plot``, ``progress``, ``checkpoint_dir``, ...).
    """
    def init_weights(m: nn.Module) -> None:
        if type(m) in (nn.Linear, nn.Conv2d):  # exact types, as the book: subclasses keep their own init
            nn.init.xavier_uniform_(m.weight)

    net.apply(init_weights)
    print("training on", device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    return train_ch13(net, train_iter, test_iter, nn.CrossEntropyLoss(), optimizer, num_epochs, device, **options)


def accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """The book's ``accuracy``: the number of correct predictions, as a float (a host sync)."""
    return float(correct_count(y_hat, y))


class Accumulator:
    """Sums over ``n`` variables, as floats (``add`` reads tensors, so it waits for the device)."""

    def __init__(self, n: int) -> None:
        self.data = [0.0] * n

    def add(self, *args: Any) -> None:
        self.data = [a + float(b) for a, b in zip(self.data, args)]

    def reset(self) -> None:
        self.data = [0.0] * len(self.data)

    def __getitem__(self, idx: int) -> float:
        return self.data[idx]


class Timer:
    """Records running times: ``start``/``stop`` (returns the last), ``avg``, ``sum``, ``cumsum``."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.start()

    def start(self) -> None:
        self.tik = time.time()

    def stop(self) -> float:
        self.times.append(time.time() - self.tik)
        return self.times[-1]

    def avg(self) -> float:
        return sum(self.times) / len(self.times)

    def sum(self) -> float:
        return sum(self.times)

    def cumsum(self) -> list[float]:
        out, total = [], 0.0
        for t in self.times:
            total += t
            out.append(total)
        return out
