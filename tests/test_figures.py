"""What is drawn comes from the metrics: a metric attached to an Engine is a figure of the History, the per-epoch
line, the book window and the run's record, with nothing else to change (issue 34)."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import loaders, small_cnn
from ignite.metrics import TopKCategoricalAccuracy
from torch import nn

from engine import train_ch13
from handlers.plot.record import read_points

CE = nn.CrossEntropyLoss(reduction="none")


def _train(digits, tmp_path, **kw):
    X, y = digits
    tr, te = loaders(X, y, 256, 128, 64)
    net = small_cnn()
    return train_ch13(net, tr, te, CE, torch.optim.SGD(net.parameters(), 0.05), 2, ["cpu"], plot=False,
                      out_dir=str(tmp_path / "run"), verbose=False, **kw)


def _book_window(tmp_path):
    return next(traces for win, _, traces in read_points(str(tmp_path / "run" / "curves.npz")) if win == "train_ch13")


def test_an_ignite_metric_attached_to_the_evaluator_is_a_figure_everywhere(digits, tmp_path, capsys):
    """Ignite's TopKCategoricalAccuracy on train_ch13's evaluator, attached with no output_transform (the evaluator's
    output carries y_pred and y under Ignite's keys)."""
    history = _train(digits, tmp_path, progress="epochs",
                     handlers=[lambda trainer, evaluator: TopKCategoricalAccuracy(k=3).attach(evaluator, "top3")])
    assert len(history.test_top3) == 2 and all(a <= b <= 1 for a, b in zip(history.test_acc, history.test_top3))
    assert "test_top3" in history.figures() and history.state_dict()["extra"]["test_top3"] == history.test_top3
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2 and f"test top3 {history.test_top3[-1]:.3f}" in lines[-1]
    book = _book_window(tmp_path)
    assert list(book)[:3] == ["train loss", "train acc", "test acc"]  # the book's order first
    xs, ys = book["test top3"]
    assert list(xs) == [1.0, 2.0] and list(ys) == pytest.approx(history.test_top3)
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    assert manifest["final"]["test_top3"] == pytest.approx(history.test_top3[-1])
    with pytest.raises(AttributeError, match="History has no figure 'test_top5' .it keeps train_loss"):
        history.test_top5  # noqa: B018


def test_the_test_loss_is_drawn_when_the_run_computes_it(digits, tmp_path):
    history = _train(digits, tmp_path, test_loss=True)
    xs, ys = _book_window(tmp_path)["test loss"]
    assert list(xs) == [1.0, 2.0] and list(ys) == pytest.approx(history.test_loss)
