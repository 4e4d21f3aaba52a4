"""Where a Visdom page is and how a person reaches it: the printed link, the SSH tunnel that opens it from another
machine, and in Jupyter the live frame (through jupyter-server-proxy or Colab's proxy when the kernel is remote)."""
from __future__ import annotations

import os
import sys
from typing import Any
from urllib.parse import urlsplit

from handlers.plot.wire import VisdomAddress
from handlers.progress import in_notebook
from handlers.visdom_server.access import page_link

__all__ = ["LOCAL", "announce", "jupyter_proxy_path", "proxied", "show_frame", "ssh_hint"]

LOCAL = ("127.0.0.1", "localhost", "::1")


def announce(plotter: Any, url: str | None = None) -> None:
    """Print the page's link before the first step (``url``: the server now, when it moved); in Jupyter also show
    the live window under the cell."""
    link = page_link(plotter.url, plotter.env, shown_at=url)
    whose = "  (your own server, as $VISDOM_URL or --visdom says)" if getattr(plotter, "yours", False) else ""
    print(f"Live plots: {link}{whose}", flush=True)
    hint = ssh_hint(link) if "google.colab" not in sys.modules else None
    if hint:
        print(hint, flush=True)
    if in_notebook():
        show_frame(link)


def proxied() -> bool:
    """In a Jupyter kernel, with a Jupyter server of this user's on this machine whose jupyter-server-proxy
    answers (JupyterLab or JupyterHub on a remote box). Asked of the server, not of an import: nbconvert,
    VS Code and other kernels without such a server get a frame on the page's own address instead."""
    if not in_notebook():
        return False
    if not _proxy_answer:
        _proxy_answer.append(_proxy_answers())
    return _proxy_answer[0]


_proxy_answer: list[bool] = []  # asked once per process


def _proxy_answers() -> bool:
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return False
    import requests

    for info in list_running_servers():
        try:  # the proxy's handler answers for any port (502 when nothing listens); without it: 404
            r = requests.get(info["url"].rstrip("/") + "/proxy/absolute/1/", params={"token": info.get("token", "")},
                             timeout=2, allow_redirects=False)
        except (requests.RequestException, KeyError):
            continue
        if r.status_code != 404:
            return True
    return False


def jupyter_proxy_path(port: int) -> str:
    """Where jupyter-server-proxy serves ``port`` unchanged: ``[hub prefix]/proxy/absolute/PORT`` (the server
    runs under that path, so its pages' own links work through the proxy)."""
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/").rstrip("/")
    return f"{prefix}/proxy/absolute/{port}"


def show_frame(link: str) -> None:
    """The live window under the cell. A remote kernel's loopback is not the browser's: with
    jupyter-server-proxy the frame opens the page through Jupyter's own origin; in Colab through Colab's
    proxy for the kernel port (a whole origin of its own, so Visdom's absolute paths work)."""
    address, parts = VisdomAddress(link), urlsplit(link)
    local = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")  # the token stays with the path
    if proxied() and address.host in LOCAL and address.base.startswith(jupyter_proxy_path(address.port)):
        link = local  # the page's own origin (Jupyter's), which the browser reaches wherever it is
    elif "google.colab" in sys.modules and address.host in LOCAL:
        from google.colab import output  # type: ignore[import-not-found]

        output.serve_kernel_port_as_iframe(address.port, path=local, height=480)
        return
    from IPython.display import IFrame, display

    display(IFrame(link, width="100%", height=480))


def ssh_hint(link: str) -> str | None:
    """On a machine reached over SSH, the tunnel that makes a loopback link open in the user's own browser:
    to the address and port this SSH session came in on (``$SSH_CONNECTION``: client ip, port, server ip, port)."""
    address = VisdomAddress(link)
    fields = os.environ.get("SSH_CONNECTION", "").split()
    if address.host not in LOCAL or len(fields) < 4:
        return None
    import getpass

    host, port = fields[2], fields[3]
    flag = f" -p {port}" if port != "22" else ""
    return (f"  (this machine is reached over SSH: on yours, run `ssh -N -L {address.port}:127.0.0.1:{address.port}"
            f"{flag} {getpass.getuser()}@{host}` and open the link there)")
