"""Servers bind to loopback unless told, login secrets stay in the environment, checkpoints cannot run
code, and no shell command is built from user strings."""
from __future__ import annotations

import os
import pathlib
import re

import pytest
import requests
import torch

from conftest import loaders, small_cnn
from torch import nn
from engine import train_ch13
from handlers import LocalVisdom, VisdomPlotter
from visdom_util import own, trace_counts

ROOT = pathlib.Path(__file__).resolve().parent.parent
SECRET = "s3cret-Pa55-do-not-log"


CE = nn.CrossEntropyLoss(reduction="none")


def listening_addresses(port: int) -> set[str]:
    """Local addresses listening on ``port``, from the kernel's socket table."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in open(table).read().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if int(p, 16) == port and state == "0A":  # LISTEN
                found.add(addr)
    return found


def test_default_server_listens_on_loopback_only(tmp_path):
    with LocalVisdom(env_path=str(tmp_path)) as server:
        assert listening_addresses(server.port) == {"0100007F"}  # 127.0.0.1


def test_every_interface_without_login_warns(tmp_path):
    with pytest.warns(UserWarning, match="every interface .* without login"):
        server = LocalVisdom(host="0.0.0.0", env_path=str(tmp_path)).start()
    server.stop()


def test_login_secrets_stay_in_the_environment(digits, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("VISDOM_USERNAME", "reader")
    monkeypatch.setenv("VISDOM_PASSWORD", SECRET)
    with LocalVisdom(env_path=str(tmp_path / "v"), login=True) as server:
        cmdline = open(f"/proc/{server.process.pid}/cmdline", "rb").read().decode()
        assert SECRET not in cmdline and "reader" not in cmdline
        with pytest.raises(requests.HTTPError):  # without the login, no data
            trace_counts(server.url, "main", "any")
        X, y = digits
        tr, te = loaders(X, y, 100, 50, 20)
        net = small_cnn()
        plotter = VisdomPlotter(server.url, "secure", out_dir=str(tmp_path / "run"))
        train_ch13(net, tr, te, torch.nn.CrossEntropyLoss(reduction="none"), torch.optim.SGD(net.parameters(), 0.1),
                   1, ["cpu"], plot=plotter, verbose=True)
        with requests.Session() as s:
            s.headers.update(own(server.url))  # this user's token, then Visdom's own login
            s.post(server.url + "/", json={"username": "reader", "password": _hash(SECRET)}, timeout=10)
            counts = trace_counts(server.url, "secure", "train_ch13", session=s)
        assert counts["test acc"] == 1
        assert plotter.close()  # saved by the login server: nothing is missing (its closing save logged in too)
    out, err = capfd.readouterr()
    logs = out + err + (tmp_path / "v" / "server.log").read_text(errors="replace")
    assert SECRET not in logs and "not in an env saved by" not in err


def _hash(password: str) -> str:
    import hashlib

    return hashlib.sha256(password.encode()).hexdigest()


SOURCES = [p for d in ("engine", "handlers", "examples", "bench") for p in (ROOT / d).rglob("*.py")]


def test_no_shell_commands_and_every_load_is_weights_only():
    assert len(SOURCES) > 20
    for path in SOURCES:
        text = path.read_text()
        assert "shell=True" not in text and "os.system(" not in text and "os.popen(" not in text, path
        for call in re.findall(r"torch\.load\((.*?)\)\n", text, re.S):
            assert "weights_only=True" in call, (path, call)


def test_a_checkpoint_naming_its_best_file_outside_the_run_folder_is_refused_and_touches_nothing(digits, tmp_path):
    """Issue 36: the best file's name a checkpoint records is data, never a path (it was copied to and, later,
    deleted as ``../../<file>``)."""
    from handlers.checkpoint import CheckpointError

    tr, te = loaders(*digits, 64, 32, 16)
    net = small_cnn()
    train_ch13(net, tr, te, CE, torch.optim.SGD(net.parameters(), 0.1), 1, plot=False, verbose=False,
               checkpoint_dir=str(tmp_path / "run"))
    (good,) = list((tmp_path / "run").glob("last_checkpoint_*.pt"))
    state = torch.load(good, weights_only=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "run" / "evil.pth").write_text("import os  # would run at start-up")
    state["best_so_far"] = {"folder": str(tmp_path / "run"), "saved": [[0.1, "../victim.txt"]]}
    torch.save(state, tmp_path / "crafted.pt")
    fresh = small_cnn(1)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    with pytest.raises(CheckpointError, match="which is not a checkpoint's file name"):
        train_ch13(fresh, tr, te, CE, torch.optim.SGD(fresh.parameters(), 0.1), 3, plot=False, verbose=False,
                   checkpoint_dir=str(tmp_path / "next"), resume=str(tmp_path / "crafted.pt"))
    assert all(torch.equal(before[k], v) for k, v in fresh.state_dict().items())  # checked before anything loads
    assert victim.read_text() == "keep me" and not (tmp_path / "next" / "../victim.txt").is_symlink()


def test_gathering_a_runs_folder_never_writes_through_a_planted_link(tmp_path):
    """Issue 36: a link already at the served folder's target is replaced, not written through; a linked
    source is not read."""
    from handlers.visdom_server.serve import gather

    run = tmp_path / "runs" / "r1" / "visdom"
    run.mkdir(parents=True)
    (run / "r1.json").write_text('{"jsons": {}, "reload": {}}')
    served = tmp_path / "runs" / "visdom"
    served.mkdir()
    precious = tmp_path / "precious.json"
    precious.write_text("mine")
    (served / "r1.json").symlink_to(precious)
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    (tmp_path / "runs" / "r2" / "visdom").mkdir(parents=True)
    (tmp_path / "runs" / "r2" / "visdom" / "r2.json").symlink_to(secret)
    pane = {"jsons": {"x": {"content": {"data": [{"type": "text", "content": "<script>alert(1)</script>"}]}}}}
    (tmp_path / "runs" / "r3" / "visdom").mkdir(parents=True)
    (tmp_path / "runs" / "r3" / "visdom" / "r3.json").write_text(__import__("json").dumps(pane))
    copied = gather(str(tmp_path / "runs"), str(served))
    assert not (served / "r3.json").exists()  # only the line plots this project writes are served
    assert precious.read_text() == "mine" and not (served / "r1.json").is_symlink()
    assert (served / "r1.json").read_text() == '{"jsons": {}, "reload": {}}'
    assert not (served / "r2.json").exists() and copied == [str(served / "r1.json")]


def test_a_state_folder_others_can_write_is_refused_and_the_run_trains_with_its_record(digits, tmp_path, monkeypatch,
                                                                                        capsys):
    """Issue 36: a $D2L_IGNITE_STATE another user could have made (or can write) is never trusted."""
    from handlers.visdom_server import shared

    state = tmp_path / "state"
    state.mkdir(mode=0o777)
    state.chmod(0o777)
    monkeypatch.setenv("D2L_IGNITE_STATE", str(state))
    monkeypatch.setenv("D2L_IGNITE_PLOT", "1")
    monkeypatch.delenv("VISDOM_URL", raising=False)
    with pytest.raises(PermissionError, match="not a private folder of this user"):
        shared.state_dir()
    monkeypatch.setenv("VISDOM_URL", "http://127.0.0.1:9")  # local, named, and the state folder unusable
    tr, te = loaders(*digits, 64, 32, 16)
    net = small_cnn()
    train_ch13(net, tr, te, CE, torch.optim.SGD(net.parameters(), 0.1), 1, verbose=False, out_dir=str(tmp_path / "r"))
    err = capsys.readouterr().err
    assert "not a private folder of this user" in err and (tmp_path / "r" / "curves.npz").is_file()
    assert not list(state.iterdir())  # nothing written into it


def test_a_record_naming_a_live_process_that_is_no_server_of_ours_is_not_used(tmp_path, monkeypatch):
    """Issue 36 / 38: a planted or stale record (its pid now another process) links to nothing: ignored."""
    import json
    import subprocess
    import sys

    from handlers.visdom_server import leases, shared

    monkeypatch.setenv("D2L_IGNITE_STATE", str(tmp_path / "state"))
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = {"port": 8123, "pid": other.pid, "url": "http://127.0.0.1:8123", "env_path": str(tmp_path),
                  "started": leases.start_time(other.pid), "uid": os.getuid()}
        pathlib.Path(leases.record_path(shared.state_dir(), 8123)).write_text(json.dumps(record))
        assert shared.find(8123) is None and shared.find() is None
        record["started"] = "1"  # the pid of a server that died, reused
        pathlib.Path(leases.record_path(shared.state_dir(), 8123)).write_text(json.dumps(record))
        assert shared.find(8123) is None
    finally:
        other.kill()
        other.wait()


def test_planted_links_in_the_state_folder_are_never_followed(tmp_path, monkeypatch):
    """Issue 36: a ``clients`` link made the start delete every file where it pointed; a ``server.log`` link
    had request lines appended to a file of the user's."""
    import signal

    from handlers.local import free_port
    from handlers.visdom_server import leases, shared

    monkeypatch.setenv("D2L_IGNITE_STATE", str(tmp_path / "state"))
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "thesis.tex").write_text("years of work")
    port = free_port()
    os.symlink(keep, leases.clients_dir(shared.state_dir(), port))
    envs = tmp_path / "state" / "visdom-envs"
    envs.mkdir()
    diary = tmp_path / "diary.txt"
    diary.write_text("mine\n")
    (envs / "server.log").symlink_to(diary)
    with pytest.raises(OSError):  # the log cannot be opened through the link: no server, nothing touched
        shared.acquire(port)
    (envs / "server.log").unlink()
    server = shared.acquire(port)
    try:
        assert (keep / "thesis.tex").read_text() == "years of work" and diary.read_text() == "mine\n"
        assert not os.path.islink(server.clients)
    finally:
        shared.release()
        os.kill(server.pid, signal.SIGTERM)


def test_a_crafted_record_replays_as_line_plots_or_not_at_all(tmp_path):
    """Issue 36: a crafted replay file could store a text pane with script. ``replay`` now sends a run's record
    (``curves.npz``), and builds every window from it as a line plot: options asking for another kind of window
    draw lines, and options Visdom refuses stop the replay, naming the file, before anything is sent."""
    from engine.app.runs import run_windows
    from handlers.plot.record import write_points
    from handlers.plot.store import PlotStore

    store = PlotStore()
    store.window("pane", {"title": "<script>alert(1)</script>", "type": "text", "content": "<script>", "legend": ["t"]})
    store.add("pane", "t", 1, 2.0)
    write_points(store, str(tmp_path / "crafted"))
    env, windows, points = run_windows(str(tmp_path / "crafted"))
    assert env == "crafted" and points == 1
    assert [d["type"] for msg in windows for d in msg["data"]] == ["scatter"]
    store.window("pane", {"markersize": "huge", "markers": True, "legend": ["t"]})
    write_points(store, str(tmp_path / "crafted"))
    with pytest.raises(ValueError, match=r"crafted/curves.npz: window 'pane' cannot be drawn"):
        run_windows(str(tmp_path / "crafted"))


def _listening(pid: int) -> set[str]:
    """The local addresses ``pid`` listens on (its sockets' inodes matched in the kernel's tables)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).read().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                found.add(fields[1].split(":")[0])
    return found


@pytest.mark.slow
def test_a_two_process_job_on_one_machine_listens_on_loopback_only(tmp_path):
    """Issue 36: ``--nproc-per-node`` left torch's rendezvous store listening on every interface."""
    import signal
    import subprocess
    import sys
    import time

    run = subprocess.Popen([sys.executable, "-m", "engine.app", "train", "--model", "mlp", "--no-plot",
                            "--no-progress", "--epochs", "200", "--nproc-per-node", "2", "--out", str(tmp_path / "r")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "r").glob("last_checkpoint_*.pt")) and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = [int(c) for c in open(f"/proc/{run.pid}/task/{run.pid}/children").read().split()]
        listening = set().union(*(_listening(pid) for pid in [run.pid, *workers]))
    finally:
        run.send_signal(signal.SIGTERM)
        run.communicate(timeout=120)
    loopback = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1 and ::1 as the kernel writes them
    assert len(workers) >= 2 and listening <= loopback, listening


@pytest.mark.slow
def test_replay_without_a_url_goes_to_this_users_server_not_whatever_answers_on_8097(tmp_path):
    """Issue 36: ``replay`` with no ``--visdom`` sent to 8097 even when the user's own server was elsewhere."""
    import json
    import signal
    import subprocess
    import sys

    from handlers.visdom_server import leases

    from handlers.plot.record import write_env, write_points
    from handlers.plot.store import PlotStore

    store, run = PlotStore(), tmp_path / "run"
    store.window("w", {"title": "w", "legend": ["t"]})
    store.add("w", "t", 1, 3.0)
    store.add("w", "t", 2, 4.0)
    write_points(store, str(run))  # as a run keeps it
    write_env(store, "replayed", str(run))
    env = {k: v for k, v in os.environ.items() if k != "VISDOM_URL"}
    env["D2L_IGNITE_STATE"] = str(tmp_path / "state")
    env["D2L_IGNITE_VISDOM_LINGER"] = "120"  # the test's 1 s could end the server (and its record) before the glob
    done = subprocess.run([sys.executable, "-m", "engine.app", "replay", str(run)], capture_output=True, text=True,
                          env=env, timeout=120)
    records = list((tmp_path / "state").glob("visdom-*.json"))
    try:
        assert done.returncode == 0, done.stderr
        (record,) = records
        server = json.loads(record.read_text())
        assert f": {server['url']}/env/replayed?token=" in done.stdout and leases.runs_server(server["pid"])
        assert trace_counts(server["url"], "replayed", "w") == {"t": 2}
    finally:
        for record in records:
            os.kill(json.loads(record.read_text())["pid"], signal.SIGTERM)
