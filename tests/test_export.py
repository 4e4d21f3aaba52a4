"""A run's own record, long traces and ``d2l-ignite export``: the run folder holds its env (as the page shows
it), every point (``curves.npz``), and from them a self-contained HTML page and a CSV."""
from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from handlers import LocalVisdom, VisdomPlotter
from handlers.plot.decimate import LIMIT, decimate
from handlers.plot.record import read_points
from handlers.visdom_server.access import page_link
from visdom_util import trace_counts


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.app", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


def test_a_decimated_trace_keeps_its_envelope_its_ends_and_its_gaps():
    rng = np.random.default_rng(0)
    xs = np.arange(100_000, dtype=float)
    ys = np.sin(xs / 500) + rng.normal(0, 0.1, len(xs))
    ys[31_337], ys[77_777], ys[50_000] = 40.0, -40.0, np.nan
    vx, vy = decimate(xs, ys)
    assert len(vx) <= LIMIT and (np.diff(vx) > 0).all()
    assert np.nanmax(vy) == 40.0 and np.nanmin(vy) == -40.0 and np.isnan(vy).sum() == 1
    assert (vx[0], vx[-1]) == (0.0, 99_999.0)
    for lo, hi in [(0, 10_000), (60_000, 70_000)]:  # each stretch keeps its own highs and lows
        inside = (vx >= lo) & (vx < hi)
        assert np.nanmax(vy[inside]) == np.nanmax(ys[lo:hi]) and np.nanmin(vy[inside]) == np.nanmin(ys[lo:hi])
    short_x, short_y = decimate(xs[:LIMIT], ys[:LIMIT])
    assert len(short_x) == LIMIT  # short traces go as they are


def _long_run(url: str, out_dir, n: int = 30_000) -> VisdomPlotter:
    plotter = VisdomPlotter(url, "long", out_dir=str(out_dir), connect_timeout=0.2, min_interval=0.05)
    plotter.window("loss", ["loss"], xlabel="iteration")
    for i in range(n):
        plotter.add("loss", "loss", i, math.exp(-i / 5000) + (1.0 if i == 12_345 else 0.0))
    for epoch in range(3):
        plotter.add("acc", "test acc", epoch + 1, 0.5 + epoch / 10)
    return plotter


def test_a_long_trace_reaches_the_page_as_its_view_and_the_record_keeps_every_point(tmp_path):
    with LocalVisdom(env_path=str(tmp_path / "server")) as server:
        plotter = _long_run(server.url, tmp_path / "run")
        assert plotter.close()
        shown = trace_counts(server.url, "long", "loss")["loss"]
        assert 1000 < shown <= LIMIT and trace_counts(server.url, "long", "acc") == {"test acc": 3}
    saved = json.loads((tmp_path / "run" / "visdom" / "long.json").read_text())
    loss = saved["jsons"]["loss"]["content"]["data"][0]
    assert len(loss["x"]) == shown and max(loss["y"]) == pytest.approx(math.exp(-12_345 / 5000) + 1.0)
    record = {w: traces for w, _, traces in read_points(str(tmp_path / "run" / "curves.npz"))}
    assert len(record["loss"]["loss"][0]) == 30_000 and len(record["acc"]["test acc"][0]) == 3


def test_export_writes_every_point_as_csv_and_says_what_is_missing(tmp_path):
    plotter = _long_run("http://127.0.0.1:9", tmp_path / "runs" / "r1", n=5000)
    plotter.close()
    done = _cli("export", "r1", "--csv", cwd=tmp_path)  # an env name under ./runs
    assert done.returncode == 0, done.stderr
    with open(tmp_path / "runs" / "r1" / "curves.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["window", "trace", "x", "y", "wall_time"] and len(rows) == 1 + 5000 + 3
    assert rows[-1][:4] == ["acc", "test acc", "3.0", repr(0.5 + 2 / 10)]
    assert abs(float(rows[-1][4]) - os.path.getmtime(tmp_path / "runs" / "r1" / "curves.npz")) < 60  # its wall time
    os.makedirs(tmp_path / "empty")
    for run, message in [("empty", "holds no curves.npz"), ("nowhere", "no run folder 'nowhere'")]:
        done = _cli("export", run, cwd=tmp_path)
        assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_the_exported_page_draws_every_window_in_a_browser_with_no_server(tmp_path):
    from test_visdom_ui import ARTIFACTS, browse

    plotter = _long_run("http://127.0.0.1:9", tmp_path / "run", n=200_000)
    plotter.close()
    done = _cli("export", str(tmp_path / "run"), "--html", str(tmp_path / "page.html"))
    assert done.returncode == 0 and "2 windows" in done.stdout, done.stderr
    page = (tmp_path / "page.html").read_text()
    assert "cdn" not in page.lower().split("<script>", 1)[0] and "http" not in page.split("const figures")[1]
    dom = browse((tmp_path / "page.html").as_uri(), "--dump-dom").stdout
    assert 'data-drawn="2"' in dom and len(re.findall(r'class="trace scatter', dom)) == 2
    ARTIFACTS.mkdir(exist_ok=True)
    browse((tmp_path / "page.html").as_uri(), f"--screenshot={ARTIFACTS / 'export-html.png'}")
    assert (ARTIFACTS / "export-html.png").stat().st_size > 10_000


@pytest.mark.slow
def test_a_million_point_trace_draws_in_a_browser(tmp_path):
    from test_visdom_ui import ARTIFACTS, browse

    with LocalVisdom(env_path=str(tmp_path / "server")) as server:
        plotter = _long_run(server.url, tmp_path / "run", n=1_000_000)
        assert plotter.close()
        assert trace_counts(server.url, "long", "loss")["loss"] <= LIMIT
        dom = browse(page_link(server.url, "long"), "--dump-dom").stdout
        ARTIFACTS.mkdir(exist_ok=True)
        browse(page_link(server.url, "long"), f"--screenshot={ARTIFACTS / 'page-1M-points.png'}")
    assert len(re.findall(r'class="trace scatter', dom)) == 2  # the loss window and the acc window
    assert (ARTIFACTS / "page-1M-points.png").stat().st_size > 10_000


def test_a_hostile_trace_name_neither_blanks_the_page_nor_runs_script(tmp_path):
    """Issue 36: a trace named ``<!--<script>`` (or ``</script><script>...``) stays text in the exported page."""
    from test_visdom_ui import browse

    from handlers.plot.base import Plotter

    names = ["<!--<script>", "</script><script>document.title='owned'</script>", "=HYPERLINK(\"x\")"]
    with Plotter("hostile", out_dir=str(tmp_path / "run")) as plotter:
        for i, name in enumerate(names):
            plotter.add("w", name, i, i / 10)
    done = _cli("export", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    dom = browse((tmp_path / "run" / "curves.html").as_uri(), "--dump-dom").stdout
    assert 'data-drawn="1"' in dom and "owned" not in re.search(r"<title>(.*?)</title>", dom).group(1)
    rows = list(csv.reader(open(tmp_path / "run" / "curves.csv")))
    assert [r[1] for r in rows[1:]] == names[:2] + ["'" + names[2]]  # no cell a spreadsheet runs as a formula


def test_export_into_an_existing_folder_writes_there_and_leaves_no_temporary_file(tmp_path):
    """Issue 38: ``--csv DIR`` named a temporary file in its error and left a ``.tmp-*`` copy each try."""
    from handlers.plot.base import Plotter
    from handlers.local import write_atomic

    with Plotter("r", out_dir=str(tmp_path / "run")) as plotter:
        plotter.add("w", "t", 1, 0.5)
    (tmp_path / "out").mkdir()
    done = _cli("export", str(tmp_path / "run"), "--csv", str(tmp_path / "out"), "--html", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["curves.csv", "curves.html"]
    (tmp_path / "taken").mkdir()
    with pytest.raises(IsADirectoryError):
        write_atomic(str(tmp_path / "taken"), lambda f: f.write(b"x"))
    assert [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")] == []
