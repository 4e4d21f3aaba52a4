"""The served page in a real headless browser, with no internet: the plot draws three named traces."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import loaders, small_cnn
from engine import train_ch13
from handlers import LocalVisdom, VisdomPlotter
from handlers.visdom_server.assets import PINNED, missing_files, required_files
from handlers.local import free_port
from handlers.visdom_server.access import page_link

pytestmark = pytest.mark.slow  # several processes, servers or a browser: `make test`, not `make check`

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--virtual-time-budget=15000", "--window-size=1200,800"]


def browse(url: str, *extra: str) -> subprocess.CompletedProcess:
    assert shutil.which("chromium"), "Debian's chromium is needed: .ci/browser installs it"
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(CHROMIUM + [f"--user-data-dir={profile}", *extra, url],
                              capture_output=True, text=True, timeout=180)


def test_page_renders_three_named_traces_offline(digits, tmp_path):
    with LocalVisdom(env_path=str(tmp_path / "visdom")) as server:
        assert missing_files() == []  # every browser file came from npm, none from a CDN
        train_iter, test_iter = loaders(*digits, 200, 100, 20)
        net = small_cnn()
        with VisdomPlotter(server.url, env="ui", out_dir=str(tmp_path / "run")) as plotter:  # closed while served
            train_ch13(net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"),
                       torch.optim.SGD(net.parameters(), 0.1), 2, ["cpu"], progress=False, verbose=False, plot=plotter)
        dom = browse(page_link(server.url, "ui"), "--dump-dom").stdout
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "visdom-page.png"
        browse(page_link(server.url, "ui"), f"--screenshot={shot}")
    legend = re.findall(r'class="legendtext"[^>]*>([^<]+)<', dom)
    assert sorted(legend) == ["test acc", "train acc", "train loss"]
    assert len(re.findall(r'class="trace scatter', dom)) == 3
    assert shot.stat().st_size > 10_000


def test_cli_visdom_prints_url_and_rejects_busy_port(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "engine.app", "visdom", "--port", str(port), "--env-path",
                             str(tmp_path / "v")], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line
        busy = subprocess.run([sys.executable, "-m", "engine.app", "visdom", "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
        assert busy.returncode == 2 and f"port {port} is already in use" in busy.stderr
        assert "Traceback" not in busy.stderr
    finally:
        proc.terminate()
        proc.wait(30)


def test_asset_list_of_visdom_030_maps_to_npm(tmp_path):
    """visdom 0.3.0 (Python >= 3.12) lists other versions; its build.py must map to npm packages too."""
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                           "--python-version", "3.12", "visdom==0.3.0", "-d", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-500:]
    import tarfile

    with tarfile.open(next(tmp_path.glob("visdom-0.3.0*.tar.gz"))) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("visdom/server/build.py"))
        tar.extract(member, tmp_path, filter="data")
    files = required_files(str(tmp_path / member.name))
    assert files["css/react-grid-layout-styles.css"] == ("react-grid-layout@2.2.3", "css/styles.css")
    assert files["js/mathjax/3.2.2/es5/tex-mml-svg.js"] == ("mathjax@3.2.2", "es5/tex-mml-svg.js")
    assert files["js/plotly-plotly.min.js"] == ("plotly.js-dist-min@2.11.1", "plotly.min.js")
    assert {spec for spec, _ in files.values()} <= set(PINNED)  # each package's digest is pinned (assets.PINNED)
    import visdom

    installed = required_files()
    assert any(path.startswith("js/mathjax/") for path in installed), visdom.__version__


def test_saved_runs_are_served_and_compared_with_curves_visible(tmp_path):
    cli = [sys.executable, "-m", "engine.app"]
    env = dict(os.environ, VISDOM_URL=f"http://127.0.0.1:{free_port()}", D2L_IGNITE_PLOT="1")  # a server starts there
    names = []
    for run, lr in (("a", "0.01"), ("b", "0.003")):
        done = subprocess.run(cli + ["train", "--epochs", "2", "--out", f"runs/{run}", "--lr", lr], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        names.append(re.search(r"Live plots: \S+/env/([^\s?]+)", done.stdout).group(1))
    port = free_port()
    proc = subprocess.Popen(cli + ["visdom", "--port", str(port)], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = f"http://127.0.0.1:{port}"
        assert f"{url}/env/{names[1]}" in line  # the printed link opens the newest run
        done = subprocess.run(cli + ["compare", "runs/a", "b", "--visdom", url, "--name", "cmp"], capture_output=True,
                              text=True, timeout=60, cwd=tmp_path)  # a run folder and a run's name
        assert done.returncode == 0 and f"{url}/env/cmp" in done.stdout, done.stderr
        dom = browse(page_link(url, "cmp"), "--dump-dom").stdout
        ARTIFACTS.mkdir(exist_ok=True)
        browse(page_link(url, "cmp"), f"--screenshot={ARTIFACTS / 'visdom-compare.png'}")
        later = subprocess.run(cli + ["train", "--epochs", "1", "--out", "runs/c"], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=300)  # a run saved after the server started
        newest = re.search(r"Live plots: \S+/env/([^\s?]+)", later.stdout).group(1)
        assert _served_within(url, newest, 15)
    finally:
        proc.send_signal(15)  # SIGTERM stops the command and its server
        proc.wait(30)
    legend = re.findall(r'class="legendtext"[^>]*>([^<]+)<', dom)
    assert names == ["a", "b"]  # each env is named after its run folder
    assert sorted(set(legend)) == ["lr 0.003", "lr 0.01"] and len(legend) == 2 * 4  # what differs; 4 windows, 2 runs
    lines = re.findall(r'class="js-line" d="(M[^"]+)"', dom)
    drawn = [d for d in lines if not d.startswith("M5,0h")]  # not legend swatches
    assert len(drawn) == 8, len(drawn)  # every run's curve is drawn in every window
    assert not _port_open(port)  # SIGTERM left no server behind


def _served_within(url: str, env: str, seconds: float) -> bool:
    import time

    from visdom_util import trace_counts

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if trace_counts(url, env, "train_ch13").get("test acc") == 1:
                return True
        except Exception:
            pass
        time.sleep(0.5)
    return False


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
