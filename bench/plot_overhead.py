"""Plotting every iteration vs no plotting, side by side (A B A B), plus the fault cases.

Prints the median seconds of the training run (engine.run up to the last epoch, not the final
flush) and the ratio to the no-plot run. Target: plotting every iteration costs at most 1%.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from ignite.engine import Events
from torch import nn

from engine import attach_book_metrics, create_trainer
from engine.app.data import digits_loaders
from handlers import LocalVisdom, VisdomPlotter
from handlers.local import free_port

sys.path.insert(0, "tests")


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 64, 10))


def one_run(url: str | None, epochs: int, batch: int) -> float:
    train_iter, _ = digits_loaders(batch)
    model = net()
    trainer = create_trainer(model, nn.CrossEntropyLoss(reduction="none"), torch.optim.SGD(model.parameters(), 0.05))
    attach_book_metrics(trainer)
    plotter = None
    if url is not None:
        plotter = VisdomPlotter(url, env="bench", connect_timeout=1, read_timeout=30, close_timeout=2)
        plotter.attach(trainer, Events.ITERATION_COMPLETED, {"loss": lambda e: e.state.output["loss"] / batch},
                       window="every-iteration")
    marks = {}
    trainer.add_event_handler(Events.STARTED, lambda e: marks.setdefault("t0", time.perf_counter()))
    trainer.add_event_handler(Events.EPOCH_COMPLETED(once=epochs),
                              lambda e: marks.setdefault("t1", time.perf_counter()))
    trainer.run(train_iter, max_epochs=epochs)
    if plotter is not None:
        plotter.close()
    return marks["t1"] - marks["t0"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="CI-sized: fewer repeats and epochs")
    args = p.parse_args(argv)
    repeats, epochs, batch = (3, 2, 32) if args.quick else (7, 6, 32)
    from visdom_util import HungServer

    hung = HungServer()
    with LocalVisdom(env_path="runs/bench-visdom") as server:
        cases = {"no plot": None, "live server": server.url, "refused": f"http://127.0.0.1:{free_port()}",
                 "hung": f"http://127.0.0.1:{hung.port}"}
        one_run(None, 1, batch)  # warm-up
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(repeats):
            for name, url in cases.items():  # alternate A B C D A B C D
                times[name].append(one_run(url, epochs, batch))
    hung.close()
    base = statistics.median(times["no plot"])
    print(f"plot every iteration, {epochs} epochs of {len(digits_loaders(batch)[0])} batches, median of {repeats}")
    print(f"{'case':<14}{'seconds':>10}{'ratio':>10}")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"{name:<14}{m:>10.3f}{m / base:>10.3f}")


if __name__ == "__main__":
    main()
