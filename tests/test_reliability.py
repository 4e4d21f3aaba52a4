"""Reliability, round 2: each case found by trying to break the landed project, each with its new message."""
from __future__ import annotations

import contextlib
import copy
import os
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import time

import pytest
import torch
from conftest import loaders, small_cnn
from ignite.engine import Events
from torch import nn

from engine import train_ch13
from handlers import CheckpointError, LocalVisdom, VisdomPlotter
from visdom_util import record_counts
from handlers.local import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CE = nn.CrossEntropyLoss(reduction="none")
NO_NET = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}  # downloads fail at once


def train(digits, *, train_iter=None, test_iter=None, net=None, epochs=2, optimizer=None, **kw):
    tr, te = loaders(*digits, 64, 32, 16)
    net = small_cnn() if net is None else net
    if optimizer is None:  # a net that is no module still gets an optimizer, so the net is what fails
        optimizer = torch.optim.SGD((net if isinstance(net, nn.Module) else small_cnn()).parameters(), 0.1)
    return train_ch13(net, tr if train_iter is None else train_iter, te if test_iter is None else test_iter, CE,
                      optimizer, epochs, plot=False, verbose=False, **kw)


def test_a_one_shot_train_iter_is_refused_for_several_epochs(digits):
    tr, _ = loaders(*digits, 64, 32, 16)
    for one_shot in (iter(list(tr)), (batch for batch in tr)):
        with pytest.raises(ValueError, match=r"train_iter is a one-shot iterator .* 2 epochs were asked for; pass "
                                             r"something that can be iterated again, such as the DataLoader"):
            train(digits, train_iter=one_shot, epochs=2)
    assert len(train(digits, train_iter=(b for b in tr), test_iter=iter(list(tr)), epochs=1).train_loss) == 1


class NoLen:
    """Re-iterable, without len(), yielding what it was given."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


@pytest.mark.parametrize("which", ["train_iter", "test_iter"])
@pytest.mark.parametrize("empty", ["generator", "no len"])
def test_empty_data_without_len_is_named_before_the_first_step(digits, which, empty):
    started = []
    data = (b for b in []) if empty == "generator" else NoLen([])
    with pytest.raises(ValueError, match=rf"{which} yields no batches"):
        train(digits, epochs=1,
              handlers=[lambda t, _: t.add_event_handler(Events.STARTED, lambda _: started.append(1))],
              **{which: data})
    assert not started


def test_a_test_iter_of_empty_batches_is_named(digits):
    empty = NoLen([(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))])
    with pytest.raises(ValueError, match="test_iter gave no non-empty batch in epoch 1"):
        train(digits, test_iter=empty, epochs=1)


def test_a_net_that_is_not_a_module_is_named(digits):
    with pytest.raises(TypeError, match="net must be a torch.nn.Module .*got str"):
        train(digits, net="resnet18")


@pytest.mark.parametrize("case", ["frozen model", "detached prediction", "integer loss"])
def test_a_loss_that_cannot_backpropagate_is_named(digits, case):
    net = small_cnn()
    loss = CE
    if case == "frozen model":
        net.requires_grad_(False)
    elif case == "detached prediction":
        loss = lambda y_hat, y: CE(y_hat.detach(), y)  # noqa: E731
    else:
        loss = lambda y_hat, y: (y_hat.argmax(1) != y).long()  # noqa: E731
    tr, te = loaders(*digits, 64, 32, 16)
    with pytest.raises(ValueError, match="the loss does not depend on any trainable parameter"):
        train_ch13(net, tr, te, loss, torch.optim.SGD(net.parameters(), 0.1), 1, plot=False)


@pytest.mark.parametrize("device, message", [("meta", "'meta' holds no data"), ("xpu", "xpu is not available"),
                                             ("mps", "mps is not available")])
def test_every_device_type_is_checked_before_the_model_moves(digits, device, message):
    net = small_cnn()
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(ValueError, match=message):
        train(digits, net=net, devices=[device])
    assert all(torch.equal(before[k], v) and v.device.type == "cpu" for k, v in net.state_dict().items())


def cli(*args, cwd, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "engine.app", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, **(env or {})))


@pytest.mark.slow
def test_runs_started_together_never_share_a_folder(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-m", "engine.app", "train", "--epochs", "1", "--no-plot"],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-500:] for _, e in outs]
    folders = sorted(os.listdir(tmp_path / "runs"))
    assert len(folders) == 3 and all(os.path.exists(tmp_path / "runs" / f / "last_checkpoint_1.pt") for f in folders)
    (tmp_path / "empty").mkdir()
    reused = cli("train", "--epochs", "1", "--no-plot", "--out", "empty", cwd=tmp_path)
    assert reused.returncode == 2 and "run folder empty already exists; choose a new --out" in reused.stderr


@pytest.mark.slow
def test_resume_uses_the_lr_and_epochs_given_now_and_says_so(tmp_path):
    first = cli("train", "--epochs", "2", "--no-plot", "--out", "a", "--lr", "0.01", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = cli("train", "--epochs", "3", "--no-plot", "--out", "b", "--lr", "0.0001", "--resume", "a", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "lr 0.0001 instead of the saved 0.01" in again.stderr
    assert "the lr schedule is this run's CosineAnnealingLR, fast-forwarded to update 46" in again.stderr
    saved = torch.load(tmp_path / "b" / "last_checkpoint_3.pt", weights_only=True)
    assert saved["optimizer"]["param_groups"][0]["initial_lr"] == 0.0001 and saved["trainer"]["iteration"] == 3 * 23


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_a_resumed_schedule_is_rebuilt_for_the_new_total(digits, tmp_path, schedule):
    tr, te = loaders(*digits, 64, 32, 16)  # 4 updates an epoch

    def make(net, epochs):
        opt = torch.optim.SGD(net.parameters(), 0.1)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4 * epochs) if schedule == "cosine" else \
            torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=4 * epochs)
        return opt, sched

    def run(net, epochs, record, **kw):
        opt, sched = make(net, epochs)
        def seen(t, _):
            t.add_event_handler(Events.ITERATION_STARTED, lambda _: record.append(opt.param_groups[0]["lr"]))

        train_ch13(net, tr, te, CE, opt, epochs, plot=False, verbose=False, lr_scheduler=sched, handlers=[seen], **kw)

    whole, part = [], []
    run(small_cnn(), 6, whole)
    net = small_cnn()
    run(net, 3, [], checkpoint_dir=str(tmp_path / "a"))
    run(net, 6, part, checkpoint_dir=str(tmp_path / "b"), resume=str(tmp_path / "a"))
    assert part == pytest.approx(whole[12:])  # epochs 4-6 follow the 6-epoch schedule, no climb, no crash


def test_resuming_with_another_optimizer_changes_nothing(digits, tmp_path):
    net = small_cnn()
    train(digits, net=net, optimizer=torch.optim.Adam(net.parameters(), 1e-3), checkpoint_dir=str(tmp_path / "a"))
    other = small_cnn(seed=3)
    weights = copy.deepcopy(other.state_dict())
    sgd = torch.optim.SGD(other.parameters(), 0.1, momentum=0.9)
    groups = copy.deepcopy(sgd.state_dict()["param_groups"])
    with pytest.raises(CheckpointError, match=r"optimizer: the checkpoint holds another optimizer's state \(settings "
                                              r"\['amsgrad', 'betas'.*are not SGD's\)"):
        train(digits, net=other, optimizer=sgd, epochs=3, resume=str(tmp_path / "a"))
    assert all(torch.equal(weights[k], v) for k, v in other.state_dict().items())
    assert sgd.state_dict()["param_groups"] == groups


@pytest.mark.slow
def test_nproc_per_node_picks_a_free_master_port_and_names_a_busy_one(tmp_path):
    with socket.socket() as busy, socket.socket() as old_default:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = cli("train", "--nproc-per-node", "2", "--epochs", "1", "--no-plot", "--out", "x",
                    "--master-port", str(port), cwd=tmp_path)
        assert taken.returncode == 2 and f"--master-port {port} is in use on 127.0.0.1" in taken.stderr
        assert "Traceback" not in taken.stderr
        try:  # the port every run used to take
            old_default.bind(("127.0.0.1", 2222))
            old_default.listen()
        except OSError:
            pass  # already taken by something else: just as busy
        ok = cli("train", "--nproc-per-node", "2", "--epochs", "1", "--no-plot", "--out", "y", cwd=tmp_path)
        assert ok.returncode == 0, ok.stderr[-2000:]


def test_single_node_rendezvous_listens_on_no_port():
    from engine.app.launch import _local_rendezvous

    where = _local_rendezvous(None, None)
    assert where["init_method"].startswith("file://") and oct(os.stat(where["init_method"][7:-6]).st_mode)[-3:] == \
        "700"  # a file in a folder of this user's: no TCP store, nothing to reach from another machine
    given = _local_rendezvous("127.0.0.1", None)
    assert given["master_addr"] == "127.0.0.1" and _free(given["master_port"])


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_an_example_without_its_data_says_one_line_and_leaves_nothing(tmp_path):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "fashion_mnist_lenet.py"), "--data-dir",
                           str(tmp_path / "data"), "--no-plot", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, **NO_NET))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("fashion_mnist_lenet.py: error: Fashion-MNIST is not in")
    assert not (tmp_path / "data").exists() and not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_train_like_ctrl_c_and_stop_its_server(tmp_path, sig, code):
    proc = subprocess.Popen([sys.executable, "-m", "engine.app", "train", "--epochs", "200", "--out", "run"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, VISDOM_URL=f"http://127.0.0.1:{free_port()}", D2L_IGNITE_PLOT="1"))
    deadline = time.time() + 120
    while not (tmp_path / "run" / "last_checkpoint_1.pt").exists() and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err[-2000:]
    assert f"stopped by {signal.Signals(sig).name}" in err
    assert any(n.startswith("interrupted_checkpoint_") for n in os.listdir(tmp_path / "run"))
    assert (tmp_path / "run" / "visdom").is_dir()  # the run's own env, written as it stopped
    port = int(out.split("Live plots: http://127.0.0.1:")[1].split("/")[0])
    deadline = time.time() + 15  # no process draws on the server any more: it ends after its linger (1 s here)
    while not _free(port) and time.time() < deadline:
        time.sleep(0.2)
    assert _free(port)


@contextlib.contextmanager
def small_disk(tmp_path, size: str):
    """A real tmpfs of ``size`` mounted under ``tmp_path`` for the block (a full disk, for real)."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts a small tmpfs and needs root (CI runs as root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_real_full_disk_on_the_first_checkpoint_leaves_no_temporary_file(digits, tmp_path):
    with small_disk(tmp_path, "4m") as disk:
        fill = lambda t, _: t.add_event_handler(  # noqa: E731 -- after the folder check, the disk fills up
            Events.ITERATION_COMPLETED(once=1), lambda _: (disk / "filler").write_bytes(b"\0" * (4 * 2**20 - 8192)))
        with pytest.raises(OSError, match="No space left on device"):
            train(digits, checkpoint_dir=str(disk / "ck"), handlers=[fill])
        assert os.listdir(disk / "ck") == []


def test_login_cookie_secret_is_private_and_fresh_per_launch(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VISDOM_USERNAME", "reader")
    monkeypatch.setenv("VISDOM_PASSWORD", "s3cret-pass")
    monkeypatch.delenv("VISDOM_COOKIE", raising=False)
    secrets = []
    for _ in range(2):
        with LocalVisdom(env_path=str(tmp_path / "v"), login=True):
            secret = tmp_path / "home" / ".visdom" / "COOKIE_SECRET"
            secrets.append(secret.read_text())
            assert stat.S_IMODE(secret.stat().st_mode) == 0o600
            assert stat.S_IMODE(secret.parent.stat().st_mode) == 0o700
    assert secrets[0] != secrets[1]


def test_temporary_files_never_follow_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "run"
    out.mkdir()
    for name in ("curves.npz", "curves.png"):
        for planted in (name, f"{name}.tmp", f"{name}.tmp.png"):
            (out / planted).symlink_to(victim)
    with VisdomPlotter("http://127.0.0.1:9", "sym", out_dir=str(out), connect_timeout=0.2) as plotter:
        plotter.add("w", "t", 1, 0.5)
    assert victim.read_text() == "keep me"
    assert not (out / "curves.npz").is_symlink() and not (out / "curves.png").is_symlink()


def test_archives_extract_only_inside_the_data_folder(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    from common import download_extract

    import hashlib
    import io

    data = tmp_path / "data"
    data.mkdir()
    archive = data / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        payload = b"owned"
        info = tarfile.TarInfo("../outside.txt")
        info.size = len(payload)
        t.addfile(info, io.BytesIO(payload))
    sha1 = hashlib.sha1(archive.read_bytes()).hexdigest()
    with pytest.raises(tarfile.OutsideDestinationError):
        download_extract("http://127.0.0.1:9/evil.tar.gz", sha1, str(data), "evil")
    assert not (tmp_path / "outside.txt").exists()


@pytest.mark.slow
def test_the_ctrl_c_test_passes_when_the_suite_starts_with_sigint_ignored(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           os.path.join(ROOT, "tests", "test_faults.py")
                           + "::test_ctrl_c_stops_cleanly_saves_flushes_and_resumes"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert done.returncode == 0, done.stdout[-2000:]


def test_a_full_disk_at_the_servers_closing_save_keeps_every_point_in_the_record(tmp_path, capfd):
    """The server's save fails (its disk is full): its points count as not kept, close() says so, and the
    run's record (on another disk) holds them all, for ``replay``."""
    with small_disk(tmp_path, "2m") as disk:
        with LocalVisdom(env_path=str(disk / "visdom")) as server:
            plotter = VisdomPlotter(server.url, "full", out_dir=str(tmp_path / "run"), close_timeout=5)
            for i in range(2000):
                plotter.add("loss", "train", i, 0.5)
            assert plotter.flush(20)  # the server has every point, in memory
            fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
            try:
                while True:
                    os.write(fd, b"\0" * 4096)
            except OSError:
                os.close(fd)
            assert plotter.close() is False and plotter.missed == str(tmp_path / "run")
    err = capfd.readouterr().err
    assert "did not save env 'full' (HTTPError: 500" in err and "2000 points are not in an env saved by" in err
    assert record_counts(plotter.missed) == {"loss": {"train": 2000}}
