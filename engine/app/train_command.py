"""``d2l-ignite train``: the main job's options, and its launch on one process or several.

Several processes come from ``torchrun`` (detected from its environment) or from
``--nproc-per-node N``, which hands the spawning to ``ignite.distributed.Parallel``.
"""
from __future__ import annotations

import argparse

from engine.app.flags import FEATURES, RUN, STEP, add_options, positive_int, train_kwargs

__all__ = ["add_train"]


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (default: a small CNN on the bundled digits, no download)",
                       description="Train with the book's train_ch13: live Visdom plots, a run folder with the PNG "
                       "and checkpoints, the book's closing lines.")
    p.add_argument("--dataset", default="digits", choices=["digits", "fashion-mnist"],
                   help="digits: scikit-learn's bundled 8x8 digits (no download); fashion-mnist: torchvision's, "
                   "read from --data-dir (downloaded there if missing) (default: digits)")
    p.add_argument("--model", default="cnn", choices=["cnn", "mlp", "lenet"],
                   help="network (lenet: the book's LeNet-5, for 28x28 data) (default: cnn)")
    p.add_argument("--seed", type=int, default=0, help="random seed for the split, shuffling and init (default: 0)")
    add_options(p, RUN)
    p.add_argument("--keep-serving", action=argparse.BooleanOptionalAction, default=False,
                   help="after training, keep a server started for the run until Ctrl-C")
    add_options(p.add_argument_group("training features"), STEP + FEATURES)
    _add_distributed(p)
    p.set_defaults(func=train_command)


def _add_distributed(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("several processes (DDP via ignite.distributed; or launch this command with torchrun)")
    g.add_argument("--nproc-per-node", type=positive_int, default=None, metavar="N",
                   help="spawn N processes on this machine (one per GPU; any number on CPU)")
    g.add_argument("--nnodes", type=positive_int, default=None, help="machines taking part")
    g.add_argument("--node-rank", type=int, default=None, help="this machine's index, 0..nnodes-1")
    g.add_argument("--master-addr", default=None, help="address of the machine with node rank 0")
    g.add_argument("--master-port", type=positive_int, default=None, help="free port on the master machine")
    g.add_argument("--backend", choices=["nccl", "gloo"], default=None,
                   help="default: nccl with GPUs, gloo on CPU")


def train_command(args: argparse.Namespace) -> int:
    from engine.app.launch import launch, under_torchrun
    from handlers.checkpoint import find_checkpoint

    if args.resume is not None:
        find_checkpoint(args.resume)  # a wrong path fails before a run folder is made
    if (args.nproc_per_node is not None or args.nnodes is not None or under_torchrun()) and args.devices is not None:
        raise ValueError("--devices chooses GPUs for one process; with several, each process takes its own GPU")
    launch(_train, args, nproc_per_node=args.nproc_per_node, nnodes=args.nnodes, node_rank=args.node_rank,
           master_addr=args.master_addr, master_port=args.master_port, backend=args.backend)
    return 0


def _train(local_rank: int, args: argparse.Namespace) -> int:
    """One process's run; rank 0 owns the run folder and the plots, the others learn the folder's name."""
    import torch
    from torch import nn

    from engine import train_ch13, updates_per_epoch
    from engine.app.data import job_loaders, job_net
    from engine.app.run_dir import run_for_rank
    from engine.app.schedules import make_schedule

    torch.manual_seed(args.seed)
    net = job_net(args.model, args.dataset)
    train_iter, test_iter = job_loaders(args.dataset, args.batch_size, args.seed, args.data_dir)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    schedule = make_schedule(args.schedule, optimizer, args.epochs * updates_per_epoch(train_iter, args.accumulate))
    with run_for_rank(args.out, args.visdom, args.plot, args.resume, args.keep_serving, args.name) as (
            plotter, out_dir, resume):
        options = train_kwargs(args, RUN + STEP + FEATURES) | {"resume": resume}
        train_ch13(net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"), optimizer, args.epochs,
                   args.devices, plot=plotter or False, out_dir=out_dir or None, checkpoint_dir=out_dir,
                   lr_scheduler=schedule, plot_lr=schedule is not None, **options)
    return 0
