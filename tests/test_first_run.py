"""A newcomer's first run: without npm, or without the npm registry, the page cannot be served, and
training says so in one line and goes on with the PNG and the record of every point."""
from __future__ import annotations

import os
import shutil

import pytest
import torch
from conftest import loaders, small_cnn
from torch import nn

import handlers.plot.policy
import handlers.visdom_server.assets as assets
from engine import train_ch13
from handlers.local import free_port


@pytest.mark.parametrize("problem", ["no npm", "registry unreachable"])
def test_without_the_visdom_page_files_training_goes_on(digits, tmp_path, monkeypatch, capfd, problem):
    handlers.plot.policy.stop_shared_server()
    monkeypatch.setattr(assets, "static_dir", lambda: str(tmp_path / "static"))  # as on a fresh install
    os.makedirs(tmp_path / "static")
    if problem == "no npm":
        which = shutil.which
        monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "npm" else which(name, *a, **k))
    else:
        monkeypatch.setenv("npm_config_registry", f"http://127.0.0.1:{free_port()}/")
        monkeypatch.setenv("npm_config_fetch_retries", "0")
    monkeypatch.setenv("D2L_IGNITE_PLOT", "1")
    monkeypatch.setenv("VISDOM_URL", f"http://127.0.0.1:{free_port()}")  # nothing answers: a server is wanted
    tr, te = loaders(*digits, 64, 32, 16)
    net = small_cnn()
    history = train_ch13(net, tr, te, nn.CrossEntropyLoss(reduction="none"), torch.optim.SGD(net.parameters(), 0.1),
                         2, out_dir=str(tmp_path / "run"))
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if "could not start a local Visdom server" in line]
    why = "npm` is not installed" if problem == "no npm" else "is the npm registry reachable"
    assert len(lines) == 1 and why in lines[0] and "curves.png and curves.npz" in lines[0]
    assert len(history.train_loss) == 2
    assert (tmp_path / "run" / "curves.png").stat().st_size > 5000
    assert (tmp_path / "run" / "curves.npz").stat().st_size > 0
