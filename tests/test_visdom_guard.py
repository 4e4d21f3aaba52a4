"""The local Visdom server takes no orders from other web pages: a cross-site write or a foreign Host is
refused (403, nothing stored) even when it carries the user's token; the project's clients and a page of the
server's own origin work on. (Requests without the token: test_security.py.)"""
from __future__ import annotations

import json

import pytest
import requests

from handlers import LocalVisdom, VisdomPlotter
from handlers.visdom_server.serve import HOSTS_VARIABLE, allowed_names, refusal
from visdom_util import own, trace_counts

PANE = {"data": [{"content": "<img src=x onerror=alert(document.domain)>", "type": "text"}], "win": "pane"}
HANDSHAKE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
             "Sec-WebSocket-Version": "13"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LocalVisdom(env_path=str(tmp_path_factory.mktemp("envs"))) as s:
        yield s


def exists(server, env: str, win: str) -> bool:
    answer = requests.post(f"{server.url}/win_exists", data=json.dumps({"win": win, "eid": env}), timeout=10,
                           headers=own(server.url))
    return answer.text == "true"


def test_a_cross_site_simple_request_cannot_store_a_pane(server):
    r = requests.post(f"{server.url}/events", data=json.dumps({**PANE, "eid": "victim"}), timeout=10,
                      headers={**own(server.url), "Origin": "http://evil.example", "Content-Type": "text/plain"})
    assert r.status_code == 403 and not exists(server, "victim", "pane")


def test_a_cross_site_request_cannot_close_a_running_training_s_windows(server, tmp_path):
    plotter = VisdomPlotter(server.url, "training", out_dir=str(tmp_path))
    plotter.add("loss", "train loss", 0.2, 1.0)
    plotter.flush()
    for endpoint in ("close", "delete_env"):
        r = requests.post(f"{server.url}/{endpoint}", data=json.dumps({"eid": "training", "win": None}),
                          headers={**own(server.url), "Origin": "null"}, timeout=10)  # a sandboxed frame, file://
        assert r.status_code == 403
    assert trace_counts(server.url, "training", "loss") == {"train loss": 1}
    plotter.close()


@pytest.mark.parametrize("method, path", [("GET", "/"), ("GET", "/env/training"), ("POST", "/win_data")])
def test_a_foreign_host_is_refused_whatever_it_asks(server, method, path):
    # what a page on a domain re-resolved to 127.0.0.1 (DNS rebinding) sends
    r = requests.request(method, server.url + path, data=json.dumps({"eid": "training", "win": None}), timeout=10,
                         headers={**own(server.url), "Host": f"evil.example:{server.port}"})
    assert r.status_code == 403 and "train loss" not in r.text


def test_a_websocket_from_another_origin_is_refused_and_from_its_own_opens(server):
    refused = requests.get(f"{server.url}/socket", headers={**HANDSHAKE, **own(server.url), "Origin": "http://evil.example"},
                           timeout=10)
    assert refused.status_code == 403
    # its own origin passes the guard and reaches Tornado's handshake, which then asks for a version it speaks
    # (an opened socket would stay subscribed, and Visdom fails on writing to it once this client is gone)
    headers = {**HANDSHAKE, **own(server.url), "Sec-WebSocket-Version": "99", "Origin": server.url}
    opened = requests.get(f"{server.url}/socket", headers=headers, timeout=10)
    assert opened.status_code == 426 and opened.headers["Sec-WebSocket-Version"] == "7, 8, 13"


def test_the_page_and_its_own_origin_s_writes_work_by_every_loopback_name(server):
    for name in ("127.0.0.1", "localhost"):
        base = f"http://{name}:{server.port}"
        assert requests.get(base + "/", timeout=10, headers=own(server.url)).status_code == 200
        r = requests.post(base + "/events", data=json.dumps({**PANE, "eid": f"own-{name}"}), timeout=10,
                          headers={**own(server.url), "Origin": base})
        assert r.status_code == 200 and exists(server, f"own-{name}", "pane")


def test_the_rule_for_every_interface_and_for_named_proxies(monkeypatch):
    def refused(host, any_ip, origin=None, method="GET"):
        return refusal(method, host, origin, False, "http", allowed_names(any_ip), any_ip) is not None

    assert not refused("[::1]:8097", False) and not refused("localhost", False)
    assert refused("192.0.2.7:8097", False) and not refused("192.0.2.7:8097", True)  # --host 0.0.0.0
    assert refused("evil.example:8097", True)  # a name stays refused on every interface
    assert refused("127.0.0.1:8097", False, "http://192.0.2.7:8097", "POST")
    monkeypatch.setenv(HOSTS_VARIABLE, "hub.example.org, notebooks.local")
    assert not refused("hub.example.org", False) and not refused("NOTEBOOKS.local:443", False)
