"""Book 14.2 fine-tuning: torchvision's resnet18 on the hotdog ImageFolder, a new 2-class head at 10x lr.

    python examples/fine_tuning.py [--data-dir ../data] [--weights resnet18.pth | --scratch]
The book printed ``0.242 / 0.909 / 0.940`` (SGD lr 5e-5) and, from scratch, ``0.352 / 0.846 / 0.850``
(lr 5e-4). Without ``--weights`` the ImageNet weights are downloaded; offline, training starts from random init.
"""
from __future__ import annotations

import os

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms

from common import DATA_URL, download_extract, example_parser, run, subset, script
from vision import imagenet_resnet18

HOTDOG = (DATA_URL + "hotdog.zip", "fba480ffa8aa7e0febbb511d181409f899b9baa5")
NORMALIZE = transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def hotdog_loaders(data_dir: str, batch_size: int, num_workers: int,
                   limit: int | None) -> tuple[DataLoader, DataLoader]:
    folder = download_extract(*HOTDOG, data_dir, "hotdog")
    train_augs = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                     transforms.ToTensor(), NORMALIZE])
    test_augs = transforms.Compose([transforms.Resize([256, 256]), transforms.CenterCrop(224),
                                    transforms.ToTensor(), NORMALIZE])
    train, test = (subset(torchvision.datasets.ImageFolder(os.path.join(folder, split), augs), limit)
                   for split, augs in (("train", train_augs), ("test", test_augs)))
    return (DataLoader(train, batch_size, shuffle=True, num_workers=num_workers, pin_memory=True),
            DataLoader(test, batch_size, num_workers=num_workers, pin_memory=True))


def main(argv: list[str] | None = None) -> None:
    p = example_parser(__doc__.splitlines()[0], epochs=5, batch_size=128, lr=5e-5)
    p.add_argument("--weights", default=None, help="a local resnet18 ImageNet state_dict file (.pth)")
    p.add_argument("--scratch", action="store_true", help="the from-scratch variant: random init, one lr (5e-4)")
    args = p.parse_args(argv)
    if args.scratch and p.get_default("lr") == args.lr:
        args.lr = 5e-4
    train_iter, test_iter = hotdog_loaders(args.data_dir, args.batch_size, args.num_workers, args.limit)
    net = imagenet_resnet18(None if args.scratch else args.weights, pretrained=not args.scratch)
    net.fc = nn.Linear(net.fc.in_features, 2)
    nn.init.xavier_uniform_(net.fc.weight)
    if args.scratch:
        groups = [{"params": net.parameters()}]
    else:
        body = [p for name, p in net.named_parameters() if not name.startswith("fc.")]
        groups = [{"params": body}, {"params": net.fc.parameters(), "lr": args.lr * 10}]
    optimizer = torch.optim.SGD(groups, lr=args.lr, weight_decay=0.001)
    run(args, net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"), optimizer)


if __name__ == "__main__":
    script(main)
