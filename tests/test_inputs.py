"""The shapes the book's chapters feed train_ch13, and the original's edge cases fixed."""
from __future__ import annotations

import pytest
import torch
from ignite.engine import Events
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from conftest import loaders, small_cnn
from engine import correct_count, create_evaluator, create_trainer, evaluate_accuracy_gpu, train_ch13

CPU = ["cpu"]
CE = nn.CrossEntropyLoss(reduction="none")


class TwoInput(nn.Module):
    """NLI-shaped model: called as net([premises, hypotheses]) with the list itself."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 8), nn.Linear(4, 8)
        self.out = nn.Linear(16, 3)
        self.seen: list = []

    def forward(self, inputs):
        self.seen.append(inputs)
        premises, hypotheses = inputs
        return self.out(torch.cat([self.a(premises), self.b(hypotheses)], dim=1))


def test_list_inputs_reach_model_as_separate_tensors():
    torch.manual_seed(0)
    p, h = torch.randn(40, 4), torch.randn(40, 4)
    y = (p.sum(1) > h.sum(1)).long()
    data = DataLoader(TensorDataset(p, h, y), 10)
    # a DataLoader yields [p, h, y]; regroup as the book's datasets do: ((p, h), y)
    batches = [([bp, bh], by) for bp, bh, by in data]
    net = TwoInput()
    h_ = train_ch13(net, batches, batches, CE, torch.optim.Adam(net.parameters(), 0.01), 3, CPU,
                    progress=False, verbose=False)
    first = net.seen[0]
    assert isinstance(first, list) and len(first) == 2
    assert all(isinstance(t, torch.Tensor) and t.shape == (10, 4) for t in first)
    assert h_.train_loss[-1] < h_.train_loss[0]


def test_segmentation_accuracy_counts_pixels():
    torch.manual_seed(0)
    X = torch.randn(8, 3, 6, 5)
    y = torch.randint(0, 4, (8, 6, 5))
    net = nn.Conv2d(3, 4, 1)

    def per_image(y_hat, y):  # the book's FCN loss: per-pixel CE averaged per image
        return nn.functional.cross_entropy(y_hat, y, reduction="none").mean(1).mean(1)

    data = DataLoader(TensorDataset(X, y), 4)
    h = train_ch13(net, data, data, per_image, torch.optim.SGD(net.parameters(), 0.1), 1, CPU,
                   progress=False, verbose=False)
    with torch.no_grad():
        expected = float((net(X).argmax(1) == y).float().mean())
    assert h.test_acc[-1] == pytest.approx(expected)
    assert evaluate_accuracy_gpu(net, data) == pytest.approx(expected)


def test_single_logit_is_a_binary_decision_not_a_broadcast():
    y_hat = torch.tensor([[2.0], [-1.0], [0.5], [-3.0]])
    y = torch.tensor([1, 0, 0, 0])
    assert int(correct_count(y_hat, y)) == 3  # the book's code would compare a 4x4 broadcast
    assert int(correct_count(y_hat, y.float())) == 3


def test_mismatched_batch_sizes_are_named():
    with pytest.raises(ValueError, match="output batch size"):
        correct_count(torch.randn(5, 3), torch.zeros(4, dtype=torch.long))


def test_mean_loss_keeps_per_example_figure(digits):
    train_iter, test_iter = loaders(*digits, 200, 100, 50)
    a, b = small_cnn(), small_cnn()
    ha = train_ch13(a, train_iter, test_iter, nn.CrossEntropyLoss(), torch.optim.SGD(a.parameters(), 0.5), 1,
                    CPU, progress=False, verbose=False)
    hb = train_ch13(b, train_iter, test_iter, CE, torch.optim.SGD(b.parameters(), 0.5 / 50), 1,
                    CPU, progress=False, verbose=False)
    # mean loss with lr x equals summed loss with lr x/B: same weights, same printed loss
    assert ha.train_loss[0] == pytest.approx(hb.train_loss[0], rel=1e-4)
    assert 1.0 < ha.train_loss[0] < 3.0


@pytest.mark.parametrize("n_batches", [1, 2, 3, 4])
def test_fewer_than_five_batches_train(digits, n_batches):
    train_iter, test_iter = loaders(*digits, 20 * n_batches, 40, 20)
    net = small_cnn()
    points = []
    trainer = create_trainer(net, CE, torch.optim.SGD(net.parameters(), 0.1))
    from engine import attach_book_metrics
    from handlers import BOOK_POINTS

    attach_book_metrics(trainer)
    trainer.add_event_handler(BOOK_POINTS, lambda e: points.append(e.state.metrics["loss"]))
    trainer.run(train_iter, max_epochs=2)
    assert len(points) == 2 * n_batches  # every batch is a point when n < 5
    h = train_ch13(net, train_iter, test_iter, CE, torch.optim.SGD(net.parameters(), 0.1), 2, CPU,
                   progress=False, verbose=False)
    assert len(h.train_loss) == 2


def test_book_cadence_points_per_epoch(digits):
    train_iter, _ = loaders(*digits, 196 * 4, 0, 4)  # 196 batches like CIFAR-10 at batch 256
    net = small_cnn()
    trainer = create_trainer(net, CE, torch.optim.SGD(net.parameters(), 0.01))
    from handlers import BOOK_POINTS

    seen = []
    trainer.add_event_handler(BOOK_POINTS, lambda e: seen.append(e.state.iteration))
    trainer.run(train_iter, max_epochs=1)
    assert seen == [39, 78, 117, 156, 195, 196]


@pytest.mark.parametrize("which", ["train_iter", "test_iter"])
def test_empty_loader_is_a_clear_error(digits, which):
    full, _ = loaders(*digits, 20, 0, 10)
    empty = DataLoader(TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long)), 10)
    net = small_cnn()
    args = {"train_iter": full, "test_iter": full, which: empty}
    with pytest.raises(ValueError, match=f"{which} yields no batches"):
        train_ch13(net, args["train_iter"], args["test_iter"], CE, torch.optim.SGD(net.parameters(), 0.1), 1, CPU)


def test_user_handler_sees_step_output(digits):
    train_iter, test_iter = loaders(*digits, 200, 100, 20)
    net = small_cnn()
    trainer = create_trainer(net, CE, torch.optim.SGD(net.parameters(), 0.1))
    seen = []

    @trainer.on(Events.ITERATION_COMPLETED(every=3))
    def grab(engine):
        seen.append(engine.state.output)

    trainer.run(train_iter, max_epochs=1)
    assert len(seen) == 10 // 3
    out = seen[0]
    assert set(out) == {"loss", "correct", "examples", "predictions"}
    assert isinstance(out["loss"], torch.Tensor) and isinstance(out["correct"], torch.Tensor)
    assert out["examples"] == out["predictions"] == 20
    evaluator = create_evaluator(net, loss=CE)
    state = evaluator.run(test_iter)
    assert 0 <= state.metrics["acc"] <= 1 and state.metrics["loss"] > 0


def test_optimizer_over_foreign_parameters_is_rejected():
    net, other = small_cnn(), small_cnn()
    with pytest.raises(ValueError, match="not in the model"):
        create_trainer(net, CE, torch.optim.SGD(other.parameters(), 0.1))


@pytest.mark.parametrize("bad", [0, -1, 2.5, "3", True])
def test_bad_num_epochs(digits, bad):
    data, _ = loaders(*digits, 20, 0, 10)
    net = small_cnn()
    with pytest.raises(ValueError, match="num_epochs must be a positive int"):
        train_ch13(net, data, data, CE, torch.optim.SGD(net.parameters(), 0.1), bad, CPU)


def test_devices_default_and_validation():
    from engine import try_all_gpus
    from engine.devices import resolve_devices

    assert try_all_gpus()  # never empty
    assert resolve_devices(None) == try_all_gpus()
    with pytest.raises(ValueError, match="does not exist"):
        resolve_devices(["cuda:7"])
    with pytest.raises(ValueError, match="not a device name"):
        resolve_devices(["gpu0"])


def test_progress_bar_draws_without_breaking_numbers(digits, capsys):
    train_iter, test_iter = loaders(*digits, 200, 100, 20)
    a, b = small_cnn(), small_cnn()
    ha = train_ch13(a, train_iter, test_iter, CE, torch.optim.SGD(a.parameters(), 0.1), 2, CPU, progress=True,
                    plot=False, verbose=False)
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "%|" in err  # one tqdm bar on stderr, cleared at the end
    hb = train_ch13(b, train_iter, test_iter, CE, torch.optim.SGD(b.parameters(), 0.1), 2, CPU, progress=False,
                    plot=False, verbose=False)
    assert ha.train_loss == hb.train_loss and ha.test_acc == hb.test_acc


def test_a_dataloader_over_a_stream_without_len_trains():
    """Issue 38: ``DataLoader(IterableDataset)`` has ``__len__`` that raises: the streaming pattern trains."""
    from torch.utils.data import DataLoader, IterableDataset

    class Stream(IterableDataset):
        def __iter__(self):
            g = torch.Generator().manual_seed(0)
            for _ in range(40):
                yield torch.randn(4, generator=g), torch.randint(0, 3, (), generator=g)

    net = torch.nn.Linear(4, 3)
    history = train_ch13(net, DataLoader(Stream(), 8), DataLoader(Stream(), 8), CE,
                         torch.optim.SGD(net.parameters(), 0.1), 2, CPU, plot=False, verbose=False, progress=False)
    assert len(history.train_loss) == 2 and len(history.test_acc) == 2


def test_an_ema_decay_too_slow_for_the_run_is_said_at_start_with_one_that_fits(capsys):
    """Issue 38: ``--ema 0.999`` over 69 updates stayed at its start's test acc, with no word."""
    from engine.checks import check_ema

    check_ema(0.999, 69)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ema 0.999 averages over about 1000 updates and this run makes 69" in err
    assert "--ema 0.855" in err
    check_ema(0.9, 69)
    check_ema(None, 69)
    assert capsys.readouterr().err == ""


def test_the_command_a_run_tells_the_user_to_run_is_one_that_runs_here(tmp_path):
    """Issue 38: after ``make train`` ``d2l-ignite`` is not on PATH, yet the last line told the user to run it."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, PATH="/usr/bin:/bin", D2L_IGNITE_PLOT="0")
    done = subprocess.run([sys.executable, "-m", "engine.app", "train", "--epochs", "1", "--out", "runs/x"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("View them again any time: "))
    shown = line.split(": ", 1)[1].split(" visdom ")[0]
    assert shown == f"{sys.executable} -m engine.app"
    again = subprocess.run([*shown.split(), "runs", "runs"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert again.returncode == 0 and "runs/x" in again.stdout
