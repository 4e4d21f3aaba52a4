"""Who owns a local Visdom server, tried with real processes: runs of one user share one server that stays
while any of them draws on it, however the others end; a server that is not this user's is never used
unasked; each run's record lands in its own folder."""
from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from handlers import VisdomPlotter
from handlers.local import free_port, port_in_use
from handlers.visdom_server import LocalVisdom, shared
from handlers.visdom_server.access import page_link, token_path
from visdom_util import own, record_counts, trace_counts

TRAIN = """
import sys, time, torch
from ignite.engine import Events
from torch import nn
from engine import train_ch13
from engine.app.data import digits_loaders, job_net
epochs, pause = int(sys.argv[1]), float(sys.argv[2])
tr, te = digits_loaders(batch_size=256)
net = job_net("mlp")
def slow(trainer, evaluator):
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: time.sleep(pause))
train_ch13(net, tr, te, nn.CrossEntropyLoss(reduction="none"), torch.optim.SGD(net.parameters(), lr=0.1), epochs,
           handlers=[slow])
print("DONE", flush=True)
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VISDOM_URL"}
    return dict(env, D2L_IGNITE_PLOT="1", PYTHONUNBUFFERED="1", D2L_IGNITE_VISDOM_LINGER="60", **extra)


def _start(tmp_path, name: str, epochs: int, pause: float, **extra: str) -> subprocess.Popen:
    (tmp_path / "train.py").write_text(TRAIN)
    return subprocess.Popen([sys.executable, "train.py", str(epochs), str(pause)], cwd=tmp_path, env=_env(**extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _link(proc: subprocess.Popen, timeout: float = 120) -> str:
    """The first ``Live plots:`` link the process prints (its other lines are kept on ``proc.seen``)."""
    proc.seen = getattr(proc, "seen", "")  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        proc.seen += line  # type: ignore[attr-defined]
        if line.startswith("Live plots: "):
            return line.split()[2].split("?token=")[0]  # the link without its secret (visdom_util.own sends it)
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"no link: {proc.seen}{proc.stderr.read()}")  # type: ignore[union-attr]


def _record_counts(folder, env: str) -> dict[str, dict[str, int]]:
    saved = json.loads((folder / "visdom" / f"{env}.json").read_text())
    return {w: {t["name"]: len(t["x"]) for t in win["content"]["data"]} for w, win in saved["jsons"].items()}


def _server_pid(url: str) -> int:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    return json.loads(open(os.path.join(os.environ["D2L_IGNITE_STATE"], f"visdom-{port}.json")).read())["pid"]


@pytest.mark.slow
@pytest.mark.parametrize("ending", ["finishes", "is interrupted", "is killed"])
def test_a_second_runs_page_outlives_the_first_run(tmp_path, ending):
    """P1 starts the shared server, P2 draws on it too; whatever becomes of P1, P2's page keeps every point."""
    p1 = _start(tmp_path, "p1", 2 if ending == "finishes" else 60, 0.0 if ending == "finishes" else 0.5)
    link1 = _link(p1)
    p2 = _start(tmp_path, "p2", 8, 0.6)
    link2 = _link(p2)
    url = link1.rsplit("/env/", 1)[0]
    assert link2.startswith(url + "/env/") and link2 != link1  # one server, an env each
    if ending == "is interrupted":
        p1.send_signal(signal.SIGINT)
    elif ending == "is killed":
        p1.kill()
    p1.wait(120)
    out, err = p2.communicate(timeout=300)
    assert p2.returncode == 0 and "DONE" in out, err
    assert "cannot reach" not in err and "went away" not in err, err
    env = link2.rsplit("/", 1)[1]
    record = _record_counts(tmp_path / "runs" / env, env)
    assert record["train_ch13"]["test acc"] == 8
    assert trace_counts(url, env, "train_ch13") == record["train_ch13"]  # the live page has every point
    assert "not in an env saved by" not in err
    os.kill(_server_pid(url), signal.SIGTERM)


@pytest.mark.slow
def test_a_run_whose_server_is_killed_starts_another_and_resends_every_point(tmp_path):
    p = _start(tmp_path, "p", 8, 0.6)
    link = _link(p)
    os.kill(_server_pid(link.rsplit("/env/", 1)[0]), signal.SIGKILL)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    moved = re.search(r"every point is re-sent to (\S+)", err)
    assert moved, err
    new = moved.group(1)
    env = link.rsplit("/", 1)[1]
    assert f"Live plots: {new}/env/{env}" in out  # the new link, said where the first one was
    record = _record_counts(tmp_path / "runs" / env, env)
    assert trace_counts(new, env, "train_ch13") == record["train_ch13"]
    assert "not in an env saved by" not in err
    os.kill(_server_pid(new), signal.SIGTERM)


@pytest.mark.slow
def test_three_runs_started_together_share_one_server_and_keep_their_own_records(tmp_path):
    runs = [_start(tmp_path, f"p{i}", 2, 0.0) for i in range(3)]
    links = [_link(p) for p in runs]
    errs = [p.communicate(timeout=300)[1] for p in runs]
    assert all(p.returncode == 0 for p in runs) and not any("already in use" in e for e in errs), errs
    assert len({link.rsplit("/env/", 1)[0] for link in links}) == 1
    for link in links:
        env = link.rsplit("/", 1)[1]
        assert _record_counts(tmp_path / "runs" / env, env)["train_ch13"]["test acc"] == 2
        assert (tmp_path / "runs" / env / "curves.png").stat().st_size > 5000
    assert sorted(os.listdir(tmp_path / "runs")) == sorted(link.rsplit("/", 1)[1] for link in links)


def test_a_server_that_is_not_this_users_is_never_used_unasked(tmp_path, monkeypatch):
    from handlers.plot.policy import default_plotter

    with LocalVisdom(env_path=str(tmp_path / "stranger")) as stranger:  # answers as Visdom, but no record names it
        monkeypatch.setattr(shared, "DEFAULT_PORT", stranger.port)
        plotter = default_plotter(str(tmp_path / "run"))
        try:
            assert plotter.live and plotter.url != stranger.url and not plotter.yours
            plotter.add("w", "t", 1, 0.5)
            assert plotter.close()
            assert not os.path.exists(tmp_path / "stranger" / f"{plotter.env}.json")
            assert (tmp_path / "run" / "visdom" / f"{plotter.env}.json").exists()
        finally:
            os.kill(shared.release().pid, signal.SIGTERM)
        monkeypatch.setenv("VISDOM_URL", stranger.url)  # pointed at: used, and named as the user's own
        plotter = default_plotter(str(tmp_path / "run2"))
        assert plotter.url == stranger.url and plotter.yours
        plotter.close()


def test_servers_outlive_the_thread_that_started_them(tmp_path):
    """Linux's parent-death signal follows the starting thread; the lifetime watch follows the process."""
    started: dict[str, object] = {}

    def start() -> None:
        started["shared"] = shared.acquire(free_port())
        started["own"] = LocalVisdom(env_path=str(tmp_path / "own")).start()

    thread = threading.Thread(target=start)
    thread.start()
    thread.join(120)
    time.sleep(2.0)  # the linger (1 s) and the watch's poll would have ended them
    for server in started.values():
        assert requests.get(server.url, timeout=5, headers=own(server.url)).status_code == 200  # type: ignore
    started["own"].stop()  # type: ignore[attr-defined]
    os.kill(shared.release().pid, signal.SIGTERM)


BOOK_CHAPTER_3 = """
from engine import Animator
animator = Animator(xlabel="epoch", xlim=[1, 3], ylim=[0.3, 0.9], legend=["train loss", "train acc", "test acc"])
for epoch in range(3):
    train_metrics = (0.9 - 0.1 * epoch, 0.5 + 0.1 * epoch)
    test_acc = None if epoch == 0 else 0.6
    animator.add(epoch + 1, train_metrics + (test_acc,))
"""


@pytest.mark.slow
def test_the_books_chapter_3_animator_alone_in_a_script(tmp_path):
    """No training, no close(): the link before the points, the record in its run folder at exit."""
    (tmp_path / "ch3.py").write_text(BOOK_CHAPTER_3)
    done = subprocess.run([sys.executable, "ch3.py"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "training" not in done.stderr and "cannot reach" not in done.stderr, done.stderr
    link = re.search(r"Live plots: (\S+)", done.stdout).group(1).split("?token=")[0]
    url, env = link.rsplit("/env/", 1)
    expected = {"train loss": 3, "train acc": 3, "test acc": 2}
    assert _record_counts(tmp_path / "runs" / env, env) == {"animator-1": expected}
    assert (tmp_path / "runs" / env / "curves.png").stat().st_size > 5000
    assert trace_counts(url, env, "animator-1") == expected
    os.kill(_server_pid(url), signal.SIGTERM)


def test_over_ssh_the_link_comes_with_the_tunnel_that_opens_it(monkeypatch):
    import getpass

    from handlers.plot.links import ssh_hint

    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    assert ssh_hint("http://127.0.0.1:8123/env/e") is None
    monkeypatch.setenv("SSH_CONNECTION", "192.0.2.9 50000 192.0.2.1 22")
    hint = ssh_hint("http://127.0.0.1:8123/env/e")
    assert f"ssh -N -L 8123:127.0.0.1:8123 {getpass.getuser()}@" in hint
    assert ssh_hint("http://192.0.2.1:8123/env/e") is None  # a server the browser reaches itself


HUNG_SERVER = """
import socket, sys, threading, time
hung = socket.socket()
hung.bind(("127.0.0.1", 0))
hung.listen(64)  # accepts connections, never answers
url = f"http://127.0.0.1:{hung.getsockname()[1]}"
from engine import Animator
from handlers import VisdomPlotter
animators = [Animator(legend=["loss"], plotter=VisdomPlotter(url, f"a{i}", out_dir=f"runs/a{i}", read_timeout=5,
                                                             close_timeout=5)) for i in range(4)]
for epoch in range(3):
    for a in animators:
        a.add(epoch + 1, (1.0 / (epoch + 1),))
time.sleep(1)
print("SENDERS", sum(t.name == "visdom-sender" for t in threading.enumerate()))
print("END", time.time(), flush=True)
"""


@pytest.mark.slow
def test_four_animators_on_a_hung_server_cost_the_exit_one_wait(tmp_path):
    (tmp_path / "hung.py").write_text(HUNG_SERVER)
    done = subprocess.run([sys.executable, "hung.py"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=300)
    exited = time.time()
    assert done.returncode == 0, done.stderr
    assert "SENDERS 1" in done.stdout  # one sending thread for four plotters
    waited = exited - float(done.stdout.split("END ")[1])
    assert waited < 16, (waited, done.stderr)  # one close_timeout (5 s) and the files (8 s here), not four (>= 20 s)
    for i in range(4):
        assert [n for w in record_counts(str(tmp_path / "runs" / f"a{i}")).values() for n in w.values()] == [3]
        assert "3 points are not in an env saved by" in done.stderr


def test_in_colab_the_frame_goes_through_colabs_kernel_port_proxy(monkeypatch, capsys):
    """Colab's browser cannot open the kernel's 127.0.0.1: its proxy for the port serves the page instead."""
    import types

    from handlers.plot import links, policy

    served = []
    output = types.SimpleNamespace(serve_kernel_port_as_iframe=lambda port, path="/", height=0: served.append(
        (port, path)))
    colab = types.ModuleType("google.colab")
    colab.output = output  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    monkeypatch.setenv("SSH_CONNECTION", "192.0.2.9 50000 192.0.2.1 22")  # Colab's own plumbing: no ssh hint
    monkeypatch.setattr(links, "in_notebook", lambda: True)
    plotter = policy.VisdomPlotter("http://127.0.0.1:8123", "colab-run", live=True)
    plotter.announce()
    plotter.closed = True  # never sent a point: nothing to close
    assert served == [(8123, "/env/colab-run")]
    assert "ssh -N -L" not in capsys.readouterr().out


def test_in_jupyter_with_its_proxy_the_server_lives_under_the_proxy_path_and_the_frame_uses_it(monkeypatch):
    """A kernel on a remote box: the shared server starts under jupyter-server-proxy's path, and the frame
    opens the page through Jupyter's own origin (a path), not the kernel machine's 127.0.0.1."""
    import IPython.display

    from handlers.plot import links, policy

    shown = []
    monkeypatch.setattr(links, "in_notebook", lambda: True)
    monkeypatch.setattr(links, "_proxy_answer", [True])  # a Jupyter server's proxy answered (see the next test)
    monkeypatch.setattr(IPython.display, "display", lambda obj, **_: shown.append(obj.src))
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    port = free_port()
    monkeypatch.setattr(shared, "DEFAULT_PORT", port)
    plotter = policy.default_plotter()
    try:
        assert plotter.url == f"http://127.0.0.1:{port}/user/ada/proxy/absolute/{port}"
        plotter.announce()
        token = open(token_path()).read().strip()  # the frame carries it: the server answers nothing without it
        assert shown == [f"/user/ada/proxy/absolute/{port}/env/{plotter.env}?token={token}"]
        plotter.add("w", "t", 1, 0.5)
        assert plotter.close()  # the plotter talks to the server under its path
    finally:
        os.kill(shared.release().pid, signal.SIGTERM)


@pytest.mark.slow
def test_the_proxy_is_used_only_where_a_jupyter_server_answers_through_it(tmp_path, monkeypatch):
    """jupyter-server-proxy importable is not enough (nbconvert, VS Code: no server): the server must answer."""
    from handlers.plot import links

    monkeypatch.setattr(links, "in_notebook", lambda: True)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setattr(links, "_proxy_answer", [])
    assert links.proxied() is False  # importable, but no Jupyter server runs
    port = free_port()
    jupyter = subprocess.Popen([sys.executable, "-m", "jupyter", "server", "--no-browser", "--allow-root",
                                f"--port={port}", "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={tmp_path}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime")))
    try:
        deadline = time.monotonic() + 60
        while not glob.glob(str(tmp_path / "runtime" / "jpserver-*.json")) and time.monotonic() < deadline:
            time.sleep(0.2)
        monkeypatch.setattr(links, "_proxy_answer", [])
        assert links.proxied() is True  # its token-protected /proxy/ answers: the frame may go through it
    finally:
        jupyter.terminate()
        jupyter.wait(30)


@pytest.mark.slow
def test_the_page_draws_through_a_real_jupyter_server_proxy(tmp_path):
    from test_visdom_ui import ARTIFACTS, browse

    jupyter_port, visdom_port = free_port(), free_port()
    base = f"/proxy/absolute/{visdom_port}"
    jupyter = subprocess.Popen([sys.executable, "-m", "jupyter", "server", "--no-browser", "--allow-root",
                                f"--port={jupyter_port}", "--ServerApp.ip=127.0.0.1", "--ServerApp.token=",
                                "--ServerApp.password=", f"--ServerApp.root_dir={tmp_path}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with LocalVisdom(visdom_port, env_path=str(tmp_path / "server"), base_url=base) as server:
            plotter = VisdomPlotter(server.url, "proxied", out_dir=str(tmp_path / "run"))
            for i in range(5):
                plotter.add("loss", "train loss", i, 1 / (1 + i))
            assert plotter.close()
            page = page_link(server.url, "proxied", shown_at=f"http://127.0.0.1:{jupyter_port}{base}")  # the frame's
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if requests.get(page, timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    time.sleep(0.3)
            dom = browse(page, "--dump-dom").stdout
            ARTIFACTS.mkdir(exist_ok=True)
            browse(page, f"--screenshot={ARTIFACTS / 'visdom-through-jupyter-proxy.png'}")
    finally:
        jupyter.terminate()
        jupyter.wait(30)
    assert re.findall(r'class="legendtext"[^>]*>([^<]+)<', dom) == ["train loss"]


def test_an_address_that_never_answers_is_probed_once_for_several_plotters(tmp_path, monkeypatch):
    """Four Animators pointed at a hung address: one probe (its read timeout) for all, not one each."""
    import socket

    from handlers.plot import policy

    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)
    accepted: list[object] = []
    threading.Thread(target=lambda: [accepted.append(hung.accept()) for _ in range(16)], daemon=True).start()
    monkeypatch.setenv("VISDOM_URL", f"http://127.0.0.1:{hung.getsockname()[1]}")
    plotters = [policy.default_plotter(str(tmp_path / f"run{i}")) for i in range(4)]
    assert not any(p.live for p in plotters) and len(accepted) == 1
    for plotter in plotters:
        plotter.closed = True  # no point was added: nothing to send or write
    hung.close()


@pytest.mark.slow
def test_runs_started_while_d2l_ignite_visdom_serves_draw_live_on_its_page(tmp_path):
    """Issue 34: a tab open on ``d2l-ignite visdom`` showed a run only once it had ended (its saved env gathered),
    while the run drew live on a server of its own. The command's server is this user's shared server now: a run
    started meanwhile prints its page and draws there; Ctrl-C stops it once no run draws on it."""
    port = free_port()
    served = subprocess.Popen([sys.executable, "-m", "engine.app", "visdom", "--port", str(port)], cwd=tmp_path,
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = served.stdout.readline()
        url = f"http://127.0.0.1:{port}"
        assert f"at {url}" in line and "runs started meanwhile draw here live" in line, line
        p = _start(tmp_path, "p", 2, 3.0)  # 3 s after each epoch: seconds in which the run is still going
        link = _link(p)
        assert link.startswith(f"{url}/env/"), link  # drawn live on the command's page, not a server of its own
        env = link.rsplit("/", 1)[1]
        deadline, seen = time.monotonic() + 60, 0
        while not seen and time.monotonic() < deadline:  # the first epoch's point arrives while the run goes on
            time.sleep(0.2)
            with contextlib.suppress(requests.RequestException):  # no such window yet: Visdom answers 500
                seen = trace_counts(url, env, "train_ch13").get("test acc", 0)
        assert seen and p.poll() is None
        assert p.wait(300) == 0
    finally:
        served.send_signal(signal.SIGINT)
        out, err = served.communicate(timeout=60)
    assert served.returncode == 0, err
    assert not port_in_use("127.0.0.1", port)  # no run draws on it any more: Ctrl-C stopped it


def test_when_8097_is_held_the_shared_server_starts_elsewhere_and_says_why(monkeypatch, capfd):
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        monkeypatch.setattr(shared, "DEFAULT_PORT", held.getsockname()[1])
        server = shared.acquire()
        try:
            assert server.port != held.getsockname()[1]
            err = capfd.readouterr().err
            assert f"port {held.getsockname()[1]} is held by another program (not this user's shared plot server), " \
                   f"so that server starts on port {server.port}" in err
        finally:
            shared.release()
            os.kill(server.pid, signal.SIGTERM)


@pytest.mark.slow
def test_d2l_ignite_visdom_beside_a_runs_shared_server_serves_elsewhere_and_takes_the_next_runs(tmp_path):
    """A run's shared server (its envs in the state folder) holds 8097: the command serves the saved runs on another
    port, says why, and is where runs started from then on draw (the page a person has open)."""
    earlier = shared.acquire()
    served = subprocess.Popen([sys.executable, "-m", "engine.app", "visdom"], cwd=tmp_path, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        why, line = served.stdout.readline(), served.stdout.readline()
        assert f"Port {earlier.port} holds this user's plot server of earlier runs" in why, why
        port = int(re.search(r"at http://127\.0\.0\.1:(\d+)", line).group(1))
        assert port != earlier.port and shared.find().port == port  # the next run's server
    finally:
        served.send_signal(signal.SIGINT)
        served.communicate(timeout=60)
        shared.release()
        os.kill(earlier.pid, signal.SIGTERM)
    assert served.returncode == 0 and not port_in_use("127.0.0.1", port)
