"""The run folder and the plot set-up of a command-line run, decided in one place."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from engine.app.launch import agree_on_run, restart_count, say, torchrun_pointer, under_torchrun
from handlers.checkpoint import CheckpointError, find_checkpoint
from handlers.plot.backends import check_address, make_plotter, new_env, plot_backend
from handlers.plot.base import Plotter
from handlers.plot.report import RUN_NAME, command, runs_path

__all__ = ["plot_for_run", "new_run_dir", "run_for_rank", "run_name"]


def run_name(name: str | None, out: str | None) -> str:
    """The run's env name: ``--name``, else the ``--out`` folder's name, else a fresh one (its start time);
    checked to be a name Visdom can save (a file name of letters, digits, ``-``, ``_`` and ``.``)."""
    chosen = name or (os.path.basename(os.path.normpath(out)) if out else None) or new_env()
    if not RUN_NAME.fullmatch(chosen):
        what = f"--name {chosen!r}" if name else f"the --out folder's name {chosen!r}"
        raise ValueError(f"{what} cannot name a run: use letters, digits, '-', '_' and '.' (at most 100), e.g. "
                         "--name lr-0.003")
    return chosen


def new_run_dir(out: str | None, env: str) -> str:
    """A fresh run folder, created exclusively: an existing one (even empty, even made by a run started
    at the same moment) is never reused, so no two runs share or overwrite a folder."""
    folder = out or runs_path(env)
    os.makedirs(os.path.dirname(os.path.abspath(folder)), exist_ok=True)
    try:
        os.mkdir(folder)
    except FileExistsError:
        held = "already holds files" if os.path.isdir(folder) and os.listdir(folder) else "already exists"
        raise FileExistsError(f"run folder {folder} {held}; choose a new --out (each run gets its own)") from None
    if not os.access(folder, os.W_OK):
        os.rmdir(folder)
        raise PermissionError(f"run folder {folder} is not writable; choose another --out")
    return folder


def _restart_folder(out: str | None) -> tuple[str | None, str | None]:
    """On a torchrun restart: the interrupted attempt's run folder and its newest checkpoint, said on stderr."""
    pointer = torchrun_pointer()
    made = open(pointer).read().strip() if os.path.isfile(pointer) else None  # the folder attempt 0 made
    attempt = f"torchrun restart {restart_count()}"
    if out is not None and (made is None or os.path.abspath(made) != os.path.abspath(out)):
        raise FileExistsError(f"{attempt}: --out {out} was not made by this job's first attempt (it refused it, or "
                              "another run made it); a restart never adopts it. Choose a new --out")
    folder = made
    if folder is None or not os.path.isdir(folder):
        say(f"{attempt}: the interrupted run's folder is unknown (pass --out to make restarts resume); starting over")
        return None, None
    try:
        checkpoint = find_checkpoint(folder)
    except CheckpointError:
        say(f"{attempt}: {folder} holds no checkpoint yet; training from the start in it")
        return folder, None
    say(f"{attempt}: resuming from {checkpoint} (the newest checkpoint of the interrupted run)")
    return folder, checkpoint


def _run_folder(out: str | None, env: str) -> tuple[str, str | None]:
    """``(run folder, checkpoint to resume from)``: a new folder, or a torchrun restart's interrupted one."""
    if under_torchrun() and restart_count() > 0:
        folder, checkpoint = _restart_folder(out)
        if folder is not None:
            return folder, checkpoint
    folder = new_run_dir(out, env)
    if under_torchrun():  # where a restarted attempt looks for the folder this one made
        os.makedirs(os.path.dirname(torchrun_pointer()), exist_ok=True)
        with open(torchrun_pointer(), "w") as f:
            f.write(folder)
    return folder, None


@contextlib.contextmanager
def run_for_rank(out: str | None, url: str | None, plot: str | None, resume: str | None, keep_serving: bool = False,
                 name: str | None = None) -> Iterator[tuple[Plotter | None, str, str | None]]:
    """Yield ``(plotter, run folder, checkpoint to resume from)`` in every process of a command: rank 0
    makes the folder and plots (``plot_for_run``), the others learn the folder and the checkpoint."""
    import ignite.distributed as idist

    if idist.get_rank() != 0:
        yield (None, *agree_on_run("", None))
        return
    with plot_for_run(out, url, plot, keep_serving, name) as (plotter, folder, restarted):
        if resume is not None and restarted is None:
            resume = find_checkpoint(resume)
        yield (plotter, *agree_on_run(folder, restarted or resume))


@contextlib.contextmanager
def plot_for_run(
    out: str | None, url: str | None, plot: str | None, keep_serving: bool = False, name: str | None = None
) -> Iterator[tuple[Plotter, str, str | None]]:
    """Yield ``(plotter, run folder, checkpoint of a torchrun restart)``: the same plot rule as ``train_ch13``
    (``handlers.plot.policy``); whatever the back-end, the plotter writes the run's record into the folder."""
    env = run_name(name, out)
    check_address(url)  # a malformed --visdom fails even with --no-plot, before any folder
    backend = plot_backend(plot)
    folder, restarted = _run_folder(out, env)
    plotter = make_plotter(backend, folder, url, env)
    try:
        yield plotter, folder, restarted
        if under_torchrun():  # the run ended well: no restart will look for it
            with contextlib.suppress(FileNotFoundError):
                os.remove(torchrun_pointer())
    finally:
        plotter.close()
        plotter.after_close(keep_serving)
        if os.path.isdir(os.path.join(folder, "visdom")):
            print(f"View them again any time: {command()} visdom --env-path {os.path.dirname(os.path.abspath(folder))}",
                  flush=True)
        _report(folder)


def _report(folder: str) -> None:
    """Name the run folder, or remove it when a run failed before writing anything into it."""
    if os.path.isdir(folder) and not os.listdir(folder):
        os.rmdir(folder)
    else:
        print(f"Run folder: {folder}", flush=True)
