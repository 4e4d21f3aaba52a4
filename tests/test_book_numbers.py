"""train_ch13 prints the book's numbers: against a first-principles loop and against d2l 1.0.3 itself."""
from __future__ import annotations

import contextlib
import io

import torch
from torch import nn

from conftest import loaders, small_cnn, twin
from engine import train_ch13

CPU = [torch.device("cpu")]


def reference_loop(net, train_iter, test_iter, loss, opt, num_epochs) -> str:
    """The book's arithmetic written out: per-example loss summed for backward, sums reset each epoch."""
    for _ in range(num_epochs):
        sums = [0.0, 0.0, 0, 0]
        for X, y in train_iter:
            net.train()
            opt.zero_grad()
            pred = net(X)
            l = loss(pred, y)
            l.sum().backward()
            opt.step()
            sums[0] += float(l.sum().detach())
            sums[1] += float((pred.argmax(1) == y).sum())
            sums[2] += y.shape[0]
            sums[3] += y.numel()
        net.eval()
        with torch.no_grad():
            hits = sum(float((net(X).argmax(1) == y).sum()) for X, y in test_iter)
            total = sum(y.numel() for _, y in test_iter)
    return f"loss {sums[0] / sums[2]:.3f}, train acc {sums[1] / sums[3]:.3f}, test acc {hits / total:.3f}"


def run_ours(net, train_iter, test_iter, opt, epochs) -> list[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        train_ch13(net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"), opt, epochs, CPU, progress=False)
    return [line for line in out.getvalue().splitlines() if not line.startswith("Live plots: ")]


def test_matches_first_principles_loop(digits):
    train_iter, test_iter = loaders(*digits, 600, 300, 50)
    a = small_cnn()
    b = twin(a)
    ours = run_ours(a, train_iter, test_iter, torch.optim.SGD(a.parameters(), lr=0.01), 3)
    ref = reference_loop(b, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"),
                         torch.optim.SGD(b.parameters(), lr=0.01), 3)
    assert ours[0] == ref
    assert ours[1].endswith(" examples/sec on [device(type='cpu')]")
    assert float(ours[1].split()[0]) > 0
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


def test_matches_d2l_train_ch13(digits, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    from d2l import torch as d2l

    train_iter, test_iter = loaders(*digits, 500, 200, 64)
    a = small_cnn(1)
    b = twin(a)
    ours = run_ours(a, train_iter, test_iter, torch.optim.Adam(a.parameters(), lr=1e-3), 2)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        d2l.train_ch13(b, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"),
                       torch.optim.Adam(b.parameters(), lr=1e-3), 2, CPU)
    book = [line for line in out.getvalue().splitlines() if line.startswith("loss ")]
    assert ours[0] == book[-1]
    print("ours:", ours[0], "| book:", book[-1])


def test_history_and_net_left_in_eval_mode(digits):
    train_iter, test_iter = loaders(*digits, 300, 100, 100)
    net = small_cnn()
    history = train_ch13(net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"),
                         torch.optim.SGD(net.parameters(), lr=0.05), 2, CPU, progress=False, verbose=False)
    assert len(history.train_loss) == len(history.test_acc) == len(history.examples_per_sec) == 2
    assert all(0 <= a <= 1 for a in history.train_acc + history.test_acc)
    assert not net.training
    assert history.devices == "[device(type='cpu')]"
