"""Reading a checkpoint safely: found in a run folder, loaded with ``weights_only=True`` (a checkpoint cannot run
code), every part checked before any object is touched, so a refused resume changes nothing of the caller's."""
from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from ignite.handlers import Checkpoint

__all__ = ["CheckpointError", "find_checkpoint", "read_checkpoint", "check_checkpoint", "load_checkpoint",
           "recorded_epochs", "best_files"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from: missing, corrupt, or from another model or run."""


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
    present = sorted((k for k in to_load if k in state), key=lambda k: k in ("optimizer", "model"))
    for name in present:  # the caller's optimizer and model last: a part that still fails leaves them as they were
        try:
            Checkpoint.load_objects({name: to_load[name]}, state)
        except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as e:
            raise CheckpointError(f"{path}: {name}: {str(e).splitlines()[0][:200]}; resume with the settings of the "
                                  "run that wrote it, or start a new run") from None
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
    for record in ("best_so_far", "last_so_far"):
        if record in state and record in to_load:
            best_files(path, state[record])
    for name, obj in to_load.items():
        if name in state:
            _check_keys(path, name, obj, state[name])


def _check_keys(path: str, name: str, obj: Any, saved: Any) -> None:
    """The keys a part's ``load_state_dict`` requires, where the part declares them (Ignite's schedulers, metrics
    and handlers), so a part saved by another kind of object is refused before anything is loaded."""
    needed = list(getattr(obj, "_state_attrs", ())) + list(getattr(obj, "_state_dict_all_req_keys", ()))
    if isinstance(obj, torch.optim.lr_scheduler.LRScheduler):
        needed.append("last_epoch")
    missing = [k for k in needed if not isinstance(saved, Mapping) or k not in saved]
    if missing:
        raise CheckpointError(f"{path}: {name}: the checkpoint's {name} was saved by another kind of object than "
                              f"this run's {type(obj).__name__} (it lacks {', '.join(map(str, missing[:3]))}); resume "
                              f"with the {name} of the run that wrote it, or start a new run")


_BEST_NAME = re.compile(r"(best|last)_[A-Za-z0-9_.=+-]{1,200}\.pt")  # what the best and last handlers name files


def best_files(path: str, record: Any) -> list[tuple[float, str]]:
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
