"""Long traces and many windows: the live page's load and first-draw time in headless Chromium for
100k and 1M points per trace (sent as the page's view), beside 100k sent whole (what an undecimated
plot would hold); the env file sizes; and the PNG of 1000 windows (seconds, memory while drawing).

``python -m bench pages [--quick] [--shots DIR]``; ``--shots`` keeps a screenshot of each page.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

from bench.browser import Browser
from handlers import LocalVisdom, VisdomPlotter
from handlers.plot.record import window_message
from handlers.plot.wire import Wire, VisdomAddress

DRAWN = "document.querySelectorAll('.trace.scatter').length >= 1"

PNG_CHILD = """
import resource, sys, time
from handlers.plot.store import PlotStore
from handlers.plot.png import save_png
store = PlotStore()
for w in range(1000):
    name = f"weights_norm/layer{w}/weight"
    store.window(name, {"title": name, "legend": ["v"]})
    for i in range(50):
        store.add(name, "v", i, 1.0 / (1 + i + w))
import tracemalloc
start = time.perf_counter()
save_png(store, sys.argv[1])
seconds = time.perf_counter() - start
tracemalloc.start()  # a second drawing, traced (tracing slows it): the memory it allocates at its peak
save_png(store, sys.argv[1])
peak = tracemalloc.get_traced_memory()[1]
print(seconds, peak / 2**20, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def _points(n: int) -> list[tuple[float, float]]:
    return [(float(i), math.exp(-i / (n / 5)) + 0.05 * math.sin(i / 37)) for i in range(n)]


def viewed(server: LocalVisdom, n: int, folder: str) -> dict:
    """A plotter given ``n`` points, closed: what reaches the page, and how long close() took."""
    env = f"view-{n}"
    plotter = VisdomPlotter(server.url, env, out_dir=os.path.join(folder, env), min_interval=0.5)
    for x, y in _points(n):
        plotter.add("loss", "loss", x, y)
    start = time.perf_counter()
    assert plotter.close(), "the server did not save every point"
    return {"env": env, "close_s": time.perf_counter() - start,
            "run_env_mb": os.path.getsize(os.path.join(folder, env, "visdom", f"{env}.json")) / 1e6}


def whole(server: LocalVisdom, n: int) -> dict:
    """The same trace posted whole (no view): the page an undecimated plot gives."""
    env, wire = f"whole-{n}", Wire(VisdomAddress(server.url), read_timeout=600)
    wire.post("events", window_message(env, "loss", {"title": "loss"}, {"loss": _points(n)}))
    wire.post("save", {"data": [env], "eid": env})
    return {"env": env, "close_s": float("nan"), "run_env_mb": float("nan")}


def png_of_many_windows(folder: str) -> tuple[float, float, float]:
    """``(seconds, MB allocated at the peak while drawing, the process's peak resident MB)``."""
    done = subprocess.run([sys.executable, "-c", PNG_CHILD, os.path.join(folder, "many.png")], capture_output=True,
                          text=True, timeout=600, check=True)
    seconds, drawing, resident = (float(v) for v in done.stdout.split())
    return seconds, drawing, resident


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="bench pages")
    p.add_argument("--quick", action="store_true", help="100k points only")
    p.add_argument("--shots", default=None, help="keep a screenshot of each page here")
    args = p.parse_args(argv)
    sizes = [100_000] if args.quick else [100_000, 1_000_000]
    rows = []
    with tempfile.TemporaryDirectory() as folder, LocalVisdom(env_path=os.path.join(folder, "server")) as server:
        cases = [(n, viewed(server, n, folder)) for n in sizes] + [(100_000, whole(server, 100_000))]
        browser = Browser()
        try:
            browser.open(f"{server.url}/env/{cases[-1][1]['env']}", DRAWN)  # warm-up: the browser's first page
            for n, case in cases:
                load, draw = browser.open(f"{server.url}/env/{case['env']}", DRAWN)
                if args.shots:
                    os.makedirs(args.shots, exist_ok=True)
                    browser.screenshot(os.path.join(args.shots, f"page-{case['env']}.png"))
                server_mb = os.path.getsize(os.path.join(server.env_path, f"{case['env']}.json")) / 1e6
                rows.append(dict(case, points=n, load_s=load, draw_s=draw, server_env_mb=server_mb))
        finally:
            browser.close()
        png = png_of_many_windows(folder)
    print("| trace | points | close() s | page load s | first draw s | env file MB (server / run folder) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        kind = "sent whole" if r["env"].startswith("whole") else "page view"
        print(f"| {kind} | {r['points']:,} | {r['close_s']:.2f} | {r['load_s']:.2f} | {r['draw_s']:.2f} | "
              f"{r['server_env_mb']:.2f} / {r['run_env_mb']:.2f} |")
    base = next(r for r in rows if r["env"] == "whole-100000")
    view = next(r for r in rows if r["env"] == "view-100000")
    print(f"first draw, 100k points: page view / sent whole = {view['draw_s'] / base['draw_s']:.2f}")
    print(f"PNG of 1000 windows: {png[0]:.2f} s, {png[1]:.0f} MB allocated at the peak while drawing (process peak "
          f"resident {png[2]:.0f} MB, torch included)")
    print(json.dumps({"pages": rows, "png_1000_windows": {"seconds": png[0], "drawing_mb": png[1],
                                                          "resident_mb": png[2]}}))
