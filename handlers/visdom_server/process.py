"""A local Visdom server for the user: loopback by default, a free or chosen port, envs kept on disk.

It runs visdom's ``run_server.main`` directly, which skips the CDN download that kills
``python -m visdom.server`` offline; the browser files come from npm instead (``assets``). The
process refuses requests from other web pages (``serve.py``).
"""
from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import secrets
import time
import warnings

from handlers.local import free_port, port_in_use
from handlers.plot.report import runs_path, say
from handlers.visdom_server.access import proves, token_path, user_token
from handlers.visdom_server.assets import install_assets

__all__ = ["LocalVisdom"]

_SERVE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "serve.py")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class LocalVisdom:
    """Start, wait for, and stop one Visdom server process.

    The server ends with the process that started it (even by ``kill -9``; any thread may start it),
    unless ``shared`` names the state folder of a shared server (``shared.py``): then it ends ``linger``
    seconds after the last process leasing it there.
    """

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        env_path: str | None = None,  # default: runs/visdom
        *,
        login: bool = False,
        install: bool = True,
        shared: str | None = None,
        linger: float = 30.0,
        watch_runs: str | None = None,
        base_url: str = "",
    ) -> None:
        if port is not None and not (0 < port < 65536):
            raise ValueError(f"port must be between 1 and 65535, got {port}")
        if host not in ("127.0.0.1", "0.0.0.0") and not _is_loopback(host):
            raise ValueError(f"host must be 127.0.0.1 (this machine only) or 0.0.0.0 (every interface), got {host!r}")
        self.host, self.port, self.login, self.install = host, port, login, install
        self.shared, self.linger, self.watch_runs = shared, linger, watch_runs  # watch_runs: serve runs saved later
        self.base_url = "/" + base_url.strip("/") if base_url.strip("/") else ""  # every path under it (a proxy's)
        self.env_path = env_path or runs_path("visdom")
        self.process: subprocess.Popen | None = None
        self.token: str | None = None

    @property
    def url(self) -> str:
        return f"http://{'127.0.0.1' if self.host == '0.0.0.0' else self.host}:{self.port}{self.base_url}"

    def start(self, timeout: float = 60.0) -> LocalVisdom:
        probe = "0.0.0.0" if self.host == "0.0.0.0" else "127.0.0.1"
        if self.port is None:
            self.port = free_port(probe)
        elif port_in_use(probe, self.port):
            raise ValueError(f"port {self.port} is already in use; choose another with --port, or omit it for a "
                             "free one")
        if self.login and not (os.environ.get("VISDOM_USERNAME") and os.environ.get("VISDOM_PASSWORD")):
            raise ValueError("login needs VISDOM_USERNAME and VISDOM_PASSWORD in the environment (never on the "
                             "command line)")
        if not _is_loopback(self.host) and not self.login:
            warnings.warn(f"Visdom will listen on every interface ({self.host}) without login: anyone who can reach "
                          "this machine sees and edits the plots; use --login or keep 127.0.0.1", stacklevel=2)
        if self.install:
            install_assets(say=say)
        os.makedirs(self.env_path, exist_ok=True)
        lifetime = ["--shared", self.shared, "--linger", str(self.linger)] if self.shared else \
            ["--watch-pid", str(os.getpid())]
        if self.watch_runs:
            lifetime += ["--watch-runs", os.path.abspath(self.watch_runs)]
        if _is_loopback(self.host):  # every request must carry the user's token (access.py), read from its file;
            self.token = user_token()  # on every interface Visdom's own --login guards the server instead
            lifetime += ["--token-file", token_path()]
        args = [sys.executable, _SERVE, *([] if _is_loopback(self.host) else ["--any-ip"]), *lifetime, "--",
                "-port", str(self.port), "-env_path", os.path.abspath(self.env_path)]
        if self.base_url:
            args += ["-base_url", self.base_url]
        if _is_loopback(self.host):
            args.append("-bind_local")
        env = dict(os.environ)
        if self.login:
            args += ["-enable_login", "-force_new_cookie"]  # never reuse a secret an earlier launch left
            _login_environment(env)
        log = os.open(os.path.join(self.env_path, "server.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW,
                      0o600)  # a link planted there is refused (ELOOP), never appended through
        self._log = os.fdopen(log, "ab")
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                        stdin=subprocess.DEVNULL, start_new_session=True, umask=0o077)
        self._wait(timeout)
        return self

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = proves(self.url, self.token) if self.token else _answers(self.url)
            if answer:
                return
            if answer is False:  # the port answers, but not as the server just started: someone else holds it
                self.stop()
                raise RuntimeError(f"port {self.port} answers, but not as the Visdom server just started (another "
                                   "program, perhaps another account's, took it first); the plots were not sent "
                                   "there. Choose another port (--port), or omit it for a free one")
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Visdom server exited with code {self.process.returncode}; "
                                   f"see {os.path.join(self.env_path, 'server.log')}")
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"Visdom server did not answer at {self.url} within {timeout:.0f}s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        log = getattr(self, "_log", None)
        if log is not None and not log.closed:  # the parent's handle on server.log
            log.close()

    def __enter__(self) -> LocalVisdom:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _answers(url: str) -> bool | None:
    """Whether a server answers the page at ``url`` (None: not yet)."""
    import requests

    try:
        return requests.get(url + "/", timeout=2).status_code in (200, 302) or None
    except requests.RequestException:
        return None


def _login_environment(env: dict[str, str]) -> None:
    """Visdom's own login reads the credentials from the environment, never the command line."""
    env["VISDOM_USE_ENV_CREDENTIALS"] = "1"
    env.setdefault("VISDOM_COOKIE", secrets.token_hex(32))  # signs the session cookie; never printed
    secret_dir = os.path.expanduser("~/.visdom")  # where visdom writes that secret
    os.makedirs(secret_dir, mode=0o700, exist_ok=True)
    os.chmod(secret_dir, 0o700)
