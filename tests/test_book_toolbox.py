"""The book's whole toolbox as drop-ins, each against pip's d2l 1.0.3 on the same data."""
from __future__ import annotations

import contextlib
import io
import re
import time

import d2l.torch as d2l  # the reference implementation, installed by the test target
import pytest
import torch
from conftest import loaders, small_cnn, twin
from torch import nn

from engine import Accumulator, Animator, Timer, accuracy, train_batch_ch13, train_ch6, train_ch13
from handlers import LocalVisdom, VisdomPlotter
from visdom_util import window

LOSS = nn.CrossEntropyLoss(reduction="none")


def test_accumulator_and_timer_match_the_books():
    ours, book = Accumulator(3), d2l.Accumulator(3)
    for args in [(1, torch.tensor(2.5), 3), (0.25, 4, torch.tensor(7))]:
        ours.add(*args)
        book.add(*args)
    assert ours.data == book.data and ours[1] == book[1]
    ours.reset()
    assert ours.data == [0.0, 0.0, 0.0]
    mine, theirs = Timer(), d2l.Timer()
    for pause in (0.01, 0.02):
        mine.start(), theirs.start()
        time.sleep(pause)
        assert mine.stop() == pytest.approx(theirs.stop(), abs=5e-3)
    assert mine.sum() == pytest.approx(theirs.sum(), abs=1e-2) and mine.avg() == pytest.approx(theirs.avg(), abs=5e-3)
    mine.times = list(theirs.times)
    assert mine.cumsum() == pytest.approx(theirs.cumsum())


def test_train_batch_ch13_returns_the_books_numbers_and_weights(digits):
    X, y = digits[0][:32], digits[1][:32]
    a, b = small_cnn(), small_cnn()
    ours = train_batch_ch13(a, X, y, LOSS, torch.optim.SGD(a.parameters(), 0.1), [])  # [] as try_all_gpus() on CPU
    book = d2l.train_batch_ch13(b, X, y, LOSS, torch.optim.SGD(b.parameters(), 0.1), [torch.device("cpu")])
    assert ours == (pytest.approx(float(book[0]), rel=1e-6), book[1])
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert accuracy(a(X), y) == d2l.accuracy(b(X), y)


class TwoInputs(nn.Module):
    """The NLI shape: X = [premises, hypotheses]."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(128, 10)

    def forward(self, X: list[torch.Tensor]) -> torch.Tensor:
        return self.fc(torch.cat([X[0].flatten(1), X[1].flatten(1)], 1))


def test_train_batch_ch13_takes_a_list_input(digits):
    X, y = digits[0][:16], digits[1][:16]
    torch.manual_seed(0)
    a = TwoInputs()
    b = twin(a)
    ours = train_batch_ch13(a, [X, X], y, LOSS, torch.optim.SGD(a.parameters(), 0.1), ["cpu"])
    book = d2l.train_batch_ch13(b, [X, X], y, LOSS, torch.optim.SGD(b.parameters(), 0.1), [torch.device("cpu")])
    assert ours == (pytest.approx(float(book[0]), rel=1e-6), book[1])


def lenet_like() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Sigmoid(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(64, 10))


def test_train_ch6_prints_the_books_lines(digits):
    X, y = digits
    tr, te = loaders(X, y, 256, 128, 32)
    outputs = []
    for train in (train_ch6, d2l.train_ch6):
        torch.manual_seed(1)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            train(lenet_like(), tr, te, 3, 0.9, torch.device("cpu"), **({"plot": False} if train is train_ch6 else {}))
        lines = out.getvalue().splitlines()
        outputs.append([line for line in lines if re.match(r"(training on|loss |[\d.]+ ex)", line)])
    ours, book = outputs
    assert ours[:2] == book[:2] == ["training on cpu", book[1]] and book[1].startswith("loss ")
    assert re.fullmatch(r"[\d.]+ examples/sec on cpu", ours[2]) and book[2].endswith("examples/sec on cpu")


def test_empty_devices_train_on_the_cpu_and_the_device_list_prints_as_passed(digits, capsys):
    X, y = digits
    tr, te = loaders(X, y, 64, 32, 16)
    net = small_cnn()
    history = train_ch13(net, tr, te, LOSS, torch.optim.SGD(net.parameters(), 0.1), 1, [], plot=False)
    assert capsys.readouterr().out.splitlines()[1].endswith("examples/sec on [device(type='cpu')]")
    train_ch13(net, tr, te, LOSS, torch.optim.SGD(net.parameters(), 0.1), 1, ["cpu"], plot=False)
    assert capsys.readouterr().out.splitlines()[1].endswith("examples/sec on ['cpu']")
    assert re.fullmatch(r"History\(1 epochs: loss [\d.]+, train acc [\d.]+, test acc [\d.]+, [\d.]+ examples/sec\)",
                        repr(history)) and len(repr(history)) < 160
    assert len(history.train_loss) == 1  # the data stay


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LocalVisdom(env_path=str(tmp_path_factory.mktemp("visdom"))) as s:
        yield s


def test_animator_draws_what_the_books_animator_draws(server):
    adds = [(0.2, (2.1, 0.3, None)), (0.4, (1.5, 0.5, None)), (1.0, (0.9, 0.7, 0.65)),
            ([1.5, 1.5, 2], (0.5, None, 0.8))]
    kwargs = dict(xlabel="epoch", xlim=[1, 2], legend=["train loss", "train acc", "test acc"], yscale="log")
    book = d2l.Animator(**kwargs)
    plotter = VisdomPlotter(server.url, "animator-test")
    ours = Animator(**kwargs, plotter=plotter)
    with contextlib.redirect_stdout(io.StringIO()):  # the book's Animator displays a figure per add
        for x, y in adds:
            book.add(x, y)
            ours.add(x, y)
    assert ours.close() and (ours.X, ours.Y) == (book.X, book.Y)
    content = window(server.url, "animator-test", ours.window)["content"]
    drawn = {t["name"]: (t["x"], t["y"]) for t in content["data"]}
    assert drawn == {name: (book.X[i], book.Y[i]) for i, name in enumerate(kwargs["legend"])}
    assert content["layout"]["yaxis"]["type"] == "log"
    assert content["layout"]["xaxis"] == {"type": "linear", "title": "epoch", "range": [1, 2]}
    assert plotter.close()  # whoever makes a plotter closes it: the server saves the env while it runs
