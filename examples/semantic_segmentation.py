"""Book 14.11 semantic segmentation: an FCN on VOC2012 crops of 320x480, batch 32, SGD lr 1e-3 wd 1e-3.

    python examples/semantic_segmentation.py [--data-dir ../data] [--weights resnet18.pth]
Accuracy is per pixel. The book printed ``loss 0.449, train acc 0.861, test acc 0.852`` (2 GPUs).
"""
from __future__ import annotations

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from common import DATA_URL, download_extract, example_parser, run, script
from vision import VOCSegDataset, fcn, imagenet_resnet18

VOC2012 = (DATA_URL + "VOCtrainval_11-May-2012.tar", "4e443f8a2eca6b1dac8a6c57641b67dd40621a49")


def per_image_loss(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-pixel cross-entropy averaged over each image: one loss per example, as the book defines it."""
    return F.cross_entropy(inputs, targets, reduction="none").mean(1).mean(1)


def main(argv: list[str] | None = None) -> None:
    p = example_parser(__doc__.splitlines()[0], epochs=5, batch_size=32, lr=1e-3)
    p.add_argument("--weights", default=None, help="a local resnet18 ImageNet state_dict file for the trunk")
    p.add_argument("--crop", type=int, nargs=2, default=[320, 480], metavar=("H", "W"), help="crop size")
    args = p.parse_args(argv)
    voc_dir = download_extract(*VOC2012, args.data_dir, "VOCdevkit/VOC2012")
    train, test = (VOCSegDataset(voc_dir, t, tuple(args.crop), args.limit) for t in (True, False))
    train_iter = DataLoader(train, args.batch_size, shuffle=True, drop_last=True, num_workers=args.num_workers,
                            pin_memory=torch.cuda.is_available())
    test_iter = DataLoader(test, args.batch_size, drop_last=True, num_workers=args.num_workers,
                           pin_memory=torch.cuda.is_available())
    net = fcn(imagenet_resnet18(args.weights, pretrained=True), num_classes=21)
    run(args, net, train_iter, test_iter, per_image_loss,
        torch.optim.SGD(net.parameters(), lr=args.lr, weight_decay=1e-3))


if __name__ == "__main__":
    script(main)
