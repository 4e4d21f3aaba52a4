"""One training run per variant, each returning per-epoch timed-step seconds and wall seconds.

The book's ``train_ch13`` runs unmodified; its own ``Timer`` instances and its per-epoch
``evaluate_accuracy_gpu`` call are observed from outside to read the same figures.
"""
from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterable

import torch
from ignite.engine import Events
from torch import nn

Result = dict[str, list[float]]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def book(net: nn.Module, train: Iterable, test: Iterable, device: torch.device, epochs: int) -> Result:
    import d2l.torch as d2l

    timers: list = []
    ends: list[float] = []

    class SeenTimer(d2l.Timer):
        def __init__(self) -> None:
            super().__init__()
            timers.append(self)

    evaluate = d2l.evaluate_accuracy_gpu

    def evaluated(*a, **kw):
        out = evaluate(*a, **kw)
        ends.append(time.perf_counter())
        return out

    d2l.Timer, d2l.evaluate_accuracy_gpu = SeenTimer, evaluated
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the Animator "displays" figures as text outside Jupyter
        d2l.train_ch13(net, train, test, nn.CrossEntropyLoss(reduction="none"), opt, epochs, [device])
    steps = [t for t in timers if len(t.times) > 2][0].times
    per = len(steps) // epochs
    return {"step": [sum(steps[i * per:(i + 1) * per]) for i in range(epochs)], "wall": _diffs(start, ends)}


def _diffs(start: float, ends: list[float]) -> list[float]:
    marks = [start, *ends]
    return [b - a for a, b in zip(marks, marks[1:])]


def hand(net: nn.Module, train: Iterable, test: Iterable, device: torch.device, epochs: int) -> Result:
    """The practical limit: the book's math, sums kept on the device and read once per epoch."""
    net.to(device)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    loss = nn.CrossEntropyLoss(reduction="none")
    steps, walls = [], []
    for _ in range(epochs):
        _sync(device)
        start, timed = time.perf_counter(), 0.0
        sums = torch.zeros(2, device=device)
        count = 0
        net.train()
        for X, y in train:
            t0 = time.perf_counter()
            X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            y_hat = net(X)
            l = loss(y_hat, y)
            l.sum().backward()
            opt.step()
            sums += torch.stack([l.sum().detach(), (y_hat.argmax(1) == y).sum()])
            count += y.shape[0]
            timed += time.perf_counter() - t0
        _sync(device)
        if device.type == "cuda":  # no per-step sync: the loop's span, waited on once, is the step time
            timed = time.perf_counter() - start
        float(sums[0])
        net.eval()
        with torch.no_grad():
            hits = sum((net(X.to(device)).argmax(1) == y.to(device)).sum() for X, y in test)
        float(hits)
        walls.append(time.perf_counter() - start)
        steps.append(timed)
    return {"step": steps, "wall": walls}


def ignite_factory(net: nn.Module, train: Iterable, test: Iterable, device: torch.device, epochs: int) -> Result:
    """Ignite's ``create_supervised_trainer`` with ``Accuracy`` and ``Loss`` at their defaults."""
    from ignite.engine import create_supervised_evaluator, create_supervised_trainer
    from ignite.metrics import Accuracy, Loss

    net.to(device)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    loss = nn.CrossEntropyLoss()
    trainer = create_supervised_trainer(net, opt, loss, device,
                                        output_transform=lambda x, y, y_pred, l: {"y_pred": y_pred, "y": y,
                                                                                 "loss": l.item()})
    Accuracy(output_transform=lambda o: (o["y_pred"], o["y"])).attach(trainer, "acc")
    Loss(loss, output_transform=lambda o: (o["y_pred"], o["y"])).attach(trainer, "loss")
    evaluator = create_supervised_evaluator(net, {"acc": Accuracy()}, device)
    return _timed(trainer, lambda: evaluator.run(test), train, device, epochs)


def ours(net: nn.Module, train: Iterable, test: Iterable, device: torch.device, epochs: int,
         plot: object = False, **options: object) -> Result:
    from engine import train_ch13

    from handlers.running import RunningMetrics

    ends: list[float] = []
    timers: list = []

    def observe(trainer, _):  # the run's own step timer: each epoch's timed seconds
        timers.append(RunningMetrics.on(trainer).timer)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda _: ends.append(time.perf_counter()))

    start = time.perf_counter()
    train_ch13(net, train, test, nn.CrossEntropyLoss(reduction="none"), torch.optim.Adam(net.parameters(), 1e-3),
               epochs, [device], plot=plot, verbose=False, progress=False, handlers=[observe], **options)
    return {"step": list(timers[0].epoch_seconds), "wall": _diffs(start, ends)}


def _timed(trainer, evaluate: Callable[[], object], train: Iterable, device: torch.device, epochs: int) -> Result:
    steps: list[float] = []
    walls: list[float] = []
    marks = {}
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda _: marks.update(start=time.perf_counter(), timed=0.0))
    trainer.add_event_handler(Events.ITERATION_STARTED, lambda _: marks.update(t0=time.perf_counter()))
    trainer.add_event_handler(Events.ITERATION_COMPLETED,
                              lambda _: marks.update(timed=marks["timed"] + time.perf_counter() - marks["t0"]))

    def epoch_done(_):
        evaluate()
        _sync(device)
        steps.append(marks["timed"])
        walls.append(time.perf_counter() - marks["start"])

    trainer.add_event_handler(Events.EPOCH_COMPLETED, epoch_done)
    trainer.run(train, max_epochs=epochs)
    return {"step": steps, "wall": walls}
