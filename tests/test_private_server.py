"""The local Visdom server is the user's alone (issue 36): every request without the user's token is refused, a
second local account reads and writes nothing, a program squatting the port is found at start and never learns
the token, clients without an address go to the user's own server, and Visdom's browser files are pinned."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap

import pytest
import requests

from handlers import LocalVisdom, VisdomPlotter
from handlers.local import free_port
from handlers.visdom_server import process, shared
from handlers.visdom_server.access import COOKIE, HEADER, PRIVATE, page_link, token_path
from handlers.visdom_server.assets import PINNED, _main_file, _npm_pack, check_digest
from visdom_util import own

PANE = {"data": [{"content": "<img src=x onerror=alert(1)>", "type": "text"}], "win": "pane"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LocalVisdom(env_path=str(tmp_path_factory.mktemp("envs"))) as s:
        yield s


def _exists(server, env: str, win: str) -> bool:
    r = requests.post(f"{server.url}/win_exists", data=json.dumps({"eid": env, "win": win}), headers=own(server.url),
                      timeout=10)
    return r.text == "true"


@pytest.mark.parametrize("method, path", [("GET", "/"), ("GET", "/env/main"), ("POST", "/env_state"),
                                          ("POST", "/win_data"), ("POST", "/events"), ("GET", "/socket"),
                                          ("GET", "/static/js/main.js")])
def test_a_request_without_the_token_is_refused_whatever_it_asks(server, method, path):
    body = json.dumps({**PANE, "eid": "stolen"})
    r = requests.request(method, server.url + path, data=body, timeout=10, headers={"Upgrade": "websocket"} if
                         path == "/socket" else {})
    assert r.status_code == 403 and r.text.startswith("this Visdom server is private")
    wrong = requests.request(method, server.url + path, data=body, timeout=10, headers={HEADER: "guess"})
    assert wrong.status_code == 403 and not _exists(server, "stolen", "pane")


def test_the_printed_link_opens_the_page_and_its_cookie_the_rest(server):
    link = page_link(server.url, "main")
    assert "?token=" in link
    with requests.Session() as browser:
        assert browser.get(link, timeout=10).status_code == 200
        assert browser.cookies.get(COOKIE)  # the page's own requests carry it from now on
        assert browser.post(f"{server.url}/env_state", data="{}", timeout=10).status_code == 200
    r = requests.get(link, timeout=10)
    assert "httponly" in r.headers["Set-Cookie"].lower() and "samesite=strict" in r.headers["Set-Cookie"].lower()


ATTACKER = textwrap.dedent("""
    import json, os, sys, urllib.request, urllib.error
    url, victim = sys.argv[1], sys.argv[2]
    def ask(path, body=None):
        try:
            with urllib.request.urlopen(urllib.request.Request(url + path, data=body), timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
    pane = json.dumps({"data": [{"content": "<script>steal()</script>", "type": "text"}], "win": "pane",
                       "eid": "victim"}).encode()
    out = {"page": ask("/"), "envs": ask("/env_state", b"{}"), "pane": ask("/events", pane),
           "delete": ask("/delete_env", json.dumps({"eid": victim}).encode())}
    try:
        open(os.path.expanduser("~root/.cache/d2l-ignite/token")).read()
        out["token"] = "read"
    except OSError as e:
        out["token"] = type(e).__name__
    print(json.dumps(out))
""")


def _nobody_python() -> str | None:
    """A Python another account may run (this suite's own lives under root's private home)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(candidate):
            return candidate
    return None


@pytest.mark.skipif(os.geteuid() != 0 or _nobody_python() is None,
                    reason="running as a second local account (nobody) needs root and a system Python")
def test_a_second_local_account_reads_writes_and_deletes_nothing(server):
    """What another user of the machine tried on the shared server before it had a token: list the envs, store a
    pane that runs script in this user's browser, delete a .json file of this user's outside the env folder
    (Visdom's delete_env with ``../``). As ``nobody``, every one is refused and the token file is unreadable."""
    victim = os.path.join(os.path.dirname(server.env_path), "victim.json")
    with open(victim, "w") as f:
        f.write("{}")
    eid = os.path.relpath(victim, server.env_path)[: -len(".json")]  # ../victim
    done = subprocess.run([_nobody_python(), "-c", ATTACKER, server.url, eid], user="nobody", group="nogroup",
                          capture_output=True, text=True, timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen == {"page": 403, "envs": 403, "pane": 403, "delete": 403, "token": "PermissionError"}, seen
    assert os.path.exists(victim) and not _exists(server, "victim", "pane")


SQUATTER = textwrap.dedent("""
    import http.server, sys, urllib.request
    relay = sys.argv[2]  # one of the user's own servers: the proof's nonce is relayed there
    class Answer(http.server.BaseHTTPRequestHandler):
        def _any(self):
            sys.stdout.write(repr(dict(self.headers)) + "\\n"); sys.stdout.flush()
            body, status = b"true", 200
            if self.path.startswith("/d2l-ignite/proof"):
                body = urllib.request.urlopen(relay + self.path, timeout=10).read()
            elif len(sys.argv) > 3:  # it answers as the user's own server refuses a request without the token
                body, status = sys.argv[3].encode(), 403
            self.send_response(status); self.end_headers(); self.wfile.write(body)
        do_GET = do_POST = _any
        def log_message(self, *args): pass
    server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Answer)
    print("ready", flush=True)
    server.serve_forever()
""")


def test_a_program_squatting_the_port_is_found_at_start_and_never_gets_the_token(server, tmp_path, monkeypatch):
    """A program binds the port between the free-port check and Visdom's bind (its ~1 s import): any HTTP 200 used
    to count as "our server started". Now the start fails naming it, and neither it nor a client learns the token,
    even when it relays the proof's nonce to one of the user's own servers (the answer is bound to the port)."""
    port = free_port()
    squatter = subprocess.Popen([sys.executable, "-c", SQUATTER, str(port), server.url], stdout=subprocess.PIPE,
                                text=True)
    try:
        assert squatter.stdout.readline().strip() == "ready"
        monkeypatch.setattr(process, "port_in_use", lambda host, p: False)  # the squatter came after the check
        with pytest.raises(RuntimeError, match=f"port {port} answers, but not as the Visdom server just started"):
            LocalVisdom(port, env_path=str(tmp_path / "envs")).start()
        plotter = VisdomPlotter(f"http://127.0.0.1:{port}", "leak", out_dir=str(tmp_path / "run"))
        plotter.add("w", "t", 1, 1.0)
        plotter.close()
    finally:
        squatter.terminate()
        seen = squatter.communicate(timeout=30)[0]
    token = open(token_path()).read().strip()
    assert seen and token not in seen and HEADER.lower() not in seen.lower()


def test_a_program_taking_the_port_of_the_users_stopped_server_mid_run_never_gets_the_token(tmp_path):
    """The server a plotter was drawing on goes away and another program binds its port, answering as the user's
    server refuses a request without the token: the plotter proves the server again before it sends the token
    (a proof from the first connection does not vouch for whoever listens there now)."""
    own_server = LocalVisdom(env_path=str(tmp_path / "envs")).start()
    plotter = VisdomPlotter(own_server.url, "moved", out_dir=str(tmp_path / "run"), min_interval=0.05)
    plotter.add("w", "t", 1, 1.0)
    assert plotter.flush(30)  # connected: the server proved it holds the token
    own_server.stop()
    squatter = subprocess.Popen([sys.executable, "-c", SQUATTER, str(own_server.port), "http://127.0.0.1:9", PRIVATE],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert squatter.stdout.readline().strip() == "ready"
        plotter.add("w", "t", 2, 2.0)
        assert not plotter.close(timeout=10)  # nothing saved there: the points stay in the record
    finally:
        squatter.terminate()
        seen = squatter.communicate(timeout=30)[0]
    token = open(token_path()).read().strip()
    assert seen and token not in seen and HEADER.lower() not in seen.lower()


def test_a_plotter_or_logger_without_an_address_goes_to_this_users_server(monkeypatch):
    """Nothing named: not whatever answers on 8097, but this user's shared server (started if none runs)."""
    from handlers import VisdomLogger

    monkeypatch.delenv("VISDOM_URL", raising=False)
    monkeypatch.setattr(shared, "DEFAULT_PORT", free_port())  # 8097 may be anyone's here
    try:
        plotter = VisdomPlotter(env="bare")
        mine = shared.held()
        assert mine is not None and plotter.url == mine.url
        assert VisdomLogger(env="bare").plotter.url == mine.url
        plotter.closed = True
    finally:
        server = shared.release()
        if server is not None:
            os.kill(server.pid, 15)


def _package(tmp_path, main: str) -> str:
    folder = tmp_path / "package"
    folder.mkdir(parents=True)
    (folder / "package.json").write_text(json.dumps({"main": main}))
    return str(folder)


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm fetches Visdom's browser files (.ci/browser installs it)")
def test_visdom_browser_files_must_match_their_pinned_digest(tmp_path):
    spec = "classnames@2.2.5"
    done = _npm_pack("npm", spec, str(tmp_path))
    tarball = os.path.join(tmp_path, done.stdout.strip().splitlines()[-1])
    check_digest(spec, tarball)  # the registry's bytes: accepted
    with tarfile.open(tarball) as tar:
        assert any(m.name.endswith("index.js") for m in tar.getmembers())
    with open(tarball, "ab") as f:
        f.write(b"\0")  # one byte more: a tampered mirror
    with pytest.raises(RuntimeError, match="is not the one pinned"):
        check_digest(spec, tarball)
    with pytest.raises(RuntimeError, match="no pinned digest"):
        check_digest("left-pad@1.3.0", tarball)


def test_a_packages_main_file_outside_the_package_is_refused(tmp_path):
    assert _main_file(_package(tmp_path / "a", "dist/x.js")) == "dist/x.js"
    with pytest.raises(RuntimeError, match="outside the package"):
        _main_file(_package(tmp_path / "b", "../../../../etc/passwd"))


def test_every_browser_package_of_both_visdom_versions_is_pinned():
    from handlers.visdom_server.assets import required_files

    assert {spec for spec, _ in required_files().values()} <= set(PINNED)
    assert all(len(d) == 88 and d.endswith("==") for d in PINNED.values())  # sha512, base64


def test_the_server_reads_the_token_from_the_users_file_never_its_command_line(server):
    cmdline = open(f"/proc/{server.process.pid}/cmdline", "rb").read().decode()
    assert open(token_path()).read().strip() not in cmdline and "--token-file" in cmdline
    assert oct(os.stat(token_path()).st_mode & 0o777) == "0o600"


def test_a_visdom_client_of_your_own_draws_once_it_sends_the_token(server):
    """What the README tells a user whose code calls ``visdom.Visdom`` directly."""
    from visdom import Visdom

    host, port = server.url.rsplit(":", 1)
    vis = Visdom(server=host, port=int(port), use_incoming_socket=False, raise_exceptions=False)
    vis.session.headers[HEADER] = open(token_path()).read().strip()
    vis.line(Y=[1.0, 0.5], X=[1, 2], win="mine", env="own-client")
    assert _exists(server, "own-client", "mine")


PANE_SCRIPT = textwrap.dedent("""
    import json, sys, urllib.request, urllib.error
    pane = {"data": [{"content": "<img src=x onerror=\\"document.title='owned'\\">", "type": "text"}],
            "win": "pane", "eid": "victim"}
    try:
        urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/events", data=json.dumps(pane).encode()),
                               timeout=10)
        print(200)
    except urllib.error.HTTPError as e:
        print(e.code)
""")


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or _nobody_python() is None,
                    reason="running as a second local account (nobody) needs root and a system Python")
def test_a_pane_another_account_posts_never_runs_script_in_the_users_browser(server):
    """The attack in a real browser: ``nobody`` posts a text pane whose image handler retitles the page; the user then
    opens the env by the printed link in headless Chromium. The post is refused, and no script of it runs."""
    from test_visdom_ui import browse

    done = subprocess.run([_nobody_python(), "-c", PANE_SCRIPT, server.url], user="nobody", group="nogroup",
                          capture_output=True, text=True, timeout=60, cwd="/")
    assert done.stdout.strip() == "403", done.stdout + done.stderr
    dom = browse(page_link(server.url, "victim"), "--virtual-time-budget=5000", "--dump-dom").stdout
    assert "<title>owned</title>" not in dom and "onerror" not in dom and "<title>" in dom
