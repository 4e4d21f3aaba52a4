"""Ignite's MNIST Visdom example, in its shape (our own rewrite on small random data), with one import
line swapped from ``ignite.handlers.visdom_logger`` to ``handlers``: every point lands, nothing blocks,
no server raises nothing, and the windows stay after ``close()``."""
from __future__ import annotations

import pytest
import torch
from ignite.engine import Events, create_supervised_evaluator, create_supervised_trainer
from ignite.metrics import Accuracy, Loss
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from handlers import (  # the swapped line: from ignite.handlers.visdom_logger import ...
    GradsScalarHandler, LocalVisdom, VisdomLogger, WeightsScalarHandler, global_step_from_engine,
)
from visdom_util import record_counts, trace_counts


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LocalVisdom(env_path=str(tmp_path_factory.mktemp("visdom"))) as s:
        yield s


def mnist_like_run(vd_logger: VisdomLogger, epochs: int = 2, log_interval: int = 3) -> None:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(120, 1, 8, 8), torch.randint(0, 10, (120,)))
    train_loader, val_loader = DataLoader(data, 12, shuffle=True), DataLoader(data, 40)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
    criterion = nn.CrossEntropyLoss()
    trainer = create_supervised_trainer(model, optimizer, criterion)
    metrics = {"accuracy": Accuracy(), "nll": Loss(criterion)}
    train_evaluator = create_supervised_evaluator(model, metrics=metrics)
    validation_evaluator = create_supervised_evaluator(model, metrics=metrics)

    @trainer.on(Events.EPOCH_COMPLETED)
    def compute_metrics(engine):
        train_evaluator.run(train_loader)
        validation_evaluator.run(val_loader)

    vd_logger.attach_output_handler(trainer, Events.ITERATION_COMPLETED(every=log_interval), tag="training",
                                    output_transform=lambda loss: {"batchloss": loss})
    for tag, evaluator in [("training", train_evaluator), ("validation", validation_evaluator)]:
        vd_logger.attach_output_handler(evaluator, Events.EPOCH_COMPLETED, tag=tag, metric_names=["nll", "accuracy"],
                                        global_step_transform=global_step_from_engine(trainer))
    vd_logger.attach_opt_params_handler(trainer, Events.ITERATION_COMPLETED(every=5), optimizer)
    vd_logger.attach(trainer, log_handler=WeightsScalarHandler(model), event_name=Events.ITERATION_COMPLETED(every=10))
    vd_logger.attach(trainer, log_handler=GradsScalarHandler(model), event_name=Events.ITERATION_COMPLETED(every=10))
    trainer.run(train_loader, max_epochs=epochs)
    vd_logger.close()


def test_ignites_mnist_visdom_example_with_the_import_swapped(server, monkeypatch):
    host, port = server.url.rsplit(":", 1)
    monkeypatch.setenv("VISDOM_SERVER_URL", host)
    monkeypatch.setenv("VISDOM_PORT", port)
    vd_logger = VisdomLogger(env="ignite-mnist")
    mnist_like_run(vd_logger)
    assert vd_logger.plotter.missed is None
    count = lambda win: trace_counts(server.url, "ignite-mnist", win)[win]  # noqa: E731
    assert count("training/batchloss") == 6  # 20 iterations, every 3rd
    for win in ("training/nll", "training/accuracy", "validation/nll", "validation/accuracy"):
        assert count(win) == 2  # one per epoch, at the trainer's epoch (global_step_from_engine)
    assert count("lr/group_0") == 4
    assert count("weights_norm/1/weight") == 2 and count("grads_norm/3/bias") == 2
    assert trace_counts(server.url, "ignite-mnist", "validation/accuracy")  # still on the page after close()


def test_no_server_raises_nothing_and_keeps_every_point(tmp_path, monkeypatch):
    monkeypatch.setenv("VISDOM_SERVER_URL", "127.0.0.1")
    monkeypatch.setenv("VISDOM_PORT", "9")
    vd_logger = VisdomLogger(env="offline", out_dir=str(tmp_path))  # Ignite's raises here
    mnist_like_run(vd_logger)
    windows = record_counts(vd_logger.plotter.missed)
    assert sum(windows["training/batchloss"].values()) == 6 and sum(windows["validation/accuracy"].values()) == 2


def test_the_windows_x_axis_says_what_x_counts(tmp_path, monkeypatch):
    monkeypatch.setenv("VISDOM_PORT", "9")  # nothing answers: the labels are in the record
    vd_logger = VisdomLogger(env="labels", out_dir=str(tmp_path))
    mnist_like_run(vd_logger)
    labels = {name: w.opts.get("xlabel") for name, w in vd_logger.plotter.store.windows.items()}
    assert labels["training/batchloss"] == "iteration" and labels["validation/accuracy"] == "epoch"
    assert labels["lr/group_0"] == "iteration" and labels["weights_norm/1/weight"] == "iteration"


def test_a_window_per_parameter_makes_a_bounded_png(tmp_path, monkeypatch):
    from PIL import Image

    from handlers.plot.png import MAX_PANELS

    monkeypatch.setenv("VISDOM_PORT", "9")
    vd_logger = VisdomLogger(env="many", out_dir=str(tmp_path))
    model = nn.Sequential(*[nn.Linear(4, 4) for _ in range(100)])  # 200 parameters: 400 windows
    trainer = create_supervised_trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), nn.MSELoss())
    vd_logger.attach(trainer, log_handler=WeightsScalarHandler(model), event_name=Events.ITERATION_COMPLETED)
    vd_logger.attach(trainer, log_handler=GradsScalarHandler(model), event_name=Events.ITERATION_COMPLETED)
    trainer.run(DataLoader(TensorDataset(torch.randn(8, 4), torch.randn(8, 4)), 4), max_epochs=2)
    vd_logger.close()
    assert len(vd_logger.plotter.store.windows) == 400
    width, height = Image.open(tmp_path / "curves.png").size
    assert width <= 4 * 4.5 * 110 + 1 and height <= -(-MAX_PANELS // 4) * 3.2 * 110 + 1  # two panels: one a group
    assert (width, height) == (2 * 4.5 * 110, 3.2 * 110)
