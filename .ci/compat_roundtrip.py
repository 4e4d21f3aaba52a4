"""A Visdom round trip with the installed package: a local server up, points delivered, its page and
browser files served. Run by ``make compat`` in each Python's venv, from a folder outside the repo."""
from __future__ import annotations

import json
import re
import sys
import tempfile

import requests

from handlers import LocalVisdom, VisdomPlotter


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        server = LocalVisdom(None, env_path=f"{folder}/envs").start()
        try:
            plotter = VisdomPlotter(server.url, "compat", out_dir=folder, live=True)
            plotter.window("w", ("a", "b"), xlabel="x")
            for i in range(5):
                plotter.add("w", "a", i, i * 0.5)
                plotter.add("w", "b", i, 1 - i * 0.1)
            assert plotter.close(), "the plotter did not deliver every point"
            got = requests.post(f"{server.url}/win_data", data=json.dumps({"eid": "compat", "win": "w"}), timeout=10)
            counts = {t["name"]: len(t["x"]) for t in json.loads(got.text)["content"]["data"]}
            assert counts == {"a": 5, "b": 5}, counts
            page = requests.get(f"{server.url}/env/compat", timeout=10)
            assert page.status_code == 200, page.status_code
            files = re.findall(r"""<script[^>]*\bsrc=["']?([^"' >]+)""", page.text)
            assert files, "the page names no browser files"
            for src in files:
                url = src if src.startswith("http") else f"{server.url}/{src.lstrip('/')}"
                assert url.startswith(server.url), f"the page loads {src} from elsewhere"
                status = requests.get(url, timeout=10).status_code
                assert status == 200, f"{src}: {status}"
        finally:
            server.stop()
    print(f"visdom round trip ok: 10 points, page and {len(files)} browser files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
