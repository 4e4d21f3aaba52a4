"""Book 14.1 image augmentation: ResNet-18 on CIFAR-10 with random horizontal flips, Adam 1e-3, batch 256.

    python examples/image_augmentation.py [--data-dir ../data] [--epochs 10]
The book printed ``loss 0.215, train acc 0.925, test acc 0.810`` and 4728.8 examples/sec on 2 GPUs.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms

from common import example_parser, run, subset, script
from vision import cifar10, init_xavier, resnet18


def main(argv: list[str] | None = None) -> None:
    p = example_parser(__doc__.splitlines()[0], epochs=10, batch_size=256, lr=1e-3)
    p.add_argument("--no-verify", action="store_true",
                   help="accept CIFAR-10 python batches assembled locally (their checksums are not the published ones)")
    args = p.parse_args(argv)
    train_augs = transforms.Compose([transforms.RandomHorizontalFlip(), transforms.ToTensor()])
    test_augs = transforms.Compose([transforms.ToTensor()])
    train, test = (subset(cifar10(args.data_dir, t, a, verify=not args.no_verify), args.limit)
                   for t, a in ((True, train_augs), (False, test_augs)))
    train_iter = DataLoader(train, args.batch_size, shuffle=True, num_workers=args.num_workers, pin_memory=True)
    test_iter = DataLoader(test, args.batch_size, num_workers=args.num_workers, pin_memory=True)
    net = init_xavier(resnet18(10, 3))
    run(args, net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"),
        torch.optim.Adam(net.parameters(), lr=args.lr))


if __name__ == "__main__":
    script(main)
