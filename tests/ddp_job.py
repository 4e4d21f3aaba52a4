"""One run of ``train_ch13`` in each of N gloo processes spawned by ``idist.Parallel`` (or a single plain one).

``python ddp_job.py OUT NPROC EPOCHS [--resume PATH]``: each rank writes OUT/rank<r>.txt with what it printed.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys

import ignite.distributed as idist
import torch
from ignite.engine import Events
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from engine import train_ch13  # noqa: E402
from handlers import VisdomPlotter  # noqa: E402


def run(local_rank: int, args: argparse.Namespace) -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    X = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target)
    # 512 training and 256 test examples, batch 64: every global batch splits evenly over 1, 2 or 4 ranks
    train = DataLoader(TensorDataset(X[:512], y[:512]), 64)
    test = DataLoader(TensorDataset(X[512:768], y[512:768]), 64)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    out = io.StringIO()
    rank = idist.get_rank()
    poison = []
    if args.poison_rank0_at and rank == 0:  # a nan batch on one process only
        poison = [lambda tr, _: tr.add_event_handler(Events.ITERATION_STARTED(once=args.poison_rank0_at), _nan)]
    # nobody listens there: the plotting rank (0 only) leaves a replay log when it closes the plotter
    plotter = VisdomPlotter("http://127.0.0.1:9", "ddp", out_dir=os.path.join(args.out, f"plots{rank}"),
                            connect_timeout=0.2)
    with contextlib.redirect_stdout(out), plotter:
        try:
            train_ch13(net, train, test, nn.CrossEntropyLoss(reduction="none"),
                       torch.optim.SGD(net.parameters(), 0.01), args.epochs, plot=plotter, progress=False,
                       checkpoint_dir=os.path.join(args.out, "ck"),
                       resume=args.resume, handlers=poison, compile=args.compile)
        except FloatingPointError as e:
            print(e)
    with open(os.path.join(args.out, f"rank{rank}.txt"), "w") as f:
        f.write(out.getvalue())
    if rank == 0:
        torch.save(net.state_dict(), os.path.join(args.out, "final.pt"))


def _nan(engine) -> None:
    X, y = engine.state.batch
    engine.state.batch = (torch.full_like(X, float("nan")), y)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("nproc", type=int)
    p.add_argument("epochs", type=int)
    p.add_argument("--resume", default=None)
    p.add_argument("--poison-rank0-at", type=int, default=None)
    p.add_argument("--compile", action="store_true")
    args = p.parse_args()
    if args.nproc == 1:
        run(0, args)
        return
    from handlers.visdom_server import free_port

    # a fresh loopback port per job, as the CLI takes: back-to-back jobs never meet on a fixed one
    with idist.Parallel(backend="gloo", nproc_per_node=args.nproc, master_addr="127.0.0.1",
                        master_port=free_port()) as parallel:
        parallel.run(run, args)


if __name__ == "__main__":
    main()
