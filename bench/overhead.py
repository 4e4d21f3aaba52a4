"""The engine's own costs, measured apart from the model: per iteration and per call.

- Per-iteration cost: the same trivial step run by every loop a user could write (``bench/per_iteration.py``:
  hand loops, a bare Engine, ours with and without its progress display, Ignite's factory with its metrics
  with and without its bar), interleaved; microseconds and aten ops per iteration.
- A call's fixed cost: ``train_ch13`` from the call to its first step plus from its last step to its
  return (the tiny test pass included), with plots off and with plots to a live local server; the
  one-time start of that server is shown apart.
- A whole call: ``train_ch13`` against a hand loop doing the same math (LeNet, batch 256, 24 batches,
  2 epochs, interleaved): the ratio of wall times.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import tempfile
import threading
import time

import torch
from ignite.engine import Events
from torch import nn

from bench import per_iteration
from engine import train_ch13
from handlers import LocalVisdom, VisdomPlotter

LOSS = nn.CrossEntropyLoss(reduction="none")
DEV = torch.device("cpu")  # set by --device


def batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(2, 4, generator=g), torch.randint(0, 3, (2,), generator=g)) for _ in range(n)]


def fixed_cost(plot: VisdomPlotter | bool, repeats: int) -> float:
    """ms from the call to the first step plus from the last step to the return."""
    data, costs = batches(20), []
    for _ in range(repeats):
        _png_drawn()  # the last call's PNG thread is done: each call is timed alone, as a notebook cell runs it
        net = nn.Linear(4, 3)
        marks: dict[str, float] = {}
        timing = lambda t, _: (  # noqa: E731
            t.add_event_handler(Events.ITERATION_STARTED(once=1),
                                lambda _: marks.setdefault("first", time.perf_counter())),
            t.add_event_handler(Events.ITERATION_COMPLETED(once=20),
                                lambda _: marks.setdefault("last", time.perf_counter())))
        t0 = time.perf_counter()
        train_ch13(net, data, data[:1], LOSS, torch.optim.SGD(net.parameters(), 0.01), 1, [DEV], plot=plot,
                   verbose=False, progress=False, handlers=[timing])
        t1 = time.perf_counter()
        costs.append((marks["first"] - t0 + t1 - marks["last"]) * 1e3)
    return statistics.median(costs)


def default_fixed_cost(url: str, folder: str, repeats: int) -> float:
    """``fixed_cost`` of ``plot=True``: a plotter of the call's own, on the server at ``$VISDOM_URL``, its
    run folder under ``folder``; the PNGs still being drawn when it returns are waited for after."""
    saved, cwd = {k: os.environ.get(k) for k in ("VISDOM_URL", "D2L_IGNITE_PLOT")}, os.getcwd()
    os.environ.update(VISDOM_URL=url, D2L_IGNITE_PLOT="1")
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the "Live plots:" lines
            return fixed_cost(True, repeats)
    finally:
        os.chdir(cwd)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _png_drawn()


def _png_drawn() -> None:
    """Wait for the PNGs still being drawn (``plot=True`` draws its PNG on a thread after the call returns)."""
    for thread in threading.enumerate():
        if thread.name == "curves-png":
            thread.join()


def whole_call(repeats: int) -> tuple[float, ...]:
    """LeNet, batch 256, 24 batches, 2 epochs: median hand and ours wall s, then the pair ratios' median, min, max."""
    from bench import variants
    from bench.workloads import data, model

    train, test = data("lenet", "device", 256, 24, DEV)

    def hand() -> float:
        net, t0 = model("lenet"), time.perf_counter()
        variants.hand(net, train, test, DEV, 2)
        return time.perf_counter() - t0

    def ours() -> float:
        net, t0 = model("lenet"), time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            train_ch13(net, train, test, LOSS, torch.optim.Adam(net.parameters(), 1e-3), 2, [DEV], plot=False)
        return time.perf_counter() - t0

    hand(), ours()  # warm-up
    hands, ourss = [], []
    for i in range(repeats):  # alternate which goes first
        if i % 2:
            h = hand()
            o = ours()
        else:
            o = ours()
            h = hand()
        hands.append(h)
        ourss.append(o)
    ratios = [h / o for h, o in zip(hands, ourss)]
    return statistics.median(hands), statistics.median(ourss), statistics.median(ratios), min(ratios), max(ratios)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="CI-sized: fewer iterations and repeats")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the steps run")
    args = p.parse_args(argv)
    global DEV
    DEV = torch.device(args.device)
    print(f"device {DEV}" + (f" ({torch.cuda.get_device_name()})" if DEV.type == "cuda" else ""))
    iterations, rounds, repeats = (200, 5, 3) if args.quick else (400, 31, 7)
    costs = per_iteration.measure(iterations, rounds, DEV)
    print("\n".join(per_iteration.report(costs)))
    print(f"per-iteration cost over a bare Ignite Engine, trivial step: ours {costs['ours'][1]:+.1f} us "
          f"(target <= 5 us), ours with its progress display {costs['ours+bar'][1]:+.1f} us (target <= 15 us); "
          f"Ignite's factory with Accuracy and Loss {costs['ignite'][1]:+.1f} us, with its ProgressBar "
          f"{costs['ignite+bar'][1]:+.1f} us (median iteration, paired within each of {rounds} interleaved rounds of "
          f"{iterations} iterations; CPU time on the CPU)")
    print(f"aten ops per iteration: ours {costs['ours'][2]:.1f}, the hand loop with the book's figures "
          f"{costs['hand+book'][2]:.1f} (target: ours <= it), the bare hand loop {costs['hand'][2]:.1f}; Python calls "
          f"per iteration: ours {costs['ours'][3]:.0f}, with the bar {costs['ours+bar'][3]:.0f}, a bare Engine "
          f"{costs['bare Engine'][3]:.0f}")
    print(f"fixed cost of a call, plots off: {fixed_cost(False, repeats):.1f} ms (target <= 30 ms)")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, LocalVisdom(env_path=tmp) as server:
        start = (time.perf_counter() - t0) * 1e3
        with VisdomPlotter(server.url, env="bench-overhead", out_dir=tmp) as plotter:
            live = fixed_cost(plotter, repeats)
        default = default_fixed_cost(server.url, tmp, repeats)
    print(f"fixed cost of a call, plots to a live local server: {live:.1f} ms with your VisdomPlotter, "
          f"{default:.1f} ms with plot=True (its own env, closed at the end) (target <= 30 ms); the server's "
          f"one-time start: {start:.0f} ms")
    pairs = 3 if args.quick else 15
    hand_s, ours_s, ratio, low, high = whole_call(pairs)
    print(f"whole train_ch13 call, LeNet batch 256, 24 batches, 2 epochs, plots off: hand loop {hand_s:.3f} s, "
          f"ours {ours_s:.3f} s; ours/hand speed {ratio:.3f} (hand wall / ours wall, median of {pairs} pairs, "
          f"range {low:.3f}-{high:.3f}; target >= 0.99)")


if __name__ == "__main__":
    main()
