"""Host cost per iteration, like with like: the same trivial step (a 4->3 linear layer on 2 examples, the
project's own step body) run by every loop a user could write, interleaved round by round in one process.

- ``hand``: the step in a plain loop (the floor); ``hand+book``: the loop also producing the book's figures
  (loss and correct sums on the device, a host clock around each step, 5 reads an epoch);
- ``bare Engine``: an Ignite Engine around the step (the floor for any Engine);
- ``ours``, ``ours+bar``: ``create_trainer`` + the book's recipe given its device, without and with the
  default progress display;
- ``ignite``, ``ignite+bar``: Ignite's ``create_supervised_trainer`` with ``Accuracy`` and ``Loss`` on the
  training device, without and with Ignite's ``ProgressBar``.
Each figure is the median over rounds of an epoch's time per iteration (µs), from the epoch's first to its
last handler (the epoch-end test pass left out): on the CPU the main thread's CPU time (``time.thread_time``:
what this process itself spent, free of the VM's preemption, which moves wall times here by tens of µs), on
CUDA wall time with the device synchronised at both marks. Aten ops
dispatched per iteration are counted apart (``TorchDispatchMode``), so a regression in host work shows without
a GPU.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable

import torch
from ignite.engine import Engine, Events, create_supervised_trainer
from ignite.handlers import ProgressBar
from ignite.metrics import Accuracy, Loss
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from engine import book_recipe, create_evaluator, create_trainer
from engine.step import train_batch
from engine.step_options import StepOptions
from engine.updater import Updater

LOSS = nn.CrossEntropyLoss(reduction="none")
Epoch = Callable[[], float]  # runs one epoch, returns its seconds


def batches(n: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(2, 4, generator=g).to(device), torch.randint(0, 3, (2,), generator=g).to(device))
            for _ in range(n)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


_CLOCK = {"cpu": time.thread_time}  # set by measure(): the CPU's thread time, else wall time


def _now() -> float:
    return _CLOCK["cpu"]()


def _model(device: torch.device) -> tuple[nn.Module, torch.optim.Optimizer]:
    net = nn.Linear(4, 3).to(device)
    return net, torch.optim.SGD(net.parameters(), 0.01)


def hand(data: list, device: torch.device, book: bool = False) -> Epoch:
    net, opt = _model(device)
    updater, options = Updater(opt, net.parameters()), StepOptions()
    points = {max(len(data) // 5, 1) * k for k in range(1, 6)} | {len(data)}

    def epoch() -> float:
        _sync(device)
        t0 = _now()
        loss_sum = correct = torch.zeros((), device=device)
        examples, timed = 0, 0.0
        for i, (X, y) in enumerate(data, 1):
            start = time.perf_counter()
            stats, _ = train_batch(net, net, X, y, LOSS, updater, options, device)
            if book:
                timed += time.perf_counter() - start
                loss_sum, correct = loss_sum + stats["loss"], correct + stats["correct"]
                examples += stats["examples"]
                if i in points:
                    torch.stack([loss_sum, correct]).tolist()  # the book's 5 reads an epoch, one sync each
        _sync(device)
        return _now() - t0
    return epoch


def _timed(engine: Engine, data: list, device: torch.device) -> Epoch:
    """An Engine's epochs, one per call, timed from its first EPOCH_STARTED handler to its first EPOCH_COMPLETED."""
    marks: dict[str, float] = {}
    engine.add_event_handler(Events.EPOCH_STARTED, lambda _: (_sync(device), marks.update(start=_now())))
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda _: (_sync(device), marks.update(end=_now())))
    return lambda: (engine.run(data, max_epochs=engine.state.epoch + 1), marks["end"] - marks["start"])[1]


def bare(data: list, device: torch.device) -> tuple[Engine, Epoch]:
    net, opt = _model(device)
    updater, options = Updater(opt, net.parameters()), StepOptions()
    engine = Engine(lambda e, b: train_batch(net, net, b[0], b[1], LOSS, updater, options, device)[0])
    return engine, _timed(engine, data, device)


def ours(data: list, device: torch.device, bar: bool = False) -> tuple[Engine, Epoch]:
    net, opt = _model(device)
    trainer = create_trainer(net, LOSS, opt, [device])
    epoch = _timed(trainer, data, device)  # its marks go first: the recipe's epoch-end work is not timed
    book_recipe(trainer, create_evaluator(net, [device]), data[:1], num_epochs=10**6, device=device,
                progress=bar).attach()
    return trainer, epoch


def ignite(data: list, device: torch.device, bar: bool = False) -> tuple[Engine, Epoch]:
    net, opt = _model(device)
    trainer = create_supervised_trainer(net, opt, nn.CrossEntropyLoss(), device=device,
                                        output_transform=lambda x, y, y_pred, loss: (y_pred, y))
    epoch = _timed(trainer, data, device)
    Accuracy(device=device).attach(trainer, "acc")
    Loss(nn.CrossEntropyLoss(), device=device).attach(trainer, "loss")
    if bar:
        ProgressBar(persist=False).attach(trainer, metric_names="all")
    return trainer, epoch


VARIANTS: dict[str, Callable[[list, torch.device], Epoch | tuple[Engine, Epoch]]] = {
    "hand": hand, "hand+book": lambda d, dev: hand(d, dev, book=True), "bare Engine": bare, "ours": ours,
    "ours+bar": lambda d, dev: ours(d, dev, bar=True), "ignite": ignite,
    "ignite+bar": lambda d, dev: ignite(d, dev, bar=True),
}


class _Count(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        self.ops += 1
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def _quiet() -> object:
    """The bars draw to a terminal-less stderr as they would to a log: their cost, not their text."""
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        yield


def _python_calls(epoch: Epoch) -> int:
    """Python function calls made while ``epoch`` runs: host work counted, not timed (the same on any machine)."""
    calls = [0]

    def count(frame: object, event: str, arg: object) -> None:
        if event == "call":
            calls[0] += 1

    sys.setprofile(count)
    try:
        epoch()
    finally:
        sys.setprofile(None)
    return calls[0]


def measure(iterations: int, rounds: int, device: torch.device) -> dict[str, tuple[float, float, float, float]]:
    """``{variant: (µs per iteration, µs over the bare Engine, aten ops per iteration, Python calls per
    iteration)}``. Every round runs each variant's epoch back to back (order alternating); the times are each
    variant's fastest round (the lower envelope: what the loop costs when nothing else takes the CPU, as
    ``timeit`` reports), so the difference to the bare Engine is its own work, not the machine's noise."""
    _CLOCK["cpu"] = time.thread_time if device.type == "cpu" else time.perf_counter
    data = batches(iterations, device)
    made = {name: make(data, device) for name, make in VARIANTS.items()}
    epochs = {name: e[1] if isinstance(e, tuple) else e for name, e in made.items()}
    times: dict[str, list[float]] = {name: [] for name in epochs}
    with _quiet():
        for epoch in epochs.values():  # warm-up
            epoch()
        ops, calls = {}, {}
        for name, epoch in epochs.items():
            with _Count() as count:
                epoch()
            ops[name] = count.ops / iterations
            calls[name] = _python_calls(epoch) / iterations
        for r in range(rounds):
            for name in list(epochs) if r % 2 == 0 else list(reversed(epochs)):
                times[name].append(epochs[name]() / iterations * 1e6)
    floor = min(times["bare Engine"])
    return {name: (min(t), min(t) - floor, ops[name], calls[name]) for name, t in times.items()}


def report(results: dict[str, tuple[float, float, float, float]]) -> list[str]:
    rows = ["| loop | µs / iteration | over a bare Engine | aten ops / iteration | Python calls / iteration |",
            "|---|---|---|---|---|"]
    rows += [f"| {name} | {us:.1f} | {over:+.1f} | {ops:.1f} | {calls:.0f} |"
             for name, (us, over, ops, calls) in results.items()]
    return rows


if __name__ == "__main__":
    for row in report(measure(400, 15, torch.device(sys.argv[1] if len(sys.argv) > 1 else "cpu"))):
        print(row)
