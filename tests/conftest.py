"""Shared small data: scikit-learn's bundled digits, loaded through real DataLoaders."""
from __future__ import annotations

import copy
import os
import pathlib

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import engine

if os.environ.get("D2L_IGNITE_EXPECT_INSTALLED"):  # make compat: these tests must exercise the installed wheel
    _repo = pathlib.Path(__file__).resolve().parent.parent
    if _repo in pathlib.Path(engine.__file__).resolve().parents:
        raise RuntimeError(f"engine was imported from the checkout ({engine.__file__}), not the installed wheel")


@pytest.fixture(scope="session")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    d = load_digits()
    X = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return X, torch.tensor(d.target)


def loaders(X: torch.Tensor, y: torch.Tensor, n_train: int, n_test: int, batch: int) -> tuple[DataLoader, DataLoader]:
    train = TensorDataset(X[:n_train], y[:n_train])
    test = TensorDataset(X[n_train : n_train + n_test], y[n_train : n_train + n_test])
    return DataLoader(train, batch, shuffle=False), DataLoader(test, batch, shuffle=False)


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 16, 10)
    )


def twin(net: nn.Module) -> nn.Module:
    return copy.deepcopy(net)


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path, monkeypatch):
    """Runs write their folders (runs/) under a temporary directory, never the checkout;
    ``plot=True`` starts no server unless a test asks for it (``D2L_IGNITE_PLOT=1``), as in CI."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("D2L_IGNITE_PLOT", "0")
    monkeypatch.setenv("D2L_IGNITE_STATE", str(tmp_path / ".d2l-state"))  # this test's own shared Visdom server
    monkeypatch.setenv("D2L_IGNITE_VISDOM_LINGER", "1")
    monkeypatch.setattr("handlers.plot.policy._no_server", {})  # each test asks for its own server afresh
