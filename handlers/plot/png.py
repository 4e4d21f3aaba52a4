"""A PNG of the curves, for headless machines, CI and the README: no server needed."""
from __future__ import annotations

import threading

from handlers.plot.report import say
from handlers.plot.store import PlotStore
from handlers.local import write_atomic

__all__ = ["save_png", "save_png_in_background", "try_save_png", "render"]

_DRAWING = threading.Lock()  # matplotlib's Agg canvas is used by one thread at a time


def save_png_in_background(store: PlotStore, path: str) -> threading.Thread:
    """``save_png`` on a thread of its own, so a run's end does not wait ~0.1 s for matplotlib.

    The store must no longer change (a closed plotter's). The thread is not a daemon: the interpreter
    waits for it before exiting, so a script's or a command's PNG is always complete.
    """
    thread = threading.Thread(target=try_save_png, args=(store, path), name="curves-png")
    thread.start()
    return thread


def try_save_png(store: PlotStore, path: str) -> bool:
    """``save_png``, saying in one line why the file could not be written instead of raising."""
    try:
        save_png(store, path)
        return True
    except (OSError, RuntimeError, ValueError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        say(f"could not write {path}: {why}")
        return False


def save_png(store: PlotStore, path: str) -> str:
    """Draw the windows as a grid of panels (legend, x label and limits as each window's options say).

    Up to ``MAX_PANELS`` windows get a panel each. Past that (Ignite's per-parameter handlers make a
    window per weight), windows are grouped by the first part of their name (``weights_norm/fc2/weight``
    -> ``weights_norm``), a panel per group with a line per window, so the file's size and drawing time
    stay bounded however many windows a run makes.
    """
    data = render(store)
    return write_atomic(path, lambda f: f.write(data))


def render(store: PlotStore, windows: list[str] | None = None) -> bytes:
    """The PNG's bytes, of ``windows`` (default: every window)."""
    with _DRAWING:
        return _draw(store, list(store.windows) if windows is None else windows)


MAX_PANELS = 24
_COLUMNS = 4
_LEGEND = 8  # legend entries per panel; the rest are counted


def _panels(store: PlotStore, names: list[str]) -> list[tuple[str, dict, dict[str, tuple]]]:
    """``(title, opts, {label: (xs, ys)})`` per panel."""
    if len(names) <= MAX_PANELS:
        return [(store.windows[n].opts.get("title", n), *store.arrays(n)) for n in names]
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(name.split("/", 1)[0], []).append(name)
    panels = []
    for group, members in list(groups.items())[:MAX_PANELS]:
        lines: dict[str, tuple] = {}
        for name in members:
            _, traces = store.arrays(name)
            rest = name.split("/", 1)[1] if "/" in name else name
            lines.update({(rest if len(traces) == 1 else f"{rest}: {t}"): xy for t, xy in traces.items()})
        opts = dict(store.windows[members[0]].opts)
        panels.append((f"{group} ({len(members)} windows)" if len(members) > 1 else opts.get("title", group),
                       {k: v for k, v in opts.items() if k in ("xlabel", "xtype", "ytype")}, lines))
    return panels


def _panel(ax, title: str, opts: dict, lines: dict[str, tuple]) -> None:
    for k, (label, (xs, ys)) in enumerate(lines.items()):
        if len(xs):
            ax.plot(xs, ys, label=label if k < _LEGEND else None, linewidth=1.0,
                    marker="o" if len(xs) == 1 or opts.get("markers") else None, markersize=3)
    ax.set_title(title[:60], fontsize=9)
    ax.set_xlabel(opts.get("xlabel", ""))
    ax.set_xscale(opts.get("xtype", "linear"))
    ax.set_yscale(opts.get("ytype", "linear"))
    if "xtickmin" in opts and "xtickmax" in opts:  # one epoch: 1..1 would be an empty range
        lo, hi = opts["xtickmin"], opts["xtickmax"]
        ax.set_xlim(min(lo, hi - 1), hi)
    if "ytickmin" in opts and "ytickmax" in opts:
        ax.set_ylim(opts["ytickmin"], opts["ytickmax"])
    ax.grid(True, alpha=0.3)
    if any(len(xs) for xs, _ in lines.values()):
        ax.legend(loc="best", fontsize=7, title=f"+{len(lines) - _LEGEND} more" if len(lines) > _LEGEND else None)


def _draw(store: PlotStore, names: list[str]) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    panels = _panels(store, names)
    columns = max(1, min(len(panels), _COLUMNS))
    rows = max(1, -(-len(panels) // columns))
    fig = Figure(figsize=(4.5 * columns, 3.2 * rows), dpi=110)
    for k, (title, opts, lines) in enumerate(panels, 1):
        _panel(fig.add_subplot(rows, columns, k), title, opts, lines)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
