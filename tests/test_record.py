"""The run's record first (issue 34): every run, whatever the plot setting, leaves its curves, PNG, env and
``run.json``; back-ends are leaves over it (off, Visdom, TensorBoard); runs are named, listed and compared by
what differs between them; the plots people use (lines, log y, labelled axes, one window order)."""
from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from engine import train_ch13
from handlers.plot.base import Plotter
from handlers.plot.record import read_points
from handlers.plot.windows import attach_book_plot
from conftest import loaders, small_cnn


def _cli(*args: str, cwd, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.app", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env=dict(os.environ, **(env or {})))


def _counts(record: str) -> dict[str, int]:
    return {f"{w}/{t}": len(xs) for w, _, traces in read_points(record) for t, (xs, _) in traces.items()}


def test_plots_off_still_leave_the_whole_record_and_export_reads_it(tmp_path):
    done = _cli("train", "--epochs", "1", "--out", "runs/batch-job", cwd=tmp_path, env={"D2L_IGNITE_PLOT": "0"})
    assert done.returncode == 0, done.stderr
    run = tmp_path / "runs" / "batch-job"
    assert {"curves.npz", "curves.png", "run.json"} <= set(os.listdir(run))
    assert (run / "visdom" / "batch-job.json").is_file()  # the env `d2l-ignite visdom` serves later
    assert "Live plots" not in done.stdout
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["name"] == "batch-job" and manifest["status"] == "finished"
    assert manifest["hyperparameters"]["lr"] == 0.01 and manifest["hyperparameters"]["batch_size"] == 64
    assert manifest["final"]["epochs"] == 1 and 0 <= manifest["final"]["test_acc"] <= 1
    assert manifest["argv"][1:] == ["train", "--epochs", "1", "--out", "runs/batch-job"]
    assert {"python", "torch", "pytorch-ignite"} <= set(manifest["versions"]) and manifest["started"]
    exported = _cli("export", "runs/batch-job", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert (run / "curves.html").stat().st_size > 1000 and (run / "curves.csv").read_text().count("\n") > 5


def test_a_manifest_records_the_checkout_and_a_failed_run(tmp_path, monkeypatch):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                    "--allow-empty", "-m", "x"], check=True)
    monkeypatch.chdir(tmp_path)
    X, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    train_iter, test_iter = loaders(X, y, 48, 16, 16)
    net = small_cnn()
    with pytest.raises(FloatingPointError):
        train_ch13(net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"),
                   torch.optim.SGD(net.parameters(), lr=1e9), 1, plot="off", out_dir="runs/diverged",
                   verbose=False, progress=False)
    manifest = json.loads((tmp_path / "runs" / "diverged" / "run.json").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=tmp_path).stdout.strip()
    assert manifest["git"] == head and manifest["status"] == "failed" and manifest["ended"]
    assert manifest["hyperparameters"]["optimizer"] == "SGD" and manifest["hyperparameters"]["lr"] == 1e9


def test_tensorboard_back_end_writes_every_point_tensorboard_reads(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    done = _cli("train", "--epochs", "2", "--plot", "tensorboard", "--out", "runs/tb", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "runs" / "tb"
    events = glob.glob(str(run / "tensorboard" / "events.out.tfevents.*"))
    assert events and f"view: tensorboard --logdir {run / 'tensorboard'}" in done.stdout
    reader = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    reader.Reload()
    counts = {tag: len(reader.Scalars(tag)) for tag in reader.Tags()["scalars"]}
    assert counts == {k: n for k, n in _counts(str(run / "curves.npz")).items()}  # every point, in both records
    assert counts["train_ch13/test acc"] == 2 and counts["lr/lr"] > 20
    steps = [e.step for e in reader.Scalars("train_ch13/train loss")]
    assert steps == sorted(steps) and steps[-1] == reader.Scalars("lr/lr")[-1].step  # whole iterations


def test_a_plot_back_end_name_that_is_not_one_is_a_clear_line(tmp_path):
    done = _cli("train", "--epochs", "1", "--out", "runs/x", cwd=tmp_path, env={"D2L_IGNITE_PLOT": "matplotlib"})
    assert done.returncode == 2 and "D2L_IGNITE_PLOT='matplotlib' names no plot back-end" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "runs" / "x").exists()
    done = _cli("train", "--plot", "nope", cwd=tmp_path)
    assert done.returncode == 2 and "invalid choice: 'nope'" in done.stderr


def test_runs_are_named_listed_and_labelled_by_what_differs(tmp_path):
    for lr in ("0.01", "0.003"):
        done = _cli("train", "--epochs", "1", "--lr", lr, "--out", f"runs/lr-{lr}", cwd=tmp_path,
                    env={"D2L_IGNITE_PLOT": "0"})
        assert done.returncode == 0, done.stderr
    named = _cli("train", "--epochs", "1", "--name", "baseline", "--no-plot", cwd=tmp_path)
    assert named.returncode == 0 and (tmp_path / "runs" / "baseline" / "visdom" / "baseline.json").is_file()
    bad = _cli("train", "--epochs", "1", "--name", "../up", "--no-plot", cwd=tmp_path)
    assert bad.returncode == 2 and "--name '../up' cannot name a run" in bad.stderr
    listed = _cli("runs", cwd=tmp_path)
    rows = listed.stdout.strip().splitlines()
    assert len(rows) == 3 and all(re.search(r"finished  1 epochs  train loss [\d.]+, train acc [\d.]+, test acc", r)
                                  for r in rows), listed.stdout
    from engine.app.runs import run_labels

    os.chdir(tmp_path)
    assert run_labels(["runs/lr-0.01", "runs/lr-0.003"]) == ["lr 0.01", "lr 0.003"]
    assert run_labels(["runs/lr-0.01", "runs/baseline"]) == ["lr-0.01", "baseline"]  # nothing differs: names


def test_the_book_window_draws_lines_on_labelled_axes_in_one_order(tmp_path):
    from ignite.engine import Engine

    from handlers.plot.record import page_message

    plotter = Plotter("order", out_dir=str(tmp_path))
    trainer, evaluator = Engine(lambda e, b: None), Engine(lambda e, b: None)
    for name in ("zeta", "alpha"):
        plotter.window(name, ["t"])
    attach_book_plot(plotter, trainer, evaluator, num_epochs=10)
    short = attach_book_plot(Plotter("short"), trainer, evaluator, num_epochs=2)
    assert plotter.store.windows["train_ch13"].opts["markers"] is False  # lines: Visdom can smooth them
    assert short.store.windows["train_ch13"].opts["markers"] is True  # a handful of points: markers too
    for i, name in enumerate(["zeta", "alpha", "train_ch13"]):
        plotter.add(name, "t" if name != "train_ch13" else "train loss", 0.5, 0.1 * (i + 1))
    msg, _ = page_message(plotter.store, "order", "train_ch13")
    assert {d["mode"] for d in msg["data"]} == {"lines"} and msg["layout"]["xaxis"]["title"] == "epoch"
    assert msg["layout"]["title"]["xanchor"] == "left"  # clear of Plotly's toolbar at the top right
    plotter.close()
    saved = json.loads((tmp_path / "visdom" / "order.json").read_text())["jsons"]
    assert sorted(saved, key=lambda w: saved[w]["i"]) == ["zeta", "alpha", "train_ch13"]
    log = Plotter("log")
    log.window("loss", ["loss"], log_y=True, ylim=(0, 1))
    assert log.store.windows["loss"].opts["ytype"] == "log" and "ytickmin" not in log.store.windows["loss"].opts
    log.closed = True


def test_the_sender_draws_windows_in_the_records_order():
    from handlers.plot.sender import Sender
    from handlers.plot.store import PlotStore

    store, posted = PlotStore(), []
    for name in ("zeta", "alpha", "mid"):
        store.window(name, {"title": name, "legend": ["t"]})
        store.add(name, "t", 1.0, 2.0)
    sender = Sender(store, "http://127.0.0.1:9", "e")
    sender.wire.post = lambda endpoint, msg: posted.append(msg["win"]) or "true"  # type: ignore[method-assign]
    sender.wire.connect = lambda: None  # type: ignore[method-assign]
    sender._full.update(store.windows)
    sender._send(set())
    assert posted == ["zeta", "alpha", "mid"]


def test_over_ssh_the_hint_names_the_host_and_port_the_session_came_in_on(monkeypatch):
    import getpass

    from handlers.plot.links import ssh_hint

    monkeypatch.setenv("SSH_CONNECTION", "1.2.3.4 5 6.7.8.9 22")
    assert f"ssh -N -L 8123:127.0.0.1:8123 {getpass.getuser()}@6.7.8.9`" in ssh_hint("http://127.0.0.1:8123/env/e")
    monkeypatch.setenv("SSH_CONNECTION", "1.2.3.4 5 6.7.8.9 2222")
    assert "-p 2222 " in ssh_hint("http://127.0.0.1:8123/env/e")
    monkeypatch.setenv("SSH_CONNECTION", "1.2.3.4 5 6.7.8.9 22")
    port = __import__("handlers.local").local.free_port()
    served = subprocess.Popen([sys.executable, "-m", "engine.app", "visdom", "--port", str(port), "--env-path", "v"],
                              stdout=subprocess.PIPE, text=True, env=dict(os.environ, SSH_CONNECTION="1 2 6.7.8.9 22"))
    try:
        lines = [served.stdout.readline(), served.stdout.readline()]
    finally:
        served.terminate()
        served.wait(30)
    assert "@6.7.8.9`" in lines[1], lines


def _short_run(**kwargs) -> None:
    torch.manual_seed(0)
    X, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    train_iter, test_iter = loaders(X, y, 48, 16, 16)
    net = small_cnn()
    train_ch13(net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"),
               torch.optim.SGD(net.parameters(), lr=0.1), 1, verbose=False, progress=False, **kwargs)


def test_the_record_alone_when_plot_is_off_or_out_dir_is_given(tmp_path):
    import threading

    for plot, folder in (("off", "runs/off"), (False, "runs/false")):
        _short_run(plot=plot, out_dir=str(tmp_path / folder))
        for thread in threading.enumerate():
            if thread.name == "curves-png":  # drawn off the caller's thread; the interpreter waits for it at exit
                thread.join()
        assert _counts(str(tmp_path / folder / "curves.npz"))["train_ch13/test acc"] == 1
        assert (tmp_path / folder / "run.json").is_file() and (tmp_path / folder / "curves.png").is_file()
    before = set(os.listdir(tmp_path))
    _short_run(plot=False)
    assert set(os.listdir(tmp_path)) == before  # plot=False and no out_dir: nothing written
    _, _, traces = read_points(str(tmp_path / "runs/off/curves.npz"), times=True)[0]
    xs, ys, ts = traces["train loss"]
    assert len(ts) == len(xs) and (np.diff(ts) >= 0).all() and abs(ts[-1] - __import__("time").time()) < 600
