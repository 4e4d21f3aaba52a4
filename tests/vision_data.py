"""Small data sets written in the real on-disk formats the vision examples read."""
from __future__ import annotations

import os
import pickle
import struct

import numpy as np
from PIL import Image

RNG = np.random.default_rng(0)


def _classed_images(n: int, shape: tuple[int, ...], classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise plus a class-dependent brightness, so a net can learn something in one epoch."""
    labels = RNG.integers(0, classes, n)
    base = (labels * (200 // max(classes - 1, 1))).reshape((n,) + (1,) * len(shape))
    return np.clip(base + RNG.integers(0, 55, (n, *shape)), 0, 255).astype(np.uint8), labels


def fashion_mnist(root: str, n_train: int = 96, n_test: int = 48) -> None:
    """idx3/idx1 files in ``root/FashionMNIST/raw``, as torchvision leaves them after a download."""
    raw = os.path.join(root, "FashionMNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images, labels = _classed_images(n, (28, 28), 10)
        with open(os.path.join(raw, f"{prefix}-images-idx3-ubyte"), "wb") as f:
            f.write(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        with open(os.path.join(raw, f"{prefix}-labels-idx1-ubyte"), "wb") as f:
            f.write(struct.pack(">II", 0x801, n) + labels.astype(np.uint8).tobytes())


def cifar10(root: str, per_batch: int = 16, n_test: int = 32) -> None:
    """``cifar-10-batches-py``: five pickled training batches, a test batch and ``batches.meta``."""
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        images, labels = _classed_images(n_test if name == "test_batch" else per_batch, (3, 32, 32), 10)
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump({"data": images.reshape(len(labels), -1), "labels": labels.tolist()}, f)
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)


def hotdog(root: str, per_class: int = 6) -> None:
    """``hotdog/{train,test}/{hotdog,not-hotdog}/*.jpg``, an ImageFolder of JPEGs of varied sizes."""
    for split in ("train", "test"):
        for c, cls in enumerate(("hotdog", "not-hotdog")):
            folder = os.path.join(root, "hotdog", split, cls)
            os.makedirs(folder, exist_ok=True)
            for i in range(per_class):
                h, w = RNG.integers(120, 300, 2)
                pixels = np.clip(RNG.integers(0, 80, (h, w, 3)) + 150 * c, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(os.path.join(folder, f"{i}.jpg"), quality=90)


def voc2012(root: str, n_train: int = 6, n_val: int = 4, size: tuple[int, int] = (80, 110)) -> None:
    """``VOCdevkit/VOC2012``: JPEG images, palette-PNG class maps (VOC's colours) and the split lists."""
    from vision import VOC_COLORMAP

    voc = os.path.join(root, "VOCdevkit", "VOC2012")
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        os.makedirs(os.path.join(voc, sub), exist_ok=True)
    palette = [c for rgb in VOC_COLORMAP for c in rgb] + [224, 224, 192] + [0] * (768 - 66)
    for split, n in (("train", n_train), ("val", n_val)):
        names = [f"2007_{split}_{i:03d}" for i in range(n)]
        for name in names:
            classes = np.zeros(size, dtype=np.uint8)
            classes[size[0] // 2:, :] = RNG.integers(1, 21)
            classes[:2, :] = 21  # VOC's cream-coloured "void" border: not in the palette, counts as background
            label = Image.fromarray(classes, mode="P")
            label.putpalette(palette)
            label.save(os.path.join(voc, "SegmentationClass", f"{name}.png"))
            image = np.clip(RNG.integers(0, 60, (*size, 3)) + classes[..., None] * 9, 0, 255).astype(np.uint8)
            Image.fromarray(image).save(os.path.join(voc, "JPEGImages", f"{name}.jpg"))
        with open(os.path.join(voc, "ImageSets", "Segmentation", f"{split}.txt"), "w") as f:
            f.write("\n".join(names) + "\n")
