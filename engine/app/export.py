"""``d2l-ignite export RUN``: a run's curves without a server: one self-contained HTML page, and a CSV of
every point, both from the run folder's ``curves.npz`` (the plotter writes it at close).

The page inlines the Plotly the ``plotly`` package ships (no CDN, no npm, no server: it opens from a mail
attachment or a laptop), drawing each trace as the live page does (``decimate``); the CSV has every point.
"""
from __future__ import annotations

import csv
import html
import json
import os

from handlers.plot.decimate import decimate
from handlers.plot.record import read_points
from handlers.plot.report import runs_path
from handlers.local import write_atomic

__all__ = ["run_record", "export_csv", "export_html"]


def run_record(run: str) -> str:
    """The ``curves.npz`` of ``run`` (a run folder, or a run's env name under the runs folder)."""
    for folder in (run, runs_path(run)):
        path = os.path.join(folder, "curves.npz")
        if os.path.isfile(path):
            return path
    if os.path.isdir(run) or os.path.isdir(runs_path(run)):
        raise FileNotFoundError(f"{run} holds no curves.npz (runs write it when their plots close; runs made before "
                                "this version, or with --no-plot, have none)")
    raise FileNotFoundError(f"no run folder {run!r} (give a run folder, e.g. {runs_path('<env>')}, or its env name)")


def export_csv(record: str, path: str) -> int:
    """Write every point as ``window,trace,x,y,wall_time`` rows (wall time in seconds since the epoch, nan when
    unknown); return how many."""
    rows = 0

    def write(f) -> None:
        nonlocal rows
        import io

        text = io.TextIOWrapper(f, newline="", encoding="utf-8")
        out = csv.writer(text)
        out.writerow(["window", "trace", "x", "y", "wall_time"])
        for win, _, traces in read_points(record, times=True):
            for trace, (xs, ys, ts) in traces.items():
                out.writerows((_cell(win), _cell(trace), repr(float(x)), repr(float(y)), repr(float(t)))
                              for x, y, t in zip(xs, ys, ts))
                rows += len(xs)
        text.flush()
        text.detach()

    write_atomic(path, write)
    return rows


def _cell(name: str) -> str:
    """A name as a spreadsheet shows it, never as a formula (``=``, ``+``, ``-``, ``@`` lead one)."""
    return "'" + name if name[:1] in ("=", "+", "-", "@", "\t", "\r") else name


def _figures(record: str) -> list[dict]:
    figures = []
    for win, opts, traces in read_points(record):
        data = []
        for trace, (xs, ys) in traces.items():
            vx, vy = decimate(xs, ys)
            mode = "lines+markers" if opts.get("markers") or len(vx) == 1 else "lines"
            data.append({"x": vx.tolist(), "y": [None if y != y else y for y in vy.tolist()], "name": trace,
                         "type": "scatter", "mode": mode})
        layout = {"title": {"text": str(opts.get("title", win))}, "showlegend": True, "margin": {"t": 40},
                  "xaxis": {"title": {"text": str(opts.get("xlabel", ""))}, "type": opts.get("xtype", "linear")},
                  "yaxis": {"title": {"text": str(opts.get("ylabel", ""))}, "type": opts.get("ytype", "linear")}}
        figures.append({"data": data, "layout": layout})
    return figures


def export_html(record: str, path: str, title: str) -> int:
    """Write one HTML page drawing every window; return how many windows."""
    figures = _figures(record)
    payload = json.dumps(figures).replace("<", "\\u003c")  # no name can end the script or open a comment in it
    from plotly.offline import get_plotlyjs  # the plotly package's own copy: no npm, no network

    script = get_plotlyjs().replace("</script", "<\\/script")
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1em}} .grid{{display:flex;flex-wrap:wrap;gap:8px}}
.plot{{width:560px;height:380px;border:1px solid #ddd}}</style>
<script>{script}</script></head>
<body><h3>{html.escape(title)}</h3><div class="grid" id="grid"></div>
<script>
const figures = {payload};
const grid = document.getElementById("grid");
figures.forEach((f, i) => {{
  const div = document.createElement("div"); div.className = "plot"; div.id = "plot-" + i; grid.appendChild(div);
  Plotly.newPlot(div, f.data, f.layout, {{responsive: true}});
}});
document.body.dataset.drawn = String(figures.length);
</script></body></html>
"""
    write_atomic(path, lambda f: f.write(page.encode("utf-8")))
    return len(figures)
