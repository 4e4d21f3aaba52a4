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
from engine import train_ch13
from handlers import LocalVisdom, VisdomPlotter
from visdom_util import trace_counts

ROOT = pathlib.Path(__file__).resolve().parent.parent
SECRET = "s3cret-Pa55-do-not-log"


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
            s.post(server.url + "/", json={"username": "reader", "password": _hash(SECRET)}, timeout=10)
            counts = trace_counts(server.url, "secure", "train_ch13", session=s)
        assert counts["test acc"] == 1
    out, err = capfd.readouterr()
    logs = out + err + (tmp_path / "v" / "server.log").read_text(errors="replace")
    assert SECRET not in logs and not (tmp_path / "run" / "visdom-replay.log").exists()


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
