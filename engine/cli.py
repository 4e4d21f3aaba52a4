"""``d2l-ignite``: a thin command line over the public API."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser"]


def _positive_int(text: str) -> int:
    value = int(text) if text.lstrip("-").isdigit() else None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (default: a small CNN on the bundled digits, no download)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default="digits", choices=["digits", "fashion-mnist"],
                   help="digits: scikit-learn's bundled 8x8 digits (no download); fashion-mnist: torchvision's, "
                   "read from --data-dir (downloaded there if missing)")
    p.add_argument("--data-dir", default="../data", help="folder holding (or receiving) downloaded data sets")
    p.add_argument("--model", default="cnn", choices=["cnn", "mlp", "lenet"],
                   help="network (lenet: the book's LeNet-5, for 28x28 data)")
    p.add_argument("--epochs", type=_positive_int, default=10, help="number of epochs")
    p.add_argument("--lr", type=_positive_float, default=1e-2, help="Adam learning rate")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="training batch size")
    p.add_argument("--devices", default=None,
                   help="comma-separated devices, e.g. cpu or cuda:0,cuda:1 (default: all GPUs, else cpu)")
    p.add_argument("--seed", type=int, default=0, help="random seed for the split, shuffling and init")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar (default: when stderr is a terminal)")
    p.add_argument("--out", default=None, help="run folder for the PNG, replay log and Visdom envs "
                   "(default: runs/<env>)")
    p.add_argument("--plot", action=argparse.BooleanOptionalAction, default=True, help="live Visdom plots")
    p.add_argument("--visdom", default=None, metavar="URL",
                   help="Visdom server (default: $VISDOM_URL or http://127.0.0.1:8097; a local one is started "
                   "for the run when none answers there)")
    p.add_argument("--keep-serving", action=argparse.BooleanOptionalAction, default=False,
                   help="after training, keep a server started for the run until Ctrl-C")
    _add_training_features(p)
    p.set_defaults(func=_train)


def _add_training_features(p: argparse.ArgumentParser) -> None:
    from engine.schedules import SCHEDULES
    from handlers.stopping import STOP_METRICS

    g = p.add_argument_group("training features")
    g.add_argument("--amp", choices=["bf16", "fp16"], default=None, help="mixed precision (fp16 adds loss scaling)")
    g.add_argument("--accumulate", type=_positive_int, default=1, metavar="K",
                   help="sum the gradients of K batches per update")
    g.add_argument("--clip-grad", type=_positive_float, default=None, metavar="NORM",
                   help="clip the gradient norm to NORM before each update")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--channels-last", action="store_true", help="channels_last memory format (conv nets)")
    g.add_argument("--schedule", choices=SCHEDULES, default="none",
                   help="learning-rate schedule, stepped per update and plotted")
    g.add_argument("--early-stopping", type=_positive_int, default=None, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without improvement")
    g.add_argument("--early-stopping-metric", choices=sorted(STOP_METRICS), default="test_acc")
    g.add_argument("--resume", default=None, metavar="RUN",
                   help="continue from a checkpoint file or run folder (the new run gets its own folder)")


def _add_visdom(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("visdom", help="serve Visdom locally (no CDN; browser files from npm) and print its URL",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    p.add_argument("--host", default="127.0.0.1", help="127.0.0.1 (this machine) or 0.0.0.0 (every interface)")
    p.add_argument("--env-path", default="runs/visdom", help="folder whose saved envs are served and kept")
    p.add_argument("--login", action="store_true",
                   help="require VISDOM_USERNAME / VISDOM_PASSWORD (read from the environment)")
    p.set_defaults(func=_visdom)


def _add_replay(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="send a replay log (points a run could not deliver) to a Visdom server")
    p.add_argument("log", help="the visdom-replay.log a run wrote")
    p.add_argument("--visdom", default=None, metavar="URL", help="server (default: $VISDOM_URL or 127.0.0.1:8097)")
    p.set_defaults(func=_replay)


def _visdom(args: argparse.Namespace) -> int:
    import time

    from handlers.plot import LocalVisdom

    server = LocalVisdom(args.port, args.host, args.env_path, login=args.login).start()
    print(f"Visdom is serving {args.env_path} at {server.url}  (Ctrl-C stops it)", flush=True)
    try:
        while server.process is not None and server.process.poll() is None:
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def _replay(args: argparse.Namespace) -> int:
    import requests

    from handlers.plot import VisdomAddress, read_log, server_url
    from handlers.plot.wire import Wire

    address = VisdomAddress(server_url(args.visdom))
    entries = read_log(args.log)
    wire = Wire(address)
    try:
        for endpoint, msg in entries:
            wire.post(endpoint, msg)
        for env in sorted({msg.get("eid", "main") for _, msg in entries}):
            wire.post("save", {"data": [env], "eid": env})
    except requests.RequestException as e:
        raise ConnectionError(f"cannot reach Visdom at {address} ({type(e).__name__}); start one with "
                              "`d2l-ignite visdom` or pass --visdom URL") from None
    points = sum(len(d.get("x", [])) for _, m in entries for d in m.get("data", []))
    print(f"sent {len(entries)} window(s), {points} points, to {address}")
    return 0


def _train(args: argparse.Namespace) -> int:
    import torch
    from torch import nn

    from engine.jobs import job_loaders, job_net
    from engine.run import plot_for_run
    from engine.schedules import make_schedule
    from handlers.checkpoint import find_checkpoint
    from engine.train import train_ch13

    if args.resume is not None:
        find_checkpoint(args.resume)  # a wrong path fails before a run folder is made
    torch.manual_seed(args.seed)
    devices = None if args.devices is None else [d.strip() for d in args.devices.split(",") if d.strip()]
    net = job_net(args.model, args.dataset)
    train_iter, test_iter = job_loaders(args.dataset, args.batch_size, args.seed, args.data_dir)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    schedule = make_schedule(args.schedule, optimizer, args.epochs * -(-len(train_iter) // args.accumulate))
    with plot_for_run(args.out, args.visdom, args.plot, args.keep_serving) as (plotter, out_dir):
        train_ch13(net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"), optimizer, args.epochs,
                   devices, progress=args.progress, plot=plotter or False, out_dir=out_dir, checkpoint_dir=out_dir,
                   amp=args.amp, accumulation_steps=args.accumulate, clip_grad_norm=args.clip_grad,
                   compile=args.compile, channels_last=args.channels_last, lr_scheduler=schedule,
                   plot_lr=schedule is not None, early_stopping=args.early_stopping,
                   early_stopping_metric=args.early_stopping_metric, resume=args.resume)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="d2l-ignite", description="The book's train_ch13 on Ignite Engines.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_visdom(sub)
    _add_replay(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, RuntimeError) as e:
        print(f"d2l-ignite {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"d2l-ignite {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
