"""The main job's embedded default: scikit-learn's bundled digits and small nets for them (no download)."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["digits_loaders", "digits_net", "MODELS"]


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
        DataLoader(TensorDataset(X[train], y[train]), batch_size, shuffle=True, generator=g),
        DataLoader(TensorDataset(X[test], y[test]), max(batch_size, 256)),
    )


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


MODELS = {"cnn": _cnn, "mlp": _mlp}


def digits_net(name: str = "cnn") -> nn.Module:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]()
