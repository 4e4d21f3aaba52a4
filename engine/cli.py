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
    p.add_argument("--model", default="cnn", choices=["cnn", "mlp"], help="network for the digits data")
    p.add_argument("--epochs", type=_positive_int, default=10, help="number of epochs")
    p.add_argument("--lr", type=_positive_float, default=1e-2, help="Adam learning rate")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="training batch size")
    p.add_argument("--devices", default=None,
                   help="comma-separated devices, e.g. cpu or cuda:0,cuda:1 (default: all GPUs, else cpu)")
    p.add_argument("--seed", type=int, default=0, help="random seed for the split, shuffling and init")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar (default: when stderr is a terminal)")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    import torch
    from torch import nn

    from engine.jobs import digits_loaders, digits_net
    from engine.train import train_ch13

    torch.manual_seed(args.seed)
    devices = None if args.devices is None else [d.strip() for d in args.devices.split(",") if d.strip()]
    train_iter, test_iter = digits_loaders(args.batch_size, seed=args.seed)
    net = digits_net(args.model)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    train_ch13(net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"), optimizer, args.epochs, devices,
               progress=args.progress)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="d2l-ignite", description="The book's train_ch13 on Ignite Engines.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, PermissionError) as e:
        print(f"d2l-ignite {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"d2l-ignite {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
