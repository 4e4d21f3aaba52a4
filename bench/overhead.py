"""The engine's own costs, measured apart from the model: per iteration and per call.

- Per-iteration overhead: the same trivial step (a 4->3 linear layer on 2 examples, the project's
  own step body) run by a hand loop and by ``create_trainer`` + the book's recipe, interleaved;
  (ours - hand) / iterations, median of the repeats, in microseconds.
- A call's fixed cost: ``train_ch13`` from the call to its first step plus from its last step to its
  return (the tiny test pass included), with plots off and with plots to a live local server; the
  one-time start of that server is shown apart.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from ignite.engine import Events
from torch import nn

from engine import book_recipe, create_evaluator, create_trainer, train_ch13
from engine.options import StepOptions
from engine.step import train_batch
from engine.updater import Updater
from handlers import LocalVisdom, VisdomPlotter

LOSS = nn.CrossEntropyLoss(reduction="none")


def batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(2, 4, generator=g), torch.randint(0, 3, (2,), generator=g)) for _ in range(n)]


def hand(data: list, epochs: int) -> float:
    net = nn.Linear(4, 3)
    updater, options, cpu = Updater(torch.optim.SGD(net.parameters(), 0.01), net.parameters()), StepOptions(), \
        torch.device("cpu")
    t0 = time.perf_counter()
    for _ in range(epochs):
        for X, y in data:
            train_batch(net, net, X, y, LOSS, updater, options, cpu)
    return time.perf_counter() - t0


def ours(data: list, epochs: int) -> float:
    net = nn.Linear(4, 3)
    trainer = create_trainer(net, LOSS, torch.optim.SGD(net.parameters(), 0.01))
    book_recipe(trainer, create_evaluator(net), data[:1], num_epochs=epochs).attach()
    marks: dict[str, float] = {}
    trainer.add_event_handler(Events.STARTED, lambda _: marks.setdefault("start", time.perf_counter()))
    trainer.add_event_handler(Events.COMPLETED, lambda _: marks.setdefault("end", time.perf_counter()))
    trainer.run(data, max_epochs=epochs)
    evals = epochs * _eval_seconds(net, data[:1])
    return marks["end"] - marks["start"] - evals


def _eval_seconds(net: nn.Module, test: list) -> float:
    """What one epoch-end test pass costs, taken out of the loop's time (the hand loop has none)."""
    evaluator = create_evaluator(net)
    t0 = time.perf_counter()
    for _ in range(20):
        evaluator.run(test)
    return (time.perf_counter() - t0) / 20


def per_iteration(iterations: int, repeats: int) -> float:
    data = batches(iterations)
    gaps = []
    for _ in range(repeats):
        a, b = hand(data, 1), ours(data, 1)
        gaps.append((b - a) / iterations * 1e6)
    return statistics.median(gaps)


def fixed_cost(plot: VisdomPlotter | bool, repeats: int) -> float:
    """ms from the call to the first step plus from the last step to the return."""
    data, costs = batches(20), []
    for _ in range(repeats):
        net = nn.Linear(4, 3)
        marks: dict[str, float] = {}
        timing = lambda t, _: (  # noqa: E731
            t.add_event_handler(Events.ITERATION_STARTED(once=1), lambda _: marks.setdefault("first", time.perf_counter())),
            t.add_event_handler(Events.ITERATION_COMPLETED(once=20), lambda _: marks.setdefault("last", time.perf_counter())))
        t0 = time.perf_counter()
        train_ch13(net, data, data[:1], LOSS, torch.optim.SGD(net.parameters(), 0.01), 1, ["cpu"], plot=plot,
                   verbose=False, progress=False, handlers=[timing])
        t1 = time.perf_counter()
        costs.append((marks["first"] - t0 + t1 - marks["last"]) * 1e3)
    return statistics.median(costs)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="CI-sized: fewer iterations and repeats")
    args = p.parse_args(argv)
    iterations, repeats = (500, 3) if args.quick else (4000, 7)
    hand(batches(50), 2), ours(batches(50), 2)  # warm-up: first-call costs are not the loop's
    print(f"per-iteration overhead over the hand loop, trivial step: {per_iteration(iterations, repeats):.1f} us "
          f"(median of {repeats} x {iterations} iterations; target <= 25 us)")
    print(f"fixed cost of a call, plots off: {fixed_cost(False, repeats):.1f} ms (target <= 30 ms)")
    t0 = time.perf_counter()
    with LocalVisdom(env_path="runs/bench-visdom") as server:
        start = (time.perf_counter() - t0) * 1e3
        with VisdomPlotter(server.url, env="bench-overhead") as plotter:
            live = fixed_cost(plotter, repeats)
    print(f"fixed cost of a call, plots to a live local server: {live:.1f} ms (target <= 30 ms); the server's "
          f"one-time start: {start:.0f} ms")


if __name__ == "__main__":
    main()
