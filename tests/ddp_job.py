"""One run of ``train_ch13`` in each of N gloo processes spawned by ``idist.Parallel``, in each process
``torchrun`` started (``NPROC`` is then ignored), or in a single plain one.

``python ddp_job.py OUT NPROC EPOCHS [options]``: each rank writes OUT/rank<r>.txt with what it printed
and OUT/rank<r>.json with the example ids it trained on per epoch and the epochs it ran.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys

import ignite.distributed as idist
import torch
from ignite.engine import Events
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from engine import evaluate_accuracy_gpu, train_ch13  # noqa: E402
from handlers import VisdomPlotter  # noqa: E402


def data(args: argparse.Namespace) -> tuple[DataLoader, DataLoader]:
    from sklearn.datasets import load_digits

    d = load_digits()
    X = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    X[:, 0, 0, 0] = torch.arange(len(X)) * 1e-4  # each example's id in a pixel that is 0 in every digit
    y = torch.tensor(d.target)
    n, m = args.train, args.test
    train = DataLoader(TensorDataset(X[:n], y[:n]), args.batch, shuffle=args.shuffle, num_workers=args.workers)
    test = DataLoader(TensorDataset(X[n:n + m], y[n:n + m]), args.batch)
    return train, test


def run(local_rank: int, args: argparse.Namespace) -> None:
    train, test = data(args)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    out = io.StringIO()
    rank = idist.get_rank()
    seen: dict[int, list[int]] = {}
    handlers = [lambda tr, _: tr.add_event_handler(Events.ITERATION_STARTED, _record, seen)]
    if args.poison_rank0_at and rank == 0:  # a nan batch on one process only
        handlers.append(lambda tr, _: tr.add_event_handler(Events.ITERATION_STARTED(once=args.poison_rank0_at), _nan))
    if args.fail_rank1_at and rank == 1:
        handlers.append(lambda tr, _: tr.add_event_handler(Events.ITERATION_COMPLETED(once=args.fail_rank1_at), _fail))
    # nobody listens there: the plotting rank (0 only) keeps its record when it closes the plotter
    plotter = VisdomPlotter("http://127.0.0.1:9", "ddp", out_dir=os.path.join(args.out, f"plots{rank}"),
                            connect_timeout=0.2)
    history = None
    with contextlib.redirect_stdout(out), plotter:
        try:
            loss = nn.CrossEntropyLoss() if args.mean_loss else nn.CrossEntropyLoss(reduction="none")
            history = train_ch13(net, train, test, loss,
                                 torch.optim.SGD(net.parameters(), args.lr), args.epochs, plot=plotter, progress=False,
                                 checkpoint_dir=os.path.join(args.out, "ck"), resume=args.resume, handlers=handlers,
                                 compile=args.compile, early_stopping=args.early_stopping)
        except FloatingPointError as e:
            print(e)
    with open(os.path.join(args.out, f"rank{rank}.txt"), "w") as f:
        f.write(out.getvalue())
    with open(os.path.join(args.out, f"rank{rank}.json"), "w") as f:
        json.dump({"seen": seen, "epochs": len(history.test_acc) if history else None,
                   "test_acc": history.test_acc if history else None}, f)
    if rank == 0:
        torch.save(net.state_dict(), os.path.join(args.out, "final.pt"))
    if args.local_eval and rank == 0:  # the book's helper on one process: its own data, no other process waits
        with open(os.path.join(args.out, "local_eval.json"), "w") as f:
            json.dump(evaluate_accuracy_gpu(net, test), f)


def _record(engine, seen: dict[int, list[int]]) -> None:
    ids = (engine.state.batch[0][:, 0, 0, 0] * 1e4).round().long().tolist()
    seen.setdefault(engine.state.epoch, []).extend(ids)


def _nan(engine) -> None:
    X, y = engine.state.batch
    engine.state.batch = (torch.full_like(X, float("nan")), y)


def _fail(engine) -> None:
    raise ValueError(f"a handler failed on rank 1 at iteration {engine.state.iteration}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("nproc", type=int)
    p.add_argument("epochs", type=int)
    p.add_argument("--resume", default=None)
    p.add_argument("--poison-rank0-at", type=int, default=None)
    p.add_argument("--fail-rank1-at", type=int, default=None)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--shuffle", action="store_true")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--train", type=int, default=512)
    p.add_argument("--test", type=int, default=256)
    p.add_argument("--batch", type=int, default=64)  # 512 / 64: every global batch splits evenly over 1, 2 or 4
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--early-stopping", type=int, default=None)
    p.add_argument("--local-eval", action="store_true")
    p.add_argument("--mean-loss", action="store_true")  # a mean-reduced loss, as nn.CrossEntropyLoss() gives
    args = p.parse_args()
    if "LOCAL_RANK" in os.environ:  # started by torchrun: join its process group
        with idist.Parallel(backend="gloo") as parallel:
            parallel.run(run, args)
        return
    if args.nproc == 1:
        run(0, args)
        return
    from handlers.local import free_port

    # a fresh loopback port per job, as the CLI takes: back-to-back jobs never meet on a fixed one
    with idist.Parallel(backend="gloo", nproc_per_node=args.nproc, master_addr="127.0.0.1",
                        master_port=free_port()) as parallel:
        parallel.run(run, args)


if __name__ == "__main__":
    main()
