"""Bad input gets an error naming the argument and the fix, and nothing of the caller's is changed.

The README's troubleshooting table lists these with the cases tested elsewhere (checkpoints,
options, CLI, Visdom).
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from conftest import small_cnn
from engine import train_ch13

CE = nn.CrossEntropyLoss(reduction="none")
X = torch.rand(64, 1, 8, 8)
Y = torch.randint(0, 10, (64,))


class Rows(Dataset):
    def __init__(self, make):
        self.make = make

    def __len__(self):
        return 32

    def __getitem__(self, i):
        return self.make(i)


def train(train_iter, net=None, loss=CE, optimizer=None, epochs=1, devices=("cpu",)):
    net = net if net is not None else small_cnn()
    optimizer = optimizer if optimizer is not None else torch.optim.SGD(net.parameters(), 0.1)
    test_iter = DataLoader(TensorDataset(X, Y), 16)
    return train_ch13(net, train_iter, test_iter, loss, optimizer, epochs, list(devices), plot=False, verbose=False)


def ok_loader():
    return DataLoader(TensorDataset(X, Y), 16)


CASES = {
    "batch of three": (lambda: train(DataLoader(Rows(lambda i: (X[i], Y[i], 0)), 8)), TypeError,
                       "each batch must be a pair"),
    "batch is a dict": (lambda: train(DataLoader(Rows(lambda i: {"x": X[i], "y": Y[i]}), 8)), TypeError,
                        "each batch must be a pair"),
    "numpy inputs": (lambda: train([(np.zeros((8, 1, 8, 8), np.float32), Y[:8])]), TypeError,
                     "must be a tensor or a list of tensors"),
    "labels not a tensor": (lambda: train([(X[:8], [1] * 8)]), TypeError, "labels y must be a tensor"),
    "float class labels": (lambda: train(DataLoader(TensorDataset(X, Y.float()), 16)), ValueError,
                           r"class labels must be whole numbers \(torch.long\)"),
    "output batch size differs": (lambda: train(ok_loader(), net=nn.Sequential(small_cnn(), nn.Flatten(0),
                                                                             nn.Unflatten(0, (-1, 5)))),
                                  ValueError, "output batch size must equal the labels'"),
    "labels of the wrong shape": (lambda: train(DataLoader(TensorDataset(X, Y.reshape(-1, 1).repeat(1, 3)), 16)),
                                  ValueError, "the loss failed on predictions"),
    "loss returns a number": (lambda: train(ok_loader(), loss=lambda y_hat, y: 1.0), TypeError,
                              "the loss must return a tensor"),
    "train_iter not iterable": (lambda: train(5), TypeError, "train_iter must be an iterable of"),
    "optimizer is not one": (lambda: train(ok_loader(), optimizer=0.1), TypeError,
                             "must be a torch.optim.Optimizer"),
    "loss, optimizer swapped": (lambda: train(ok_loader(), loss=torch.optim.SGD(nn.Linear(1, 1).parameters()),
                                              optimizer=CE), TypeError, "the loss comes before it"),  # Ignite's order
    "num_epochs a float": (lambda: train(ok_loader(), epochs=2.5), ValueError, "num_epochs must be a positive int"),
    "num_epochs negative": (lambda: train(ok_loader(), epochs=-1), ValueError, "num_epochs must be a positive int"),
    "devices mix types": (lambda: train(ok_loader(), devices=("cpu", "meta")), ValueError, "mixes device types"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_named(case):
    call, kind, message = CASES[case]
    with pytest.raises(kind, match=message):
        call()


def test_every_keyword_of_ignites_factories_that_ours_lack_is_refused_naming_ours():
    """An Ignite user's call: each keyword Ignite's factories take (read from Ignite itself, so a new one is
    checked too) and ours do not is a TypeError naming the keyword and what to pass here instead."""
    import inspect

    from ignite.engine import create_supervised_evaluator, create_supervised_trainer

    from engine import create_evaluator, create_trainer

    net = small_cnn()
    ours = {create_supervised_trainer: (create_trainer, lambda **kw: create_trainer(
                net, CE, torch.optim.SGD(net.parameters(), 0.1), **kw)),
            create_supervised_evaluator: (create_evaluator, lambda **kw: create_evaluator(net, **kw))}
    refused = []
    for theirs, (factory, call) in ours.items():
        for name, p in inspect.signature(theirs).parameters.items():
            if p.default is p.empty or name in inspect.signature(factory).parameters:
                continue  # the positional ones (model, loss_fn) Python refuses by itself; the shared ones work
            with pytest.raises(TypeError, match=rf"^{factory.__name__}\(\) got an unexpected keyword argument "
                                                rf"'{name}' \(Ignite's factory keyword\); here: \w"):
                call(**{name: p.default})
            refused.append(name)
    assert {"device", "gradient_accumulation_steps", "amp_mode", "metrics"} <= set(refused)
    with pytest.raises(TypeError, match=r"train_ch13\(\) got an unexpected keyword argument 'device' \(Ignite's"):
        train_ch13(net, ok_loader(), ok_loader(), CE, torch.optim.SGD(net.parameters(), 0.1), 1, device="cpu")


def test_model_is_untouched_when_the_first_step_fails():
    net = small_cnn()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ValueError):
        train(DataLoader(TensorDataset(X, Y.float()), 16), net=net)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("args, message", [
    (["--nproc-per-node", "2", "--devices", "cpu"], "--devices chooses GPUs for one process"),
    (["--nproc-per-node", "0"], "--nproc-per-node: expected a positive whole number"),
    (["--schedule", "linear"], "invalid choice"),
])
def test_cli_distributed_and_schedule_arguments(tmp_path, args, message):
    done = subprocess.run([sys.executable, "-m", "engine.app", "train", "--no-plot", "--out", str(tmp_path / "o"),
                           *args], capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
