"""``run.json``: what a run was, kept in its folder beside its curves, for whoever looks at it later
(``d2l-ignite runs`` lists them, ``compare`` labels runs by what differs between their manifests)."""
from __future__ import annotations

import datetime
import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any

import torch
from torch import nn

from handlers.local import write_atomic

__all__ = ["RunManifest", "read_manifest"]

_PACKAGES = ("torch", "torchvision", "pytorch-ignite", "visdom", "d2l-ignite")


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _plain(value: Any) -> Any:
    """A JSON value for a keyword: numbers, strings and flags as they are, anything else by its type's name."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value):
        return list(value)
    return type(value).__name__


@functools.cache  # once per process: a run's fixed cost stays a few milliseconds
def _versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


@functools.cache
def _git_commit(folder: str) -> str | None:
    """The commit of the checkout the run was started from (``+dirty`` with uncommitted changes), if any."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=folder)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=folder).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("+dirty" if dirty else "")


class RunManifest:
    """Written when the run starts and again when it ends (its end time, how it ended, the last figures)."""

    def __init__(self, folder: str, name: str, net: nn.Module, optimizer: torch.optim.Optimizer,
                 train_iter: Iterable, num_epochs: int, call: Mapping[str, Any], devices: str) -> None:
        group = optimizer.param_groups[0] if optimizer.param_groups else {}
        self.path = os.path.join(folder, "run.json")
        self.data: dict[str, Any] = {
            "name": name, "started": _now(), "ended": None, "status": "running", "argv": list(sys.argv),
            "seed": torch.initial_seed(),
            "hyperparameters": {"model": type(net).__name__, "optimizer": type(optimizer).__name__,
                                "lr": _plain(group.get("lr")), "batch_size": getattr(train_iter, "batch_size", None),
                                "epochs": num_epochs, "devices": devices,
                                **{k: _plain(v) for k, v in call.items() if v is not None}},
            "versions": dict(_versions()), "git": _git_commit(os.getcwd()), "final": {},
        }
        self._write()

    def finish(self, status: str, final: Mapping[str, Any] | None = None) -> None:
        self.data.update(ended=_now(), status=status, final=dict(final or {}))
        self._write()

    def _write(self) -> None:
        text = json.dumps(self.data, indent=1).encode()
        try:
            write_atomic(self.path, lambda f: f.write(text))
        except OSError as e:
            print(f"could not write {self.path} ({e.strerror or e})", file=sys.stderr, flush=True)


def read_manifest(folder: str) -> dict[str, Any]:
    """A run folder's ``run.json`` ({} when it has none or it is not a manifest)."""
    try:
        with open(os.path.join(folder, "run.json")) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
