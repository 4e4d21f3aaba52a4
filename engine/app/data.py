"""The main job's data and nets: scikit-learn's bundled digits (no download) or Fashion-MNIST on disk."""
from __future__ import annotations

import os

import ignite.distributed as idist
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

PIN = torch.cuda.is_available()  # pinned batches let the side-stream copy overlap the step

__all__ = ["digits_loaders", "fashion_mnist_loaders", "job_loaders", "job_net", "lenet", "MODELS", "DATASETS"]


def digits_loaders(batch_size: int = 64, test_fraction: float = 0.2, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """8x8 digit images in [0, 1] with a fixed random split; training batches are shuffled."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=g)
    n_test = int(len(y) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return (
        DataLoader(TensorDataset(X[train], y[train]), batch_size, shuffle=True, generator=g, pin_memory=PIN),
        DataLoader(TensorDataset(X[test], y[test]), max(batch_size, 256), pin_memory=PIN),
    )


def fashion_mnist_loaders(
    batch_size: int, data_dir: str = "../data", resize: int | None = None, num_workers: int = 4, seed: int = 0,
    limit: int | None = None,
) -> tuple[DataLoader, DataLoader]:
    """The book's ``load_data_fashion_mnist``: torchvision's FashionMNIST under ``data_dir`` (downloaded
    there when missing), images as [0, 1] tensors, optionally resized; ``limit`` keeps the first N."""
    import torchvision
    from torchvision import transforms

    trans = transforms.Compose(([transforms.Resize(resize)] if resize else []) + [transforms.ToTensor()])
    made = [d for d in (data_dir, os.path.join(data_dir, "FashionMNIST"), os.path.join(data_dir, "FashionMNIST", "raw"))
            if not os.path.exists(d)]
    try:
        with idist.one_rank_first(local=True):  # several processes: one downloads, the others then read
            train, test = (torchvision.datasets.FashionMNIST(data_dir, train=t, transform=trans, download=True)
                           for t in (True, False))
    except (OSError, RuntimeError) as e:
        for folder in reversed(made):  # leave no empty folder behind for a download that never came
            if os.path.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)
        raise FileNotFoundError(
            f"Fashion-MNIST is not in {os.path.join(data_dir, 'FashionMNIST', 'raw')} and could not be downloaded "
            f"({type(e).__name__}); put the four idx files there or pass --data-dir") from None
    if limit is not None:
        train, test = (Subset(d, range(min(limit, len(d)))) for d in (train, test))
    g = torch.Generator().manual_seed(seed)
    return (DataLoader(train, batch_size, shuffle=True, num_workers=num_workers, generator=g, pin_memory=PIN),
            DataLoader(test, batch_size, num_workers=num_workers, pin_memory=PIN))


def lenet() -> nn.Module:
    """The book's chapter-7 LeNet-5 for 28x28 inputs (sigmoid activations, average pooling)."""
    net = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2, 2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10),
    )
    for m in net:  # train_ch6 initialises every layer with Xavier-uniform weights
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
    return net


def _cnn(size: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )


def _mlp(size: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(size * size, 128), nn.ReLU(), nn.Linear(128, 10))


def _lenet(size: int) -> nn.Module:
    if size != 28:
        raise ValueError(f"lenet needs 28x28 images, the data set has {size}x{size}; use --model cnn or mlp")
    return lenet()


MODELS = {"cnn": _cnn, "mlp": _mlp, "lenet": _lenet}
DATASETS = ("digits", "fashion-mnist")
IMAGE_SIZE = {"digits": 8, "fashion-mnist": 28}


def job_loaders(dataset: str, batch_size: int, seed: int = 0,
                data_dir: str = "../data") -> tuple[DataLoader, DataLoader]:
    if dataset == "digits":
        return digits_loaders(batch_size, seed=seed)
    if dataset == "fashion-mnist":
        return fashion_mnist_loaders(batch_size, data_dir, num_workers=2, seed=seed)
    raise ValueError(f"unknown data set {dataset!r}; choose one of {DATASETS}")


def job_net(name: str = "cnn", dataset: str = "digits") -> nn.Module:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](IMAGE_SIZE[dataset])
