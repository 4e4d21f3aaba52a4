"""Checkpoints through Ignite's ``Checkpoint`` + ``DiskSaver`` (atomic writes) and the RNG state (the safe load:
``handlers.checkpoint_load``).

Two files are kept in the folder: ``last_checkpoint_<epoch>.pt`` after every epoch and
``best_checkpoint_<epoch>_test_acc=<score>.pt``. Each holds every object given (model, optimizer,
scheduler, scaler, trainer state, history, plot record, RNG state), so a resumed run on the CPU
continues exactly where the uninterrupted one would be.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import ignite.distributed as idist
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver

from handlers.checkpoint_load import (CheckpointError, best_files, check_checkpoint, find_checkpoint, load_checkpoint,
                                      read_checkpoint, recorded_epochs)
from handlers.rng_state import RngState

__all__ = ["RngState", "Checkpoints", "attach_checkpoints", "find_checkpoint", "read_checkpoint", "check_checkpoint",
           "load_checkpoint", "CheckpointError", "recorded_epochs", "best_files"]


class _ReplacingSaver(DiskSaver):
    """Ignite's atomic DiskSaver, but an old file goes only after its successor is on disk.

    ``Checkpoint`` removes the file it replaces before writing the new one; a kill in between would
    leave no checkpoint at all.
    """

    def __init__(self, folder: str) -> None:
        super().__init__(folder, require_empty=False, atomic=True)
        self._doomed: list[str] = []

    def remove(self, filename: str) -> None:
        self._doomed.append(filename)

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        if idist.get_rank() != self.save_on_rank:  # the other ranks take part in the collectives only; the
            super().__call__(checkpoint, filename, metadata)  # folder may not exist on their machine
            return
        before = set(os.listdir(self.dirname))
        try:
            super().__call__(checkpoint, filename, metadata)
        except (OSError, RuntimeError) as e:  # torch.save reports a full disk as a RuntimeError ("unexpected pos")
            for name in set(os.listdir(self.dirname)) - before:  # Ignite's temporary file, if the write died in it
                if name.startswith("tmp"):
                    os.remove(os.path.join(self.dirname, name))
            code = e.errno if isinstance(e, OSError) else errno.ENOSPC if shutil.disk_usage(
                self.dirname).free < 1_000_000 else None
            if code is None:
                raise
            raise OSError(code, f"writing checkpoint {filename} in {self.dirname} failed ({os.strerror(code)}); "
                          "the previous checkpoint is kept. Free some space or choose another folder") from e
        while self._doomed:
            name = self._doomed.pop()
            if os.path.exists(os.path.join(self.dirname, name)):  # a resumed run's best may never have been here
                super().remove(name)


def check_folder(folder: str, need_bytes: int) -> None:
    """Fail before training when checkpoints could not be written: a file in the way, no write
    permission, or less free space than two checkpoints need (the old one stays until the new is on disk)."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise NotADirectoryError(f"checkpoint folder {folder} is a file; choose a folder path")
    made = not os.path.exists(folder)
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
        free = shutil.disk_usage(folder).free
        if free < 2 * need_bytes:
            raise OSError(errno.ENOSPC, f"not enough free space in {folder} for checkpoints: about "
                          f"{2 * need_bytes / 1e6:.1f} MB needed, {free / 1e6:.1f} MB free; free some space or "
                          "choose another folder")
    except OSError as e:
        if made and os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)  # leave nothing behind for a run that never started
        if e.errno == errno.ENOSPC:
            raise
        raise PermissionError(f"checkpoint folder {folder} is not writable ({e.strerror or e}); "
                              "choose another folder") from None


def checkpoint_size(to_save: Mapping[str, Any]) -> int:
    """A generous estimate of a checkpoint's bytes: the model's tensors three times (weights and
    optimizer moments) plus a megabyte for the rest."""
    model = to_save.get("model")
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values()) if model is not None else 0
    return 3 * weights + 1_000_000


@dataclass(frozen=True)
class Checkpoints:
    """The run's checkpoint handlers (all None when it keeps none): ``last`` every epoch, ``best`` at the
    best score, ``interrupted`` not attached, called on Ctrl-C to save mid-epoch."""

    last: Checkpoint | None = None
    best: Checkpoint | None = None
    interrupted: Checkpoint | None = None
    made: str | None = None  # the folder, when attaching made it

    def abandon(self) -> None:
        """The run was refused before its first step: the folder made for it goes, if nothing is in it."""
        if self.made and os.path.isdir(self.made) and not os.listdir(self.made):
            os.rmdir(self.made)

    def last_file(self, which: str = "last") -> str | None:
        """The file ``which`` handler wrote last (Ignite's ``last_checkpoint`` includes its folder)."""
        handler = getattr(self, which)
        return None if handler is None or handler.last_checkpoint is None else str(handler.last_checkpoint)


def attach_checkpoints(
    trainer: Engine, to_save: Mapping[str, Any], folder: str, score: Callable[[Engine], float] | None = None
) -> Checkpoints:
    """Save ``to_save`` after every epoch (and at the best ``score``, higher is better) into ``folder``.

    Attach last, so the files hold the epoch's evaluation, history and plot points.
    """
    made = not os.path.isdir(folder)
    if idist.get_rank() == 0:  # only rank 0 writes (Ignite's DiskSaver)
        check_folder(folder, checkpoint_size(to_save))

    records = {"best_so_far": _SoFar(folder, copy=True), "last_so_far": _SoFar(folder, copy=False)}
    if isinstance(to_save, dict):  # each handler's file travels with every checkpoint: see _SoFar
        to_save.update(records if score is not None else {"last_so_far": records["last_so_far"]})

    def saver(prefix: str, **kw: Any) -> Checkpoint:
        return Checkpoint(dict(to_save), _ReplacingSaver(folder), filename_prefix=prefix, n_saved=1, **kw)

    last = saver("last", global_step_transform=_epoch)
    best = None if score is None else saver("best", score_function=score, score_name="test_acc",
                                            global_step_transform=_epoch)
    records["best_so_far"].handler, records["last_so_far"].handler = best, last
    for handler in (best, last):  # best first: the epoch's last file records the best so far, this epoch's too
        if handler is not None:
            trainer.add_event_handler(Events.EPOCH_COMPLETED, handler)
    return Checkpoints(last, best, saver("interrupted", global_step_transform=lambda e, _: e.state.iteration),
                       folder if made else None)


class _SoFar:
    """A handler's record (score and file), so a resumed run's files are the whole run's: its ``best`` is the
    best of the run, and resumed into the same folder its next ``last`` file replaces the stopped run's.

    Resumed into another folder, the run's best file is copied there (``copy``), so each run folder holds
    the best of the run so far; a later better epoch replaces it there (one ``best_`` file a folder)."""

    def __init__(self, folder: str, copy: bool) -> None:
        self.folder, self.copy, self.handler = os.path.abspath(folder), copy, None

    def state_dict(self) -> dict[str, Any]:
        saved = self.handler.state_dict()["_saved"] if self.handler is not None else []
        return {"folder": self.folder, "saved": [[float(p), str(f)] for p, f in saved]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        saved = best_files("the checkpoint", state)
        folder = state.get("folder")
        if self.handler is None or not saved or not (self.copy or folder == self.folder):
            return
        for _, name in saved:
            here = os.path.join(self.folder, name)
            source = os.path.join(folder, name) if isinstance(folder, str) else here
            if idist.get_rank() == 0 and source != here and os.path.isfile(source) and not os.path.lexists(here) \
                    and not os.path.islink(source):
                shutil.copyfile(source, here)
        self.handler.load_state_dict({"_saved": saved})


def _epoch(engine: Engine, _event: Any) -> int:
    return engine.state.epoch
