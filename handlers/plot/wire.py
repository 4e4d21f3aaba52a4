"""Visdom's wire, without Visdom's blocking client: URLs, appends, timeouts, login, the private server's token."""
from __future__ import annotations

import hashlib
import json
import os
from urllib.parse import urlparse

import requests

__all__ = ["VisdomAddress", "append_message", "Wire", "NotVisdomError"]


class NotVisdomError(requests.ConnectionError):
    """The address answers HTTP, but not as Visdom does: nothing sent there counts as delivered."""


class VisdomAddress:
    """A parsed, checked server URL such as ``http://127.0.0.1:8097`` (optionally with a base path)."""

    def __init__(self, url: str) -> None:
        if not isinstance(url, str) or not url.strip():
            raise ValueError(f"Visdom URL must be a non-empty string like http://127.0.0.1:8097, got {url!r}")
        parsed = urlparse(url if "://" in url else f"http://{url}")
        try:
            port = parsed.port
        except ValueError:
            port = -1
        if parsed.scheme not in ("http", "https") or not parsed.hostname or port == -1 or " " in url:
            raise ValueError(f"malformed Visdom URL {url!r}; expected http://HOST:PORT, e.g. http://127.0.0.1:8097")
        self.scheme, self.host = parsed.scheme, parsed.hostname
        self.port = port or 8097
        self.base = parsed.path.rstrip("/")
        self.url = f"{self.scheme}://{self.host}:{self.port}{self.base}"

    def endpoint(self, name: str) -> str:
        return f"{self.url}/{name}"

    def __str__(self) -> str:
        return self.url


def append_message(env: str, win: str, trace: str, points: list[tuple[float, float]], markers: bool = False) -> dict:
    """One ``update`` message that appends ``points`` to a trace of an existing window."""
    return {
        "data": [{"x": [p[0] for p in points], "y": [p[1] for p in points], "name": trace, "type": "scatter",
                  "mode": "lines+markers" if markers else "lines"}],
        "win": win, "eid": env, "name": trace, "append": True, "layout": {}, "opts": {},
    }


class Wire:
    """HTTP to one Visdom server with connect/read timeouts and optional login from the environment."""

    def __init__(self, address: VisdomAddress, connect_timeout: float = 2.0, read_timeout: float = 10.0,
                 credentials: tuple[str, str] | None = None) -> None:
        self.address = address
        self.timeout = (connect_timeout, read_timeout)
        self.credentials = credentials  # (username, password); None: $VISDOM_USERNAME / $VISDOM_PASSWORD
        self._session: requests.Session | None = None

    def _login(self, session: requests.Session) -> bool:
        """Visdom's own login, when credentials are set; whether it logged in."""
        user, password = self.credentials or (os.environ.get("VISDOM_USERNAME"), os.environ.get("VISDOM_PASSWORD"))
        if user and password:
            digest = hashlib.sha256(password.encode()).hexdigest()
            r = session.post(self.address.url + "/", json={"username": user, "password": digest}, timeout=self.timeout)
            if r.status_code != 200:
                raise PermissionError(f"Visdom at {self.address} refused the login of user {user!r}")
        return bool(user and password)

    def _ask(self, session: requests.Session) -> requests.Response:
        """What only Visdom answers ("true"/"false" to win_exists)."""
        return session.post(self.address.endpoint("win_exists"), data=json.dumps({"eid": "main", "win": "d2l-probe"}),
                            timeout=self.timeout)

    def connect(self) -> requests.Session:
        """The connection, made on first use: one question only Visdom answers (a server of this user's that asks
        for the token gets it once it proves it holds it, ``access.py``), the login, the question again if needed."""
        if self._session is None:
            from handlers.visdom_server.access import HEADER, PRIVATE, verified

            session = requests.Session()
            session.trust_env = False  # loopback plots must not go through a proxy
            r: requests.Response | None = self._ask(session)
            if r.status_code == 403 and r.text.startswith(PRIVATE):  # type: ignore[union-attr]
                token = verified(self.address.url)
                if token is None:
                    raise PermissionError(f"Visdom at {self.address} is private to another account (it does not "
                                          "hold this account's token); plot to a server of your own")
                session.headers[HEADER], r = token, None
                session.mount(self.address.url, _proving(self.address.url, token))
            if self._login(session) or r is None:
                r = self._ask(session)
            if r.status_code != 200 or r.text.strip() not in ("true", "false"):
                raise NotVisdomError(f"{self.address} answers HTTP {r.status_code}, but not as a Visdom server does")
            self._session = session
        return self._session

    def post(self, endpoint: str, msg: dict) -> str:
        session = self.connect()
        try:
            r = session.post(self.address.endpoint(endpoint), data=json.dumps(msg), timeout=self.timeout)
            r.raise_for_status()
        except requests.RequestException:
            self._session = None
            raise
        return r.text

    def is_visdom(self) -> bool:
        """True when a Visdom server answers here (and accepts the login, if one is set)."""
        try:
            self.connect()
            return True
        except (requests.RequestException, PermissionError):
            return False


def _proving(url: str, token: str) -> requests.adapters.HTTPAdapter:
    """Connections to ``url`` that carry the token only to a listener that proves it holds it, each time one is
    made: a keep-alive connection is re-made silently, and the server a plotter proved may be gone and its port
    taken by another program since (the proof reaches whoever holds the port, i.e. this connection's peer)."""
    import urllib3
    from requests.adapters import HTTPAdapter

    from handlers.visdom_server.access import proves

    class Proven(urllib3.connection.HTTPConnection):
        def connect(self) -> None:
            super().connect()
            if not proves(url, token):
                self.close()
                raise ConnectionRefusedError(f"{url} no longer proves it is this user's server: the token is not sent")

    class Pool(urllib3.HTTPConnectionPool):
        ConnectionCls = Proven

    adapter = HTTPAdapter()
    adapter.poolmanager.pool_classes_by_scheme = {**adapter.poolmanager.pool_classes_by_scheme, "http": Pool}
    return adapter
