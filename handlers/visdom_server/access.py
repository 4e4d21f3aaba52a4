"""This user's secret for the local Visdom servers the project starts (as Jupyter's token).

Loopback keeps other machines out, not other accounts of the same machine: without a secret any local user
lists every env, reads the curves and stores a pane that runs script in this user's browser. So each server
the project starts answers every request (page, API, static file, websocket) that does not carry the user's
token with 403: the printed link carries it (``?token=...``, which the server turns into a same-site cookie
for the page's own requests), and the project's clients send it in a header. A client sends it only to a
server that first proves it holds it (an HMAC of a fresh nonce, ``PROOF_PATH``), so a program squatting the
port (another account's, say) never learns it, and a start that reaches anything but its own server fails.

Standard library only: the server process (``serve.py``) loads this file by path.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import tempfile
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["HEADER", "COOKIE", "PROOF_PATH", "token_path", "user_token", "proof", "proves", "verified", "page_link"]

HEADER = "X-D2L-Ignite-Token"
COOKIE = "d2l_ignite_token"
PROOF_PATH = "/d2l-ignite/proof"
PRIVATE = "this Visdom server is private to the account that started it"  # the refusal's first words
_verified: dict[str, str] = {}  # url -> the token it proved to hold, per process


def token_path() -> str:
    """``~/.cache/d2l-ignite/token``: one per account, whatever state folder a run uses."""
    return os.path.join(os.path.expanduser("~"), ".cache", "d2l-ignite", "token")


def user_token(path: str | None = None) -> str:
    """The account's token, made (0600, in a 0700 folder) on first use; refused when the file or its folder is
    not this user's alone (a token someone else can read or plant is no secret)."""
    path = path or token_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    _private(os.path.dirname(path), stat.S_ISDIR, 0o022)
    if os.path.lexists(path):
        _private(path, stat.S_ISREG, 0o077)
    if not os.path.lexists(path):  # written whole, then linked in: a reader never sees half a token
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".token-")
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process made it first: theirs counts
            pass
        finally:
            os.remove(tmp)
    with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW)) as f:
        return f.read().strip()


def _private(where: str, kind: object, open_bits: int) -> None:
    info = os.lstat(where)
    if not kind(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & open_bits:  # type: ignore[operator]
        raise PermissionError(f"{where} is not private to this user (a link, another user's, or open to others); "
                              "remove it: the plots' secret is made again")


def proof(token: str, nonce: str, port: int) -> str:
    """The answer only the token's holder can give, bound to the port it listens on: a program on another port
    that relays the nonce to one of this user's servers gets that server's answer, which is not its own."""
    return hmac.new(token.encode(), f"{nonce}:{port}".encode(), hashlib.sha256).hexdigest()


def proves(url: str, token: str, timeout: float = 2.0) -> bool | None:
    """Whether the server at ``url`` proves it holds ``token``: True, False (something else answers there), or
    None (nothing answers yet)."""
    nonce = secrets.token_hex(16)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    try:
        with opener.open(f"{url}{PROOF_PATH}?nonce={nonce}", timeout=timeout) as r:
            answer = r.read(200).decode(errors="replace").strip()
    except urllib.error.HTTPError:
        return False
    except (OSError, ValueError):
        return None
    return hmac.compare_digest(answer, proof(token, nonce, urllib.parse.urlsplit(url).port or 80))


def verified(url: str, timeout: float = 2.0) -> str | None:
    """This user's token when the server at ``url`` proves it holds it, else None (a server of someone else's,
    or a plain Visdom): what a client may send there. A proven URL is not asked again in this process."""
    if url not in _verified:
        try:
            token = user_token()
        except OSError:
            return None
        if not proves(url, token, timeout):
            return None  # not kept: this user's server may answer there later
        _verified[url] = token
    return _verified[url]


def page_link(url: str, env: str | None = None, shown_at: str | None = None) -> str:
    """The link to print for ``env`` on ``url`` (reached through ``shown_at``, e.g. a Jupyter proxy's path): with
    the token when the server is this user's own."""
    base = shown_at or url
    link = f"{base}/env/{env}" if env else base
    token = verified(url)
    return f"{link}?{urllib.parse.urlencode({'token': token})}" if token else link
