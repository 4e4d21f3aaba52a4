"""``d2l-ignite train``: the main job's options, and its launch on one process or several.

Several processes come from ``torchrun`` (detected from its environment) or from
``--nproc-per-node N``, which hands the spawning to ``ignite.distributed.Parallel``.
"""
from __future__ import annotations

import argparse
import contextlib
import os

__all__ = ["add_train", "positive_int", "positive_float", "device_list"]


def positive_int(text: str) -> int:
    value = int(text) if text.lstrip("-").isdigit() else None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def device_list(text: str) -> list[str]:
    """``cuda:0,cuda:1`` -> ``["cuda:0", "cuda:1"]``; the names are checked by ``resolve_devices``."""
    return [d.strip() for d in text.split(",") if d.strip()]


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (default: a small CNN on the bundled digits, no download)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default="digits", choices=["digits", "fashion-mnist"],
                   help="digits: scikit-learn's bundled 8x8 digits (no download); fashion-mnist: torchvision's, "
                   "read from --data-dir (downloaded there if missing)")
    p.add_argument("--data-dir", default="../data", help="folder holding (or receiving) downloaded data sets")
    p.add_argument("--model", default="cnn", choices=["cnn", "mlp", "lenet"],
                   help="network (lenet: the book's LeNet-5, for 28x28 data)")
    p.add_argument("--epochs", type=positive_int, default=10, help="number of epochs")
    p.add_argument("--lr", type=positive_float, default=1e-2, help="Adam learning rate")
    p.add_argument("--batch-size", type=positive_int, default=64, help="training batch size (global, over all processes)")
    p.add_argument("--devices", type=device_list, default=None,
                   help="comma-separated devices, e.g. cpu or cuda:0,cuda:1 (default: all GPUs, else cpu)")
    p.add_argument("--seed", type=int, default=0, help="random seed for the split, shuffling and init")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar (default: when stderr is a terminal)")
    p.add_argument("--out", default=None, help="run folder for the PNG, checkpoints, replay log and Visdom envs "
                   "(default: runs/<env>)")
    p.add_argument("--plot", action=argparse.BooleanOptionalAction, default=True, help="live Visdom plots")
    p.add_argument("--visdom", default=None, metavar="URL",
                   help="Visdom server (default: $VISDOM_URL or http://127.0.0.1:8097; a local one is started "
                   "for the run when none answers there)")
    p.add_argument("--keep-serving", action=argparse.BooleanOptionalAction, default=False,
                   help="after training, keep a server started for the run until Ctrl-C")
    _add_features(p)
    _add_distributed(p)
    p.set_defaults(func=train_command)


def _add_features(p: argparse.ArgumentParser) -> None:
    from engine.app.schedules import SCHEDULES
    from handlers.stopping import STOP_METRICS

    g = p.add_argument_group("training features")
    g.add_argument("--amp", choices=["bf16", "fp16"], default=None, help="mixed precision (fp16 adds loss scaling)")
    g.add_argument("--accumulate", type=positive_int, default=1, metavar="K",
                   help="sum the gradients of K batches per update")
    g.add_argument("--clip-grad", type=positive_float, default=None, metavar="NORM",
                   help="clip the gradient norm to NORM before each update")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--channels-last", action="store_true", help="channels_last memory format (conv nets)")
    g.add_argument("--fast", action="store_true",
                   help="the fast path: on a GPU bf16, channels_last, fused optimizer, CUDA graphs; on CPU compile")
    g.add_argument("--schedule", choices=SCHEDULES, default="none",
                   help="learning-rate schedule, stepped per update and plotted")
    g.add_argument("--early-stopping", type=positive_int, default=None, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without improvement")
    g.add_argument("--early-stopping-metric", choices=sorted(STOP_METRICS), default="test_acc")
    g.add_argument("--resume", default=None, metavar="RUN",
                   help="continue from a checkpoint file or run folder (the new run gets its own folder)")


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


def _under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or ("LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ)


def train_command(args: argparse.Namespace) -> int:
    import ignite.distributed as idist
    import torch

    from handlers.checkpoint import find_checkpoint

    if args.resume is not None:
        find_checkpoint(args.resume)  # a wrong path fails before a run folder is made
    several = args.nproc_per_node is not None or args.nnodes is not None
    if not several and not _under_torchrun():
        return _train(0, args)
    if several and _under_torchrun():
        raise ValueError("--nproc-per-node/--nnodes spawn processes themselves; under torchrun leave them out")
    if args.devices is not None:
        raise ValueError("--devices chooses GPUs for one process; with several, each process takes its own GPU")
    backend = args.backend or ("nccl" if torch.cuda.is_available() else "gloo")
    spawn = {k: v for k, v in (("nproc_per_node", args.nproc_per_node), ("nnodes", args.nnodes),
                               ("node_rank", args.node_rank), ("master_addr", args.master_addr),
                               ("master_port", args.master_port)) if v is not None}
    with idist.Parallel(backend=backend, **spawn) as parallel:
        parallel.run(_train, args)
    return 0


def _train(local_rank: int, args: argparse.Namespace) -> int:
    """One process's run; rank 0 owns the run folder and the plots, the others learn the folder's name."""
    import ignite.distributed as idist
    import torch
    from torch import nn

    from engine.app.data import job_loaders, job_net
    from engine.app.run_dir import plot_for_run
    from engine.app.schedules import make_schedule
    from engine.train import train_ch13

    torch.manual_seed(args.seed)
    net = job_net(args.model, args.dataset)
    train_iter, test_iter = job_loaders(args.dataset, args.batch_size, args.seed, args.data_dir)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    updates = -(-len(train_iter) // idist.get_world_size() // args.accumulate)
    schedule = make_schedule(args.schedule, optimizer, args.epochs * max(updates, 1))
    main = idist.get_rank() == 0
    run = plot_for_run(args.out, args.visdom, args.plot, args.keep_serving) if main else contextlib.nullcontext((None, ""))
    with run as (plotter, out_dir):
        if idist.get_world_size() > 1:
            out_dir = idist.broadcast(out_dir, src=0, safe_mode=True)
        train_ch13(net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"), optimizer, args.epochs,
                   args.devices, progress=args.progress, plot=plotter or False, out_dir=out_dir, checkpoint_dir=out_dir,
                   amp=args.amp, accumulation_steps=args.accumulate, clip_grad_norm=args.clip_grad,
                   compile=args.compile, channels_last=args.channels_last, fast=args.fast, lr_scheduler=schedule,
                   plot_lr=schedule is not None, early_stopping=args.early_stopping,
                   early_stopping_metric=args.early_stopping_metric, resume=args.resume)
    return 0
