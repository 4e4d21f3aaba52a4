"""Stop a small run anywhere, resume it, and say how it differs from the run never stopped (issue 35's harness).

A ``Case`` is a small ``train_ch13`` run (dropout, a shuffled loader, 2 epochs of 7 batches) with the options of
one matrix row. ``stop_points(case)`` lists every place a stop can come: before each iteration's step, during
each epoch's test pass, and during each epoch's end (after the History row, before the checkpoints). ``run``
trains once, stopped at one point by a real signal (SIGINT or SIGTERM to this process) or not at all;
``compare`` reads two finished runs (their models, optimizers, Histories, ``curves.npz`` and checkpoint
folders) and returns every difference found.

``python tests/resume_harness.py OUT CASE [STOP]`` runs one case in 2 gloo processes (``idist.Parallel``): the
stop, then the resume, or (no STOP) the run never stopped; each writes ``OUT/result.pt`` on rank 0.
"""
from __future__ import annotations

import dataclasses
import math
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.handlers import PiecewiseLinear
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from engine import train_ch13  # noqa: E402
from handlers.plot.record import read_points  # noqa: E402

CE = nn.CrossEntropyLoss(reduction="none")
TOLERANCE = 1e-6  # relative, for the figures: a stop adds one fold of the float32 running sums (another sum order)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    accumulation_steps: int = 1
    schedule: str | None = None  # "update" (torch, per update), "epoch" (torch, per epoch), "ignite" (per update)
    ema: float | None = None
    test_loss: bool = False
    early_stopping: int | None = None
    unsized: bool = False
    epochs: int = 2
    n_train: int = 168  # 7 batches of 24: with accumulation 3, groups of 3, 3 and a short 1
    batch: int = 24


MATRIX = [
    Case("plain"),
    Case("accumulation 3, per-update schedule", accumulation_steps=3, schedule="update"),
    Case("per-epoch schedule, EMA, test loss", schedule="epoch", ema=0.5, test_loss=True),
    Case("Ignite schedule, accumulation 3, test loss", accumulation_steps=3, schedule="ignite", test_loss=True),
    Case("early stopping", early_stopping=1, epochs=4),
    Case("unsized iterable, accumulation 3", unsized=True, accumulation_steps=3),
]


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0, torch.tensor(d.target)


class Unsized:
    """A loader with no ``len`` (a stream): its batches come from a shuffling DataLoader drawing from torch's
    own random state, as a user's generator would."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader

    def __iter__(self) -> Iterator[Any]:
        yield from self.loader


def build(case: Case, batch: int | None = None) -> tuple[nn.Module, Any, DataLoader, torch.optim.Optimizer, Any]:
    X, y = digits()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10))
    batch = batch or case.batch
    train_set = TensorDataset(X[:case.n_train], y[:case.n_train])
    if case.unsized:
        train: Any = Unsized(DataLoader(train_set, batch, shuffle=True))
    else:
        train = DataLoader(train_set, batch, shuffle=True, generator=torch.Generator().manual_seed(1))
    test = DataLoader(TensorDataset(X[1000:1064], y[1000:1064]), 32)
    optimizer = torch.optim.SGD(net.parameters(), 0.005, momentum=0.9)
    per_epoch = -(-(-(-case.n_train // batch)) // case.accumulation_steps)
    return net, train, test, optimizer, _schedule(case, optimizer, per_epoch)


def _schedule(case: Case, optimizer: torch.optim.Optimizer, per_epoch: int) -> Any:
    if case.schedule == "update":
        return torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, 0.0, total_iters=case.epochs * per_epoch)
    if case.schedule == "epoch":
        return torch.optim.lr_scheduler.StepLR(optimizer, 1, 0.5)
    if case.schedule == "ignite":
        return PiecewiseLinear(optimizer, "lr", [(0, 0.005), (case.epochs * per_epoch, 0.0)])
    return None


@dataclasses.dataclass(frozen=True)
class Stop:
    """Where a stop comes: ``("step", k)`` before iteration k's step, ``("test", e)`` in epoch e's test pass,
    ``("end", e)`` in epoch e's end; by ``signum``."""

    where: str
    at: int
    signum: int = signal.SIGINT

    def __str__(self) -> str:
        return f"{signal.Signals(self.signum).name} {self.where} {self.at}"

    def handler(self) -> Callable[[Engine, Engine], None]:
        def send(_: Engine) -> None:
            os.kill(os.getpid(), self.signum)

        def attach(trainer: Engine, evaluator: Engine) -> None:
            if self.where == "step":
                trainer.add_event_handler(Events.ITERATION_STARTED(once=self.at), send)
            elif self.where == "end":
                trainer.add_event_handler(Events.EPOCH_COMPLETED(once=self.at), send)
            else:  # the evaluator runs once an epoch (its count restarts each run): its first batch in epoch `at`
                evaluator.add_event_handler(
                    Events.ITERATION_STARTED, lambda e: send(e) if e.state.iteration == 1
                    and trainer.state.epoch == self.at and trainer.state.iteration % 7 == 0 else None)
        return attach


def stop_points(case: Case) -> list[Stop]:
    """Every iteration of the run (the signal alternating SIGINT and SIGTERM), each test pass, each epoch end."""
    n = -(-case.n_train // case.batch)
    steps = [Stop("step", k, signal.SIGINT if k % 2 else signal.SIGTERM) for k in range(1, case.epochs * n + 1)]
    return steps + [Stop(w, e, signal.SIGTERM if w == "test" else signal.SIGINT) for w in ("test", "end")
                    for e in range(1, case.epochs + 1)]


@dataclasses.dataclass
class Result:
    net: nn.Module
    optimizer: torch.optim.Optimizer
    history: Any
    folder: str
    out: str
    stopped: BaseException | None = None


def run(case: Case, folder: str, out: str, stop: Stop | None = None, resume: str | None = None,
        batch: int | None = None) -> Result:
    """One run of ``case`` with checkpoints in ``folder`` and its record in ``out``; stopped at ``stop``."""
    net, train, test, optimizer, schedule = build(case, batch)
    options: dict[str, Any] = {"accumulation_steps": case.accumulation_steps, "test_loss": case.test_loss}
    if schedule is not None:
        options.update(lr_scheduler=schedule, scheduler_every="epoch" if case.schedule == "epoch" else "iteration")
    if case.ema is not None:
        options["ema"] = case.ema
    if case.early_stopping is not None:
        options["early_stopping"] = case.early_stopping
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        history = train_ch13(net, train, test, CE, optimizer, case.epochs, ["cpu"], plot=False, out_dir=out,
                             verbose=False, progress=False, checkpoint_dir=folder, resume=resume,
                             handlers=[stop.handler()] if stop else (), **options)
        return Result(net, optimizer, history, folder, out)
    except KeyboardInterrupt as e:  # Stopped: the run said where it saved
        return Result(net, optimizer, None, folder, out, stopped=e)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def stop_and_resume(case: Case, stop: Stop, folder: str, batch: int | None = None) -> Result:
    """Run ``case`` stopped at ``stop``, then resumed from its folder (with ``batch``: another batch size) to the
    end; a stop that comes when the run ends anyway (its last epoch's end) leaves nothing to resume."""
    first = run(case, folder, folder + "-record-stopped", stop)
    if first.stopped is None:
        return first
    return run(case, folder, folder + "-record", resume=folder, batch=batch)


def compare(a: Result, b: Result, exact: bool = True) -> list[str]:
    """Every difference between two finished runs: weights and optimizer state (exact), History figures and
    plot points (``TOLERANCE``), the checkpoint files each folder ends with, and the best file's weights."""
    diffs = []
    for (name, p), q in zip(a.net.state_dict().items(), b.net.state_dict().values()):
        if not torch.equal(p, q):
            diffs.append(f"weights {name}: max difference {float((p - q).abs().max()):.3g}")
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    for i, (ga, gb) in enumerate(zip(sa["param_groups"], sb["param_groups"])):
        if not _close(ga["lr"], gb["lr"]):
            diffs.append(f"optimizer group {i} lr {ga['lr']} vs {gb['lr']}")
    for k in sa["state"]:
        for key, v in sa["state"][k].items():
            if isinstance(v, torch.Tensor) and not torch.equal(v, sb["state"][k][key]):
                diffs.append(f"optimizer state {k}.{key} differs")
    diffs += _history(a.history, b.history)
    diffs += _points(os.path.join(a.out, "curves.npz"), os.path.join(b.out, "curves.npz"))
    diffs += _files(a.folder, b.folder)
    return diffs


def _close(x: float, y: float) -> bool:
    return (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=TOLERANCE, abs_tol=1e-12)


def _history(a: Any, b: Any) -> list[str]:
    diffs = []
    for name in ("train_loss", "train_acc", "test_acc", "test_loss", "test_acc_ema"):
        x, y = getattr(a, name), getattr(b, name)
        if len(x) != len(y) or not all(_close(u, v) for u, v in zip(x, y)):
            diffs.append(f"History.{name} {x} vs {y}")
    if len(b.examples_per_sec) != len(a.examples_per_sec):
        diffs.append(f"History.examples_per_sec has {len(b.examples_per_sec)} entries, not {len(a.examples_per_sec)}")
    return diffs


def _points(a: str, b: str) -> list[str]:
    diffs = []
    left, right = read_points(a), read_points(b)
    if [w for w, _, _ in left] != [w for w, _, _ in right]:
        return [f"curves.npz windows {[w for w, _, _ in left]} vs {[w for w, _, _ in right]}"]
    for (win, _, ta), (_, _, tb) in zip(left, right):
        for trace, (xs, ys) in ta.items():
            if trace not in tb:
                diffs.append(f"curves.npz {win}/{trace} missing")
                continue
            xs2, ys2 = tb[trace]
            if len(xs) != len(xs2) or not np.array_equal(xs, xs2) or not np.allclose(ys, ys2, rtol=TOLERANCE,
                                                                                       atol=1e-12, equal_nan=True):
                diffs.append(f"curves.npz {win}/{trace}: {len(xs)} points vs {len(xs2)}")
    return diffs


def _files(a: str, b: str) -> list[str]:
    """The files each folder ends with (a stop's own ``interrupted_`` file aside), and the best file's weights."""
    names = [sorted(f for f in os.listdir(d) if not f.startswith(("interrupted_", "."))) for d in (a, b)]
    if names[0] != names[1]:
        return [f"checkpoint files {names[0]} vs {names[1]}"]
    diffs = []
    for f in names[0]:
        wa = torch.load(os.path.join(a, f), weights_only=True)["model"]
        wb = torch.load(os.path.join(b, f), weights_only=True)["model"]
        if any(not torch.equal(wa[k], wb[k]) for k in wa):
            diffs.append(f"{f}: its weights differ")
    return diffs


def _distributed(local_rank: int, out: str, case_name: str, stop: str | None) -> None:
    """Rank ``local_rank`` of a 2-process run: the run never stopped, or stopped at ``stop`` then resumed."""
    import ignite.distributed as idist

    case = next(c for c in MATRIX if c.name == case_name)
    folder, record = os.path.join(out, "ck"), os.path.join(out, "record")
    if stop is None:
        result = run(case, folder, record)
    else:
        where, at = stop.split(":")
        first = run(case, folder, os.path.join(out, "record-stopped"), Stop(where, int(at), signal.SIGTERM)
                    if idist.get_rank() == 0 else None)
        assert first.stopped is not None, "the stop did not stop the run"
        result = run(case, folder, record, resume=folder)
    if idist.get_rank() == 0:
        torch.save({"weights": result.net.state_dict(), "optimizer": result.optimizer.state_dict(),
                    "history": result.history.state_dict()}, os.path.join(out, "result.pt"))


if __name__ == "__main__":
    import ignite.distributed as idist

    out_dir, name = sys.argv[1], sys.argv[2]
    with idist.Parallel(backend="gloo", nproc_per_node=2) as parallel:
        parallel.run(_distributed, out_dir, name, sys.argv[3] if len(sys.argv) > 3 else None)
