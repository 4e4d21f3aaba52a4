"""Checkpoints through Ignite's ``Checkpoint`` + ``DiskSaver`` (atomic writes), the RNG state, and a safe load.

Two files are kept in the folder: ``last_checkpoint_<epoch>.pt`` after every epoch and
``best_checkpoint_<epoch>_test_acc=<score>.pt``. Each holds every object given (model, optimizer,
scheduler, scaler, trainer state, history, plot record, RNG state), so a resumed run on the CPU
continues exactly where the uninterrupted one would be.
"""
from __future__ import annotations

import errno
import glob
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver

from handlers.rng_state import RngState

__all__ = ["RngState", "Checkpoints", "attach_checkpoints", "find_checkpoint", "read_checkpoint", "check_checkpoint",
           "load_checkpoint", "CheckpointError", "recorded_epochs"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from: missing, corrupt, or from another model or run."""


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

    so_far = _BestSoFar(folder)
    if score is not None and isinstance(to_save, dict):
        to_save["best_so_far"] = so_far  # the run's best score and file travel with every checkpoint

    def saver(prefix: str, **kw: Any) -> Checkpoint:
        return Checkpoint(dict(to_save), _ReplacingSaver(folder), filename_prefix=prefix, n_saved=1, **kw)

    last = saver("last", global_step_transform=_epoch)
    best = None if score is None else saver("best", score_function=score, score_name="test_acc",
                                            global_step_transform=_epoch)
    so_far.handler = best
    for handler in (best, last):  # best first: the epoch's last file records the best so far, this epoch's too
        if handler is not None:
            trainer.add_event_handler(Events.EPOCH_COMPLETED, handler)
    return Checkpoints(last, best, saver("interrupted", global_step_transform=lambda e, _: e.state.iteration),
                       folder if made else None)


class _BestSoFar:
    """The ``best`` handler's record (score and file), so a resumed run's best is the whole run's.

    Resumed into another folder, the run's best file is copied there, so each run folder holds the best
    of the run so far; a later better epoch replaces it there (one ``best_`` file a folder)."""

    def __init__(self, folder: str) -> None:
        self.folder, self.handler = os.path.abspath(folder), None

    def state_dict(self) -> dict[str, Any]:
        saved = self.handler.state_dict()["_saved"] if self.handler is not None else []
        return {"folder": self.folder, "saved": [[float(p), str(f)] for p, f in saved]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        saved = _best_files("the checkpoint", state)
        if self.handler is None or not saved:
            return
        folder = state.get("folder")
        for _, name in saved:
            here = os.path.join(self.folder, name)
            source = os.path.join(folder, name) if isinstance(folder, str) else here
            if idist.get_rank() == 0 and source != here and os.path.isfile(source) and not os.path.lexists(here) \
                    and not os.path.islink(source):
                shutil.copyfile(source, here)
        self.handler.load_state_dict({"_saved": saved})


def _epoch(engine: Engine, _event: Any) -> int:
    return engine.state.epoch


def find_checkpoint(path: str) -> str:
    """A checkpoint file, or a run folder's newest ``last_`` (epoch end) or ``interrupted_`` (Ctrl-C) file."""
    if os.path.isdir(path):
        found = glob.glob(os.path.join(path, "last_checkpoint_*.pt")) + glob.glob(
            os.path.join(path, "interrupted_checkpoint_*.pt"))
        if not found:
            raise CheckpointError(f"no last_checkpoint_*.pt in {path}; pass the checkpoint file itself to resume")
        return max(sorted(found), key=_progress)  # what the files record, not their names or times
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist; pass a checkpoint file or a run folder")
    return path


def recorded_epochs(trainer: Mapping[str, Any], default: float = 0.0) -> float:
    """The epochs of training a trainer's saved state records (Ignite keeps the iteration and the epoch
    length, or the epoch): a mid-epoch checkpoint as a fraction; ``default`` when it records neither."""
    per_epoch = trainer.get("epoch_length")
    if "iteration" in trainer and per_epoch:
        return trainer["iteration"] / per_epoch
    return float(trainer.get("epoch", default))


def _progress(path: str) -> float:
    """The epochs of training a checkpoint file records; -1 if unreadable."""
    try:
        trainer = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("trainer") or {}
    except Exception:  # a truncated or foreign file is never the one to resume from
        return -1.0
    return recorded_epochs(trainer, default=-1.0)


def load_checkpoint(path: str, to_load: Mapping[str, Any], required: Iterable[str] | None = None,
                    state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load ``to_load`` from ``path`` (``weights_only=True``: a checkpoint cannot run code), all or nothing.

    Entries named in ``required`` (default: all) must be in the file; others are loaded when present.
    Every part is checked before any object is touched: a missing entry, another model's weights or
    another optimizer's state raise ``CheckpointError`` naming the part, and nothing of yours changes.
    ``state`` is the file's contents when already read (``read_checkpoint``).
    """
    if state is None:
        path, state = read_checkpoint(path)
    check_checkpoint(path, state, to_load, required)
    Checkpoint.load_objects({k: v for k, v in to_load.items() if k in state}, state)
    return state


def check_checkpoint(path: str, state: Mapping[str, Any], to_load: Mapping[str, Any],
                     required: Iterable[str] | None = None) -> None:
    """Every check ``load_checkpoint`` makes before it touches anything."""
    missing = sorted(set(to_load if required is None else required) - set(state))
    if missing:
        raise CheckpointError(f"{path} has no {', '.join(missing)}; it was not written by this kind of run")
    if isinstance(to_load.get("model"), torch.nn.Module):
        _check_model(path, to_load["model"], state["model"])
    if isinstance(to_load.get("optimizer"), torch.optim.Optimizer) and "optimizer" in state:
        _check_optimizer(path, to_load["optimizer"], state["optimizer"])
    if "best_so_far" in state and "best_so_far" in to_load:
        _best_files(path, state["best_so_far"])


_BEST_NAME = re.compile(r"best_[A-Za-z0-9_.=+-]{1,200}\.pt")  # what the best handler names its files


def _best_files(path: str, record: Any) -> list[tuple[float, str]]:
    """The best-so-far record of a checkpoint, its file names checked to be this handler's plain names: a name
    read from a file is data, never a path (a crafted one would copy or delete files outside the run folder)."""
    saved = record.get("saved", []) if isinstance(record, Mapping) else None
    if not isinstance(saved, list) or not all(isinstance(e, (list, tuple)) and len(e) == 2 for e in saved):
        raise CheckpointError(f"{path} has a malformed best-so-far record; resume from another checkpoint")
    for _, name in saved:
        if not isinstance(name, str) or not _BEST_NAME.fullmatch(name):
            raise CheckpointError(f"{path} records the best file as {str(name)[:80]!r}, which is not a checkpoint's "
                                  "file name (a crafted or damaged file); resume from another checkpoint")
    return [(float(p), name) for p, name in saved]


def read_checkpoint(path: str) -> tuple[str, dict[str, Any]]:
    """``(file, contents)`` of a checkpoint file or a run folder's newest one, or a named error."""
    path = find_checkpoint(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- torch.load fails on foreign bytes in many ways (KeyError, EOFError, ...)
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated, corrupt or another format: "
                              f"{type(e).__name__}: {str(e)[:100]}); resume from an earlier one") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a d2l-ignite checkpoint")
    return path, state


def _check_optimizer(path: str, optimizer: torch.optim.Optimizer, saved: Mapping[str, Any]) -> None:
    own, theirs = optimizer.state_dict()["param_groups"], saved.get("param_groups", [])
    if [len(g["params"]) for g in own] != [len(g["params"]) for g in theirs]:
        raise CheckpointError(f"{path}: optimizer: the checkpoint's parameter groups hold "
                              f"{[len(g['params']) for g in theirs]} parameters, this run's {type(optimizer).__name__} "
                              f"{[len(g['params']) for g in own]}; build the optimizer as the run that wrote it did")
    settings = lambda groups: set().union(*(set(g) for g in groups)) - {"params", "initial_lr"}  # noqa: E731
    if settings(own) != settings(theirs):
        raise CheckpointError(f"{path}: optimizer: the checkpoint holds another optimizer's state (settings "
                              f"{sorted(settings(theirs) - settings(own))} are not {type(optimizer).__name__}'s); "
                              "resume with the optimizer class that wrote it, or start a new run")


def _check_model(path: str, model: torch.nn.Module, weights: Mapping[str, Any]) -> None:
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in weights.items() if isinstance(v, torch.Tensor)}
    if own != theirs:
        diff = sorted(set(own) ^ set(theirs)) or [k for k in own if own[k] != theirs.get(k)]
        raise CheckpointError(f"{path} holds weights of another model (first difference: {diff[0]}); "
                              "resume with the model that wrote it")
