"""Models and data sets of the book's computer-vision chapters, shared by the vision examples."""
from __future__ import annotations

import os

import ignite.distributed as idist
import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn
from torch.nn import functional as F
from torchvision import transforms

__all__ = ["resnet18", "init_xavier", "cifar10", "imagenet_resnet18", "bilinear_kernel", "fcn", "VOCSegDataset",
           "VOC_COLORMAP"]


class Residual(nn.Module):
    """Two 3x3 convolutions with batch norm and a skip (a 1x1 convolution when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv3 = nn.Conv2d(cin, cout, 1, stride=stride) if stride != 1 or cin != cout else None
        self.bn1, self.bn2 = nn.BatchNorm2d(cout), nn.BatchNorm2d(cout)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(X)))))
        return F.relu(Y + (self.conv3(X) if self.conv3 is not None else X))


def resnet18(num_classes: int, in_channels: int = 1) -> nn.Module:
    """The book's small-image ResNet-18: a 3x3 stem without pooling, four stages of two blocks."""
    stages, cin = [], 64
    for i, cout in enumerate((64, 128, 256, 512)):
        stride = 1 if i == 0 else 2
        stages.append(nn.Sequential(Residual(cin, cout, stride), Residual(cout, cout)))
        cin = cout
    return nn.Sequential(
        nn.Conv2d(in_channels, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), *stages,
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes),
    )


def init_xavier(net: nn.Module) -> nn.Module:
    for m in net.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
    return net


class _LocalCIFAR10(torchvision.datasets.CIFAR10):
    """torchvision's CIFAR-10 reader over batches assembled locally (same files, same format), whose
    checksums differ from the published ones: each file must exist, its md5 is not compared."""

    _base = torchvision.datasets.CIFAR10
    train_list = [[name, None] for name, _ in _base.train_list]
    test_list = [[name, None] for name, _ in _base.test_list]
    meta = {**_base.meta, "md5": None}


def cifar10(data_dir: str, train: bool, augs: transforms.Compose, verify: bool = True) -> torchvision.datasets.CIFAR10:
    """CIFAR-10 as the book loads it (downloaded to ``data_dir`` when missing); ``verify=False`` accepts
    python-format batches whose checksums are not the published ones."""
    try:
        if not verify:
            return _LocalCIFAR10(data_dir, train=train, transform=augs, download=False)
        with idist.one_rank_first(local=True):  # several processes: one downloads, the others then read
            return torchvision.datasets.CIFAR10(data_dir, train=train, transform=augs, download=True)
    except (OSError, RuntimeError) as e:
        raise FileNotFoundError(f"CIFAR-10 is not in {data_dir}/cifar-10-batches-py and could not be downloaded "
                                f"({type(e).__name__}); put it there or pass --data-dir") from None


def imagenet_resnet18(weights: str | None, pretrained: bool) -> nn.Module:
    """torchvision's resnet18: a local weights file, else ImageNet weights downloaded, else random init."""
    if weights is not None:
        net = torchvision.models.resnet18()
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return net
    if pretrained:
        try:
            return torchvision.models.resnet18(weights=torchvision.models.ResNet18_Weights.IMAGENET1K_V1)
        except (OSError, RuntimeError) as e:  # offline: the book's numbers need the weights; say so, go on
            print(f"[weights] ImageNet weights unavailable ({type(e).__name__}); starting from random init. "
                  "Pass --weights FILE to use a local copy.", flush=True)
    return torchvision.models.resnet18()


def bilinear_kernel(cin: int, cout: int, size: int) -> torch.Tensor:
    """Weights that make a transposed convolution upsample by bilinear interpolation."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size).reshape(-1, 1), torch.arange(size).reshape(1, -1)
    filt = (1 - torch.abs(og[0] - center) / factor) * (1 - torch.abs(og[1] - center) / factor)
    weight = torch.zeros((cin, cout, size, size))
    weight[range(cin), range(cout), :, :] = filt
    return weight


def fcn(trunk: nn.Module, num_classes: int = 21) -> nn.Module:
    """The book's FCN: a ResNet-18 trunk, a 1x1 class conv, a 32x transposed conv initialised bilinear."""
    net = nn.Sequential(*list(trunk.children())[:-2])
    net.add_module("final_conv", nn.Conv2d(512, num_classes, 1))
    net.add_module("transpose_conv", nn.ConvTranspose2d(num_classes, num_classes, 64, padding=16, stride=32))
    net.transpose_conv.weight.data.copy_(bilinear_kernel(num_classes, num_classes, 64))
    return net


VOC_COLORMAP = [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128], [128, 0, 128], [0, 128, 128],
                [128, 128, 128], [64, 0, 0], [192, 0, 0], [64, 128, 0], [192, 128, 0], [64, 0, 128],
                [192, 0, 128], [64, 128, 128], [192, 128, 128], [0, 64, 0], [128, 64, 0], [0, 192, 0],
                [128, 192, 0], [0, 64, 128]]


def _rgb(path: str) -> torch.Tensor:
    """An image file as an (H, W, 3) uint8 tensor; palette PNGs (VOC's class maps) expand to their colours."""
    with Image.open(path) as img:
        return torch.from_numpy(np.asarray(img.convert("RGB")).copy())


class VOCSegDataset(torch.utils.data.Dataset):
    """VOC2012 segmentation (``VOCdevkit/VOC2012`` layout): random crops of images and class-index maps.

    Like the book, images smaller than the crop are dropped and colours outside the palette count as
    background.
    """

    MEAN, STD = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])

    def __init__(self, voc_dir: str, train: bool, crop_size: tuple[int, int], limit: int | None = None) -> None:
        with open(os.path.join(voc_dir, "ImageSets", "Segmentation", "train.txt" if train else "val.txt")) as f:
            names = f.read().split()[:limit]
        self.crop_size = crop_size
        lut = torch.zeros(256 ** 3, dtype=torch.long)
        for i, (r, g, b) in enumerate(VOC_COLORMAP):
            lut[(r * 256 + g) * 256 + b] = i
        self.features, self.labels = [], []
        for name in names:
            img = _rgb(os.path.join(voc_dir, "JPEGImages", f"{name}.jpg"))
            if img.shape[0] < crop_size[0] or img.shape[1] < crop_size[1]:
                continue
            label = _rgb(os.path.join(voc_dir, "SegmentationClass", f"{name}.png")).long()
            self.features.append((img.float() / 255 - self.MEAN) / self.STD)
            self.labels.append(lut[(label[..., 0] * 256 + label[..., 1]) * 256 + label[..., 2]])
        if not self.features:
            raise ValueError(f"no image in {voc_dir} is at least {crop_size[0]}x{crop_size[1]}; use a smaller crop")
        print(f"read {len(self.features)} examples", flush=True)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        feature, label = self.features[i].permute(2, 0, 1), self.labels[i]
        top, left, h, w = transforms.RandomCrop.get_params(feature, self.crop_size)
        return feature[:, top:top + h, left:left + w], label[top:top + h, left:left + w]
