"""Live plots against a real Visdom server: series, counts, faults, replay of the record, the saved env."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch
from ignite.engine import Events
from torch import nn

from conftest import loaders, small_cnn
from engine import train_ch13
from handlers import LocalVisdom, VisdomPlotter
from handlers.local import free_port
from visdom_util import HungServer, record_counts, trace_counts, window

CE = nn.CrossEntropyLoss(reduction="none")
WIN = "train_ch13"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LocalVisdom(env_path=str(tmp_path_factory.mktemp("visdom"))) as s:
        yield s


def run(digits, plotter, epochs=2, n_train=200, batch=20, on_epoch=None):
    """10 batches an epoch: points at batches 2, 4, 6, 8, 10 -> 5 train points an epoch."""
    train_iter, test_iter = loaders(*digits, n_train, 100, batch)
    net = small_cnn()
    t0 = time.perf_counter()
    chaos = [lambda trainer, _: trainer.add_event_handler(Events.EPOCH_COMPLETED, on_epoch)] if on_epoch else []
    h = train_ch13(net, train_iter, test_iter, CE, torch.optim.SGD(net.parameters(), 0.1), epochs, ["cpu"],
                   progress=False, verbose=False, plot=plotter, handlers=chaos)
    seconds = time.perf_counter() - t0
    assert not plotter.closed  # a plotter passed in is flushed, not closed: its creator closes it
    plotter.close()
    return h, seconds


def test_book_window_on_server(digits, server, tmp_path):
    plotter = VisdomPlotter(server.url, env="book", out_dir=str(tmp_path))
    h, _ = run(digits, plotter, epochs=3)
    assert plotter.missed is None
    assert trace_counts(server.url, "book", WIN) == {"train loss": 15, "train acc": 15, "test acc": 3}
    w = window(server.url, "book", WIN)
    data = {t["name"]: t for t in w["content"]["data"]}
    assert data["test acc"]["x"] == [1.0, 2.0, 3.0]
    assert data["test acc"]["y"] == pytest.approx(h.test_acc)
    assert data["train loss"]["x"][:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert data["train loss"]["y"][4] == pytest.approx(h.train_loss[0])
    layout = w["content"]["layout"]
    top = max(max(t["y"]) for t in data.values())
    assert layout["xaxis"]["range"] == [0, 3] and layout["yaxis"]["range"][0] == 0  # every point in frame:
    assert max(1, top) <= layout["yaxis"]["range"][1] <= max(1, top) * 1.06  # a loss above 1 grows the top
    assert data["train loss"]["mode"] == "lines+markers" and w["title"].startswith("train_ch13: Sequential, SGD lr 0.1")
    assert layout["xaxis"]["title"] == "epoch"
    assert os.path.exists(os.path.join(server.env_path, "book.json"))  # env saved at the end
    assert os.path.getsize(tmp_path / "curves.png") > 5000


def test_general_plotter_any_series_any_event(digits, server):
    from engine import create_trainer

    train_iter, _ = loaders(*digits, 200, 0, 20)
    net = small_cnn()
    trainer = create_trainer(net, CE, torch.optim.SGD(net.parameters(), 0.1))
    plotter = VisdomPlotter(server.url, env="custom")
    plotter.attach(trainer, Events.ITERATION_COMPLETED(every=3), {"batch loss": lambda e: e.state.output["loss"] / 20},
                   window="loss")
    plotter.attach(trainer, Events.EPOCH_COMPLETED, {"lr": lambda e: 0.1}, x=lambda e: e.state.epoch, window="lr")
    trainer.run(train_iter, max_epochs=3)
    assert not plotter.closed and plotter.flush()  # attaching never closes; flush waits for delivery
    trainer.run(train_iter, max_epochs=4)  # the same plotter keeps plotting a further run
    assert plotter.close()
    assert trace_counts(server.url, "custom", "lr") == {"lr": 4}
    assert trace_counts(server.url, "custom", "loss") == {"batch loss": 13}


def replay_and_count(run: str, url: str, env: str) -> dict[str, int]:
    over_ssh = dict(os.environ, SSH_CONNECTION="1 2 6.7.8.9 22")
    done = subprocess.run([sys.executable, "-m", "engine.app", "replay", run, "--visdom", url],
                          capture_output=True, text=True, timeout=60, env=over_ssh)
    assert done.returncode == 0, done.stderr
    assert "@6.7.8.9`" in done.stdout  # over SSH, the tunnel to the printed link
    points = sum(n for traces in record_counts(run).values() for n in traces.values())
    assert f"Sent {points} points of env {env}: {url}/env/{env}" in done.stdout
    return trace_counts(url, env, WIN)


def test_refused_server_points_are_kept_and_replayed(digits, server, tmp_path, capfd):
    url = f"http://127.0.0.1:{free_port()}"
    plotter = VisdomPlotter(url, env="refused", out_dir=str(tmp_path))
    run(digits, plotter)
    err = capfd.readouterr().err
    assert err.count("cannot reach") == 1  # said once
    assert f"replay {tmp_path}" in err and plotter.missed == str(tmp_path)
    assert replay_and_count(plotter.missed, server.url, "refused") == {"train loss": 10, "train acc": 10,
                                                                             "test acc": 2}


def test_hung_server_never_blocks_training(digits, server, tmp_path):
    hung = HungServer()
    try:
        plotter = VisdomPlotter(f"http://127.0.0.1:{hung.port}", env="hung", out_dir=str(tmp_path),
                                connect_timeout=1, read_timeout=60, close_timeout=1)
        _, seconds = run(digits, plotter)
    finally:
        hung.close()
    assert seconds < 30  # a blocking client would sit in its first request for the 60 s read timeout
    assert replay_and_count(plotter.missed, server.url, "hung") == {"train loss": 10, "train acc": 10,
                                                                          "test acc": 2}


def test_server_killed_and_restarted_mid_run(digits, tmp_path, capfd):
    port = free_port()
    env_path = str(tmp_path / "visdom")
    first = LocalVisdom(port, env_path=env_path).start()
    state = {"server": first}

    def chaos(engine):
        if engine.state.epoch == 1:
            state["server"].process.kill()  # SIGKILL: the server loses everything not saved
            state["server"].process.wait()
        if engine.state.epoch == 3:
            state["server"] = LocalVisdom(port, env_path=env_path).start()

    plotter = VisdomPlotter(f"http://127.0.0.1:{port}", env="chaos", out_dir=str(tmp_path))
    try:
        run(digits, plotter, epochs=5, on_epoch=chaos)
        counts = trace_counts(state["server"].url, "chaos", WIN)
    finally:
        state["server"].stop()
    err = capfd.readouterr().err
    assert "cannot reach" in err and "reconnected" in err
    assert plotter.missed is None
    assert counts == {"train loss": 25, "train acc": 25, "test acc": 5}


def test_malformed_url_is_rejected():
    for bad in ["http://", "ftp://host:1", "http://host:notaport", "http://a b:80"]:
        with pytest.raises(ValueError, match="Visdom URL"):
            VisdomPlotter(bad)


def test_plot_record_round_trips_for_checkpoints(server):
    a = VisdomPlotter(server.url, env="resume")
    a.window("w", ["x"])
    for i in range(4):
        a.add("w", "x", float(i), torch.tensor(i / 10))
    assert a.close()
    b = VisdomPlotter(server.url, env="resume")
    b.load_state_dict(a.state_dict())
    b.add("w", "x", 4.0, 0.4)
    assert b.close()
    assert trace_counts(server.url, "resume", "w") == {"x": 5}
