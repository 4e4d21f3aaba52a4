"""Faults a run survives without losing anything: Ctrl-C, a nan loss, a full disk, an unusable folder.

(Visdom refused / hung / killed / restarted: test_visdom.py. SIGKILL mid-epoch and mid-write: test_resume.py.)
"""
from __future__ import annotations

import errno
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import torch
from ignite.engine import Events
from torch import nn

from conftest import loaders, small_cnn
from engine import train_ch13
from handlers import VisdomPlotter

CE = nn.CrossEntropyLoss(reduction="none")


def run(digits, folder, epochs=3, handlers=(), plot=False, **kw):
    X, y = digits
    tr, te = loaders(X, y, 320, 128, 32)  # 10 batches an epoch
    net = small_cnn()
    history = train_ch13(net, tr, te, CE, torch.optim.SGD(net.parameters(), 0.05), epochs, ["cpu"], plot=plot,
                         verbose=False, checkpoint_dir=str(folder), handlers=handlers, **kw)
    return net, history


def at(iteration, action):
    return lambda trainer, _: trainer.add_event_handler(Events.ITERATION_STARTED(once=iteration), action)


def test_ctrl_c_stops_cleanly_saves_flushes_and_resumes(digits, tmp_path, capsys):
    # the suite may run with SIGINT ignored (nohup, a background job): this test sets what it needs
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _ctrl_c_then_resume(digits, tmp_path, capsys)
    finally:
        signal.signal(signal.SIGINT, previous)


def _ctrl_c_then_resume(digits, tmp_path, capsys):
    plots = str(tmp_path / "plots")
    with VisdomPlotter("http://127.0.0.1:9", "sigint", out_dir=plots, connect_timeout=0.2) as plotter, \
            pytest.raises(KeyboardInterrupt):
        run(digits, tmp_path / "ck", 3, [at(15, lambda _: os.kill(os.getpid(), signal.SIGINT))], plot=plotter)
    err = capsys.readouterr().err
    saved = tmp_path / "ck" / "interrupted_checkpoint_15.pt"  # asked before step 15: it stops once that step's
    assert f"Interrupted at epoch 2, iteration 15: saved {saved}" in err and "resume=" in err  # update is whole
    assert torch.load(saved, weights_only=True)["trainer"]["iteration"] == 15
    assert plotter.missed == plots and (tmp_path / "plots" / "curves.npz").exists()  # the plot was closed
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C is the program's again
    _, history = run(digits, tmp_path / "ck2", 3, resume=str(tmp_path / "ck"))
    assert len(history.test_acc) == 3
    assert sorted(os.listdir(tmp_path / "ck2"))[-1] == "last_checkpoint_3.pt"


@pytest.mark.slow
def test_ctrl_c_from_outside_the_cli(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "engine.app", "train", "--epochs", "200", "--no-plot",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    deadline = time.time() + 120
    while not (out / "last_checkpoint_1.pt").exists() and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Interrupted at epoch" in err and "--resume" in err and "Traceback" not in err
    assert any(n.startswith("interrupted_checkpoint_") for n in os.listdir(out))


def poison(engine):
    X, y = engine.state.batch
    engine.state.batch = (torch.full_like(X, float("nan")), y)


@pytest.mark.parametrize("where", ["absolute", "relative"])
def test_nan_loss_stops_naming_the_iteration_and_keeps_the_good_checkpoint(digits, tmp_path, where):
    folder = tmp_path if where == "absolute" else pathlib.Path("ck")  # tests run inside tmp_path
    with pytest.raises(FloatingPointError, match=r"nan or inf at iteration 13 \(epoch 2\)") as e:
        run(digits, folder, 3, [at(13, poison)])
    good = folder / "last_checkpoint_1.pt"
    assert f"checkpoint is kept: {good}." in str(e.value)
    assert sorted(n for n in os.listdir(folder) if n.startswith("last")) == ["last_checkpoint_1.pt"]
    weights = torch.load(good, weights_only=True)["model"]
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


def test_disk_full_during_a_write_keeps_the_previous_checkpoint(digits, tmp_path, monkeypatch):
    real = torch.save

    def full(obj, f, *a, **kw):
        if isinstance(obj, dict) and obj.get("trainer", {}).get("iteration") == 20:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match="failed .No space left on device.; the previous checkpoint is kept"):
        run(digits, tmp_path, 3)
    assert sorted(os.listdir(tmp_path)) == ["best_checkpoint_1_test_acc=" + _acc(tmp_path) + ".pt",
                                            "last_checkpoint_1.pt"]  # no temporary file left behind
    torch.load(tmp_path / "last_checkpoint_1.pt", weights_only=True)


def _acc(folder):
    return next(n for n in os.listdir(folder) if n.startswith("best")).split("=")[1][:-3]


@pytest.mark.parametrize("problem", ["file in the way", "no space", "not writable"])
def test_unusable_checkpoint_folder_fails_before_training(digits, tmp_path, monkeypatch, problem):
    folder = tmp_path / "ck"
    if problem == "file in the way":
        folder.write_text("not a folder")
    elif problem == "no space":
        import shutil
        monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    else:
        import tempfile

        def refuse(*a, **kw):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    started = []
    message = {"file in the way": "is a file", "no space": "not enough free space", "not writable": "not writable"}
    with pytest.raises(OSError, match=message[problem]):
        run(digits, folder, 1, [lambda tr, _: tr.add_event_handler(Events.STARTED, lambda _: started.append(1))])
    assert not started
    if problem != "file in the way":
        assert not folder.exists()  # the folder it made for nothing is gone


class Seen(torch.utils.data.Dataset):
    """The digits, noting each index read: which examples an epoch trained."""

    def __init__(self, X, y, log):
        self.X, self.y, self.log = X, y, log

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        self.log.append(int(i))
        return self.X[i], self.y[i]


@pytest.mark.parametrize("batch_after", [32, 16], ids=["same batch size", "half the batch size"])
def test_a_resumed_interrupted_epoch_sees_each_remaining_example_once(digits, tmp_path, capsys, batch_after):
    """Ctrl-C in epoch 2 (before step 15, which still runs), resume: epoch 2 goes on with the examples it had not
    seen, and (same batch size) the run ends with the weights, dropout draws included, of the run never interrupted."""
    from torch.utils.data import DataLoader

    X, y = digits
    X, y = X[:320], y[:320]

    def go(folder, log, handlers=(), batch=32, **kw):
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(5)
        tr = DataLoader(Seen(X, y, log), batch, shuffle=True, generator=g)
        net = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(64, 10))  # dropout: the model's draws too
        train_ch13(net, tr, [(X[:64], y[:64])], CE, torch.optim.SGD(net.parameters(), 0.05), 3, ["cpu"],
                   plot=False, verbose=False, checkpoint_dir=str(folder), handlers=handlers, **kw)
        return net

    whole_log: list = []
    whole = go(tmp_path / "whole", whole_log)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    cut_log: list = []
    try:
        with pytest.raises(KeyboardInterrupt):
            go(tmp_path / "cut", cut_log, [at(15, lambda _: os.kill(os.getpid(), signal.SIGINT))])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert "that epoch goes on with the examples it had not seen" in capsys.readouterr().err
    resumed_log: list = []
    torch.manual_seed(123)  # whatever the new process's state: the checkpoint's is put back
    resumed = go(tmp_path / "again", resumed_log, batch=batch_after, resume=str(tmp_path / "cut"))
    trained = cut_log[320:]  # epoch 2 before the Ctrl-C
    skipped = len(trained)  # read again to draw the same order, and dropped
    assert resumed_log[:skipped] == trained[:skipped]
    epoch2 = trained + resumed_log[skipped:skipped + 320 - len(trained)]
    assert sorted(epoch2) == list(range(320))  # each example of epoch 2 once
    assert len(resumed_log) == skipped + 320 - len(trained) + 320
    if batch_after == 32:
        assert epoch2 == whole_log[320:640]  # the same order as the uninterrupted run
        for a, b in zip(whole.parameters(), resumed.parameters()):
            torch.testing.assert_close(a, b)
    else:
        assert "the interrupted epoch had 5 of 10 batches; it goes on after batch 10 of this run's 20" in \
            capsys.readouterr().err
