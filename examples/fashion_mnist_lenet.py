"""Book chapter 7 (``train_ch6``): LeNet-5 on Fashion-MNIST, SGD lr 0.9, batch 256, 10 epochs.

    python examples/fashion_mnist_lenet.py [--data-dir ../data]
The book printed ``loss 0.469, train acc 0.823, test acc 0.779`` (one GPU).
"""
from __future__ import annotations

import torch
from torch import nn

from common import example_parser, run, script
from engine.app.data import fashion_mnist_loaders, lenet


def main(argv: list[str] | None = None) -> None:
    p = example_parser(__doc__.splitlines()[0], epochs=10, batch_size=256, lr=0.9)
    args = p.parse_args(argv)
    train_iter, test_iter = fashion_mnist_loaders(args.batch_size, args.data_dir, num_workers=args.num_workers,
                                                  limit=args.limit)
    net = lenet()
    run(args, net, train_iter, test_iter, nn.CrossEntropyLoss(), torch.optim.SGD(net.parameters(), lr=args.lr))


if __name__ == "__main__":
    script(main)
