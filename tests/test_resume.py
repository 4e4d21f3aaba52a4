"""A run killed (SIGKILL) mid-epoch or mid-checkpoint resumes to the uninterrupted run's numbers and weights."""
from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.slow  # several processes, servers or a browser: `make test`, not `make check`

JOB = os.path.join(os.path.dirname(__file__), "resume_job.py")
EPOCHS = 5


def job(out, *args, expect=0):
    r = subprocess.run([sys.executable, JOB, str(out), str(EPOCHS), *map(str, args)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == expect, r.stderr[-2000:]
    return r


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    printed = job(out).stdout.splitlines()[0]
    return torch.load(out / "final.pt", weights_only=True), printed


def same_run(a, b):
    for key in ("train_loss", "train_acc", "test_acc"):
        assert a["history"][key] == b["history"][key], key
    for name, w in a["weights"].items():
        assert torch.equal(w, b["weights"][name]), name


def test_sigkill_mid_epoch_then_resume_matches(uninterrupted, tmp_path):
    whole, printed = uninterrupted
    job(tmp_path, "--kill-at", 15 * 2 + 7, expect=-signal.SIGKILL)  # during epoch 3 (15 batches an epoch)
    assert [os.path.basename(f) for f in glob.glob(str(tmp_path / "last_*.pt"))] == ["last_checkpoint_2.pt"]
    resumed = job(tmp_path, "--resume", tmp_path)
    assert resumed.stdout.splitlines()[0] == printed
    same_run(torch.load(tmp_path / "final.pt", weights_only=True), whole)


def test_sigkill_inside_a_checkpoint_write_leaves_the_last_one_intact(uninterrupted, tmp_path):
    whole, _ = uninterrupted
    job(tmp_path, "--kill-in-save", 3, expect=-signal.SIGKILL)
    names = sorted(os.path.basename(f) for f in glob.glob(str(tmp_path / "*.pt")))
    assert "last_checkpoint_2.pt" in names and not any("_3" in n for n in names)
    job(tmp_path, "--resume", tmp_path / "last_checkpoint_2.pt")
    same_run(torch.load(tmp_path / "final.pt", weights_only=True), whole)


def _train(tmp_path, net, epochs=1, **kw):
    from conftest import loaders
    from engine import train_ch13
    from sklearn.datasets import load_digits

    d = load_digits()
    X = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    tr, te = loaders(X, torch.tensor(d.target), 128, 64, 32)
    opt = torch.optim.SGD(net.parameters(), 0.1)
    return train_ch13(net, tr, te, torch.nn.CrossEntropyLoss(reduction="none"), opt, epochs, ["cpu"], plot=False,
                      verbose=False, **kw)


def test_checkpoint_holds_every_part_and_fp16_scaler(tmp_path):
    from conftest import small_cnn

    _train(tmp_path, small_cnn(), 2, amp="fp16", checkpoint_dir=str(tmp_path), early_stopping=3)
    names = sorted(os.listdir(tmp_path))
    assert names[0].startswith("best_checkpoint_") and names[1] == "last_checkpoint_2.pt" and len(names) == 2
    state = torch.load(tmp_path / "last_checkpoint_2.pt", weights_only=True)
    assert {"model", "optimizer", "trainer", "history", "timer", "rng", "scaler", "early_stopping"} <= set(state)
    assert state["scaler"]["scale"] > 0 and len(state["history"]["test_acc"]) == 2


@pytest.mark.parametrize("case, message", [
    ("other model", "weights of another model"),
    ("truncated", "not a readable checkpoint"),
    ("not a checkpoint", "not a readable checkpoint"),
    ("a tensor", "holds a Tensor"),
    ("missing", "does not exist"),
    ("empty folder", "no last_checkpoint"),
    ("finished", "already completed 1 epochs"),
])
def test_bad_checkpoints_are_named_and_the_model_is_untouched(tmp_path, case, message):
    from conftest import small_cnn

    run = tmp_path / "run"
    _train(tmp_path, small_cnn(), 1, checkpoint_dir=str(run))
    good = run / "last_checkpoint_1.pt"
    target = str(good)
    net = small_cnn(seed=5)
    if case == "other model":
        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    elif case == "truncated":
        target = str(tmp_path / "cut.pt")
        data = good.read_bytes()
        open(target, "wb").write(data[: len(data) // 2])
    elif case == "not a checkpoint":
        target = str(tmp_path / "notes.pt")
        open(target, "w").write("hello")
    elif case == "a tensor":
        target = str(tmp_path / "t.pt")
        torch.save(torch.zeros(3), target)
    elif case == "missing":
        target = str(tmp_path / "nope.pt")
    elif case == "empty folder":
        target = str(tmp_path)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        _train(tmp_path, net, 1, resume=target)
    if case != "finished":
        assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    assert good.exists()
