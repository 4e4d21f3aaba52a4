"""A small checkpointed run in its own process, so tests can SIGKILL it.

``python resume_job.py DIR EPOCHS [--kill-at ITERATION] [--kill-in-save EPOCH] [--resume PATH]``
writes ``DIR/final.pt`` (weights and history) when it finishes.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys

import torch
from ignite.engine import Events
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from engine import train_ch13  # noqa: E402


def net_and_data() -> tuple[nn.Module, DataLoader, DataLoader]:
    """Dropout and a shuffling loader: a resume only matches if every random stream is restored."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, 10))
    g = torch.Generator().manual_seed(1)
    train = DataLoader(TensorDataset(X[:480], y[:480]), 32, shuffle=True, generator=g)
    return net, train, DataLoader(TensorDataset(X[480:720], y[480:720]), 120)


def kill_at(iteration: int):
    return lambda trainer, _: trainer.add_event_handler(
        Events.ITERATION_COMPLETED(once=iteration), lambda _: os.kill(os.getpid(), signal.SIGKILL))


def kill_inside_save(epoch: int, epoch_length: int) -> None:
    """SIGKILL while the checkpoint of ``epoch`` is being written, after part of it reached the disk."""
    real = torch.save

    def save(obj, f, *a, **kw):
        if isinstance(obj, dict) and obj.get("trainer", {}).get("iteration") == epoch * epoch_length:
            real({"partial": torch.zeros(10_000)}, f, *a, **kw)
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real(obj, f, *a, **kw)

    torch.save = save


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("epochs", type=int)
    p.add_argument("--kill-at", type=int, default=None)
    p.add_argument("--kill-in-save", type=int, default=None)
    p.add_argument("--resume", default=None)
    args = p.parse_args()
    net, train, test = net_and_data()
    if args.kill_in_save:
        kill_inside_save(args.kill_in_save, len(train))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    history = train_ch13(net, train, test, nn.CrossEntropyLoss(reduction="none"), opt, args.epochs, ["cpu"],
                         plot=False, progress=False, lr_scheduler=sched, scheduler_every="epoch",
                         checkpoint_dir=args.out, resume=args.resume,
                         handlers=[kill_at(args.kill_at)] if args.kill_at else ())
    torch.save({"weights": net.state_dict(), "history": history.state_dict()}, os.path.join(args.out, "final.pt"))


if __name__ == "__main__":
    main()
