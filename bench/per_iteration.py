"""Host cost per iteration, like with like: the same trivial step (a 4->3 linear layer on 2 examples, the
project's own step body) run by every loop a user could write, interleaved round by round in one process.

- ``hand``: the step in a plain loop (the floor); ``hand+book``: the loop also producing the book's figures
  (loss and correct sums on the device, a host clock around each step, 5 reads an epoch);
- ``bare Engine``: an Ignite Engine around the step (the floor for any Engine);
- ``ours``, ``ours+bar``: ``create_trainer`` + the book's recipe given its device, without and with the
  default progress display;
- ``ignite``, ``ignite+bar``: Ignite's ``create_supervised_trainer`` with ``Accuracy`` and ``Loss`` on the
  training device, without and with Ignite's ``ProgressBar``.
Each figure is per iteration, from one iteration's start to the next's (so the loop's own work, the batch
fetch and every per-iteration handler count; an epoch's end and its test pass do not), the median over an epoch
(the book's 5 points an epoch are not a typical iteration): on the CPU the main thread's CPU time
(``time.thread_time``), on CUDA wall time. This VM's speed drifts by tens of µs between epochs, so a variant's
cost over the bare Engine is the median of differences paired within a round (every variant's epoch back to back,
order alternating), not a difference of two medians taken seconds apart. Aten ops dispatched per iteration are
counted apart (``TorchDispatchMode``), so a regression in host work shows without a GPU.
"""
from __future__ import annotations

import contextlib
import os
import statistics
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
Epoch = Callable[[], list[float]]  # runs one epoch, returns each iteration's seconds (start to next start)


def batches(n: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(2, 4, generator=g).to(device), torch.randint(0, 3, (2,), generator=g).to(device))
            for _ in range(n)]


_CLOCK = {"cpu": time.thread_time}  # set by measure(): the CPU's thread time, else wall time


def _now() -> float:
    return _CLOCK["cpu"]()


def _model(device: torch.device) -> tuple[nn.Module, torch.optim.Optimizer]:
    net = nn.Linear(4, 3).to(device)
    return net, torch.optim.SGD(net.parameters(), 0.01)


def _intervals(marks: list[float]) -> list[float]:
    return [b - a for a, b in zip(marks, marks[1:])]


def hand(data: list, device: torch.device, book: bool = False) -> Epoch:
    net, opt = _model(device)
    updater, options = Updater(opt, net.parameters()), StepOptions()
    points = {max(len(data) // 5, 1) * k for k in range(1, 6)} | {len(data)}

    def epoch() -> list[float]:
        marks: list[float] = []
        loss_sum = correct = torch.zeros((), device=device)
        examples, timed = 0, 0.0
        for i, (X, y) in enumerate(data, 1):
            marks.append(_now())
            start = time.perf_counter()
            stats, _ = train_batch(net, net, X, y, LOSS, updater, options, device)
            if book:
                timed += time.perf_counter() - start
                loss_sum, correct = loss_sum + stats["loss"], correct + stats["correct"]
                examples += stats["examples"]
                if i in points:
                    torch.stack([loss_sum, correct]).tolist()  # the book's 5 reads an epoch, one sync each
        marks.append(_now())
        return _intervals(marks)
    return epoch


def _timed(engine: Engine, data: list, device: torch.device) -> Epoch:
    """An Engine's epochs, one per call, marked by its first ITERATION_STARTED handler (and its first
    EPOCH_COMPLETED one, which ends the last iteration)."""
    marks: list[float] = []
    engine.add_event_handler(Events.ITERATION_STARTED, lambda _: marks.append(_now()))
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda _: marks.append(_now()))

    def epoch() -> list[float]:
        marks.clear()
        engine.run(data, max_epochs=engine.state.epoch + 1)
        return _intervals(marks)
    return epoch


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
    iteration)}``: medians over ``rounds`` rounds of each variant's median iteration, the cost over the bare
    Engine paired within each round (see the module doc)."""
    _CLOCK["cpu"] = time.thread_time if device.type == "cpu" else time.perf_counter
    data = batches(iterations, device)
    made = {name: make(data, device) for name, make in VARIANTS.items()}
    epochs = {name: e[1] if isinstance(e, tuple) else e for name, e in made.items()}
    per_round: list[dict[str, float]] = []
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
            order = list(epochs) if r % 2 == 0 else list(reversed(epochs))
            per_round.append({name: statistics.median(epochs[name]()) * 1e6 for name in order})
    return {name: (statistics.median(m[name] for m in per_round),
                   statistics.median(m[name] - m["bare Engine"] for m in per_round), ops[name], calls[name])
            for name in epochs}


def report(results: dict[str, tuple[float, float, float, float]]) -> list[str]:
    rows = ["| loop | µs / iteration | over a bare Engine | aten ops / iteration | Python calls / iteration |",
            "|---|---|---|---|---|"]
    rows += [f"| {name} | {us:.1f} | {over:+.1f} | {ops:.1f} | {calls:.0f} |"
             for name, (us, over, ops, calls) in results.items()]
    return rows


if __name__ == "__main__":
    for row in report(measure(400, 31, torch.device(sys.argv[1] if len(sys.argv) > 1 else "cpu"))):
        print(row)
