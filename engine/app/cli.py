"""``d2l-ignite``: a thin command line over the public API."""
from __future__ import annotations

import argparse
import signal
import sys
import traceback
from collections.abc import Callable, Sequence

from engine.app.train_command import add_train
from handlers.plot.report import runs_path

__all__ = ["main", "build_parser"]


def _add_visdom(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("visdom", help="serve every saved run locally (no CDN; browser files from npm) and print "
                       "the newest run's link; on this machine without --login, runs started meanwhile draw there")
    p.add_argument("--port", type=int, default=None, help="port (default: 8097, else a free one, said); a busy one "
                   "named here is an error")
    p.add_argument("--host", default="127.0.0.1", help="127.0.0.1 (this machine; the default) or 0.0.0.0 (every "
                   "interface)")
    p.add_argument("--env-path", default=runs_path(), help="the runs folder (every runs/*/visdom env is served) or "
                   f"a folder of saved envs (default: {runs_path()}; $D2L_IGNITE_RUNS sets it)")
    p.add_argument("--login", action="store_true",
                   help="require VISDOM_USERNAME / VISDOM_PASSWORD (read from the environment)")
    p.set_defaults(func=_visdom)


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="build a Visdom env that compares runs: a window per series, a trace per run "
                       "named by what differs between them (lr, batch size, ...); on the server at --visdom / "
                       "$VISDOM_URL, else on one started here on the saved runs (./runs), kept until Ctrl-C")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (runs/lr-0.003) or run names")
    p.add_argument("--name", default=None, help="the comparison env's name (default: compare-<names>)")
    p.add_argument("--visdom", default=None, metavar="URL", help="server (default: $VISDOM_URL, else one started here)")
    p.set_defaults(func=_compare)


def _compare(args: argparse.Namespace) -> int:
    import os

    from engine.app.export import run_record
    from engine.app.runs import compare_name, compare_runs, serve_folder
    from handlers.plot import server_url
    from handlers.visdom_server import LocalVisdom
    from handlers.visdom_server.access import page_link

    for run in args.runs:
        run_record(run)  # a missing run fails before any server starts
    name = args.name or compare_name(args.runs)
    if args.visdom is not None or os.environ.get("VISDOM_URL"):
        url = server_url(args.visdom)
        windows = compare_runs(url, args.runs, name)
        link = page_link(url, name)
        print(f"Comparing {len(args.runs)} runs in {len(windows)} windows: {link}", flush=True)
        _hint(link)
        return 0
    with LocalVisdom(env_path=serve_folder(runs_path())) as server:
        windows = compare_runs(server.url, args.runs, name)
        link = page_link(server.url, name)
        print(f"Comparing {len(args.runs)} runs in {len(windows)} windows: {link}  (Ctrl-C stops the server)",
              flush=True)
        _hint(link)
        return _serve_until_stopped(server)


def _add_runs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list the saved runs with their final figures (from each run's run.json)")
    p.add_argument("folder", nargs="?", default=runs_path(), help="the runs folder ($D2L_IGNITE_RUNS sets the default)")
    p.set_defaults(func=_runs)


def _runs(args: argparse.Namespace) -> int:
    from engine.app.runs import list_runs

    rows = list_runs(args.folder)
    print("\n".join(rows) if rows else f"no runs in {args.folder} (a run writes its run.json there)", flush=True)
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="a run's curves without a server: one self-contained HTML page and a CSV of "
                       "every point (both unless one is asked for)")
    p.add_argument("run", help="a run folder (runs/<env>) or its env name")
    p.add_argument("--html", nargs="?", const="", default=None, metavar="PATH",
                   help="the page (default RUN/curves.html)")
    p.add_argument("--csv", nargs="?", const="", default=None, metavar="PATH",
                   help="every point as window,trace,x,y,wall_time (default RUN/curves.csv)")
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    import os

    from engine.app.export import export_csv, export_html, run_record

    record = run_record(args.run)
    folder = os.path.dirname(record)
    both = args.html is None and args.csv is None
    if both or args.html is not None:
        path = _into(args.html, folder, "curves.html")
        print(f"{export_html(record, path, os.path.basename(os.path.abspath(folder)))} windows: {path}", flush=True)
    if both or args.csv is not None:
        path = _into(args.csv, folder, "curves.csv")
        print(f"{export_csv(record, path)} points: {path}", flush=True)
    return 0


def _into(given: str | None, folder: str, name: str) -> str:
    """Where an export goes: the path given (a folder: ``name`` inside it), else ``name`` in the run folder."""
    import os

    return os.path.join(given, name) if given and os.path.isdir(given) else given or os.path.join(folder, name)


def _add_replay(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="send a run's curves (every point of its record) to a Visdom server: what a "
                       "run whose server was down, hung or gone could not deliver")
    p.add_argument("run", help="a run folder (runs/<env>) or its env name")
    p.add_argument("--visdom", default=None, metavar="URL",
                   help="server (default: $VISDOM_URL, else this user's shared local server, started if needed)")
    p.set_defaults(func=_replay)


def _visdom(args: argparse.Namespace) -> int:
    import os

    from engine.app.runs import newest_env, serve_folder, serve_shared
    from handlers.visdom_server import LocalVisdom
    from handlers.visdom_server.access import page_link

    folder = serve_folder(args.env_path)
    gathered = os.path.abspath(folder) != os.path.abspath(args.env_path)  # a runs folder: watch it for new runs
    watch = args.env_path if gathered else None
    if args.host in ("127.0.0.1", "localhost") and not args.login:
        return serve_shared(args.port, folder, watch, _hint)
    server = LocalVisdom(8097 if args.port is None else args.port, args.host, folder, login=args.login,
                         watch_runs=watch).start()
    link = page_link(server.url, newest_env(folder))
    print(f"Visdom is serving {folder} at {link}  (Ctrl-C stops it)", flush=True)
    _hint(link)
    try:
        return _serve_until_stopped(server)
    finally:
        server.stop()


def _hint(link: str) -> None:
    from handlers.plot.links import ssh_hint

    if hint := ssh_hint(link):
        print(hint, flush=True)


def _serve_until_stopped(server: object) -> int:
    """Wait while ``server`` runs: 0 after Ctrl-C (or SIGTERM), 1 if it died."""
    import time

    try:
        while server.process is not None and server.process.poll() is None:  # type: ignore[attr-defined]
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0


def _replay(args: argparse.Namespace) -> int:
    from engine.app.runs import post_env, run_windows
    from handlers.plot.policy import live_url
    from handlers.visdom_server.access import page_link

    env, windows, points = run_windows(args.run)  # a missing or damaged record fails before a server is asked for
    url, _ = live_url(args.visdom)  # the same rule as a run: yours if named, else this user's shared server
    if url is None:
        raise ConnectionError("no Visdom server could be had for the replay; pass --visdom URL of one that runs")
    post_env(url, env, windows)
    link = page_link(url, env)
    print(f"Sent {points} points of env {env}: {link}", flush=True)
    _hint(link)
    return 0


def _raise_stopped(signum: int, frame: object) -> None:
    from handlers.guards import Stopped

    raise Stopped(signum)


def run_command(name: str, command: Callable[[], int | None]) -> int:
    """Run a command as every entry point does (this CLI, the examples): a bad input or a missing file is
    one line naming the problem (exit 2); Ctrl-C, SIGTERM or SIGHUP a clean stop (exit 128 + signal)."""
    for sig in (signal.SIGTERM, signal.SIGHUP):  # like Ctrl-C: every finally runs, no server is left behind
        signal.signal(sig, _raise_stopped)
    try:
        return command() or 0
    except (ValueError, TypeError, OSError, RuntimeError, ArithmeticError) as e:
        if isinstance(e, RuntimeError) and _device_error(str(e)):  # a GPU failure: the traceback says where
            traceback.print_exc()
            print(f"{name}: error: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        print(f"{name}: error: {_as_flags(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM / SIGHUP turned into a clean stop
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"{name}: stopped by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + signum
    except Exception as e:
        failed = _spawned_process_failed(e)
        if failed is None:
            raise
        print(f"{name}: error: {failed[0]}", file=sys.stderr)
        return failed[1]


_FLAG_OF = {"num_epochs": "--epochs", "lr_scheduler": "--schedule", "accumulation_steps": "--accumulate",
            "clip_grad_norm": "--clip-grad", "early_stopping_metric": "--early-stopping-metric",
            "early_stopping": "--early-stopping", "test_loss": "--test-loss"}


def _as_flags(message: str) -> str:
    """An error from the Python API in the command line's words: ``num_epochs`` is ``--epochs`` here."""
    import re

    return re.sub(r"\b(" + "|".join(_FLAG_OF) + r")\b", lambda m: _FLAG_OF[m.group(1)], message)


_INPUT_ERRORS = {"ValueError", "TypeError", "OSError", "RuntimeError", "ArithmeticError", "FileNotFoundError",
                 "FileExistsError", "PermissionError", "NotADirectoryError", "CheckpointError", "FloatingPointError"}


_DEVICE_WORDS = ("CUDA", "NCCL", "cuDNN", "CUBLAS", "cublas", "device-side assert", "Triton", "out of memory")


def _device_error(message: str) -> bool:
    """An error raised by a GPU, its libraries or the collective backend (a RuntimeError like a bad input's)."""
    return any(word in message for word in _DEVICE_WORDS)


def _spawned_process_failed(e: Exception) -> tuple[str, int] | None:
    """One process of ``--nproc-per-node`` failed and the others were stopped: its error, said once, and
    the exit code (2 for a bad input's one line, as in one process; 1 with the traceback otherwise)."""
    mp = sys.modules.get("torch.multiprocessing")
    if mp is None or not isinstance(e, (mp.ProcessRaisedException, mp.ProcessExitedException)):
        return None
    if not isinstance(e, mp.ProcessRaisedException):  # killed by a signal, or exited without a word
        return f"process {e.error_index} {str(e).strip().lower()}", 1
    lines = [line for line in str(e).strip().splitlines() if line.strip() and not line.startswith("-- Process")]
    last = lines[-1] if lines else "an unknown error"
    kind = last.split(":", 1)[0].rsplit(".", 1)[-1]
    if kind in _INPUT_ERRORS and not (kind.endswith("RuntimeError") and _device_error(last)):
        return f"process {e.error_index}: {last}", 2
    return f"process {e.error_index} failed:\n" + "\n".join(lines), 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="d2l-ignite", description="The book's train_ch13 on Ignite Engines.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train(sub)
    _add_visdom(sub)
    _add_replay(sub)
    _add_compare(sub)
    _add_runs(sub)
    _add_export(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(f"d2l-ignite {args.command}", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
