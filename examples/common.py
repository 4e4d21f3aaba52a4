"""What every example shares: its command line, the book's download helper, weights files, and the run.

Examples are scripts (``python examples/<name>.py --help``); they train through ``train_ch13`` only.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tarfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from typing import Any

import ignite.distributed as idist
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from engine import train_ch13  # noqa: E402
from engine.app.cli import run_command  # noqa: E402
from engine.app.flags import RUN, STEP, add_options, positive_int, train_kwargs  # noqa: E402
from engine.app.launch import launch  # noqa: E402
from engine.app.run_dir import run_for_rank  # noqa: E402
from handlers import History  # noqa: E402

__all__ = ["DATA_URL", "example_parser", "download_extract", "given_or_downloaded", "run", "subset", "script"]

DATA_URL = "http://d2l-data.s3-accelerate.amazonaws.com/"  # the book's data hub


def example_parser(description: str, *, epochs: int, batch_size: int, lr: float) -> argparse.ArgumentParser:
    """The main job's run and step options, with this example's defaults, plus what examples add."""
    p = argparse.ArgumentParser(description=description)
    add_options(p, RUN + STEP, epochs=epochs, batch_size=batch_size, lr=lr)
    p.add_argument("--num-workers", type=int, default=4, help="DataLoader worker processes (default: 4, as the book)")
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N examples of each split "
                   "(smoke runs)")
    return p


def download_extract(url: str, sha1: str, data_dir: str, folder: str) -> str:
    """``data_dir/folder`` if it is there, else the book's archive downloaded, checked and unpacked there
    (under torchrun by one process per machine, the others waiting for it)."""
    with idist.one_rank_first(local=True):
        return _download_extract(url, sha1, data_dir, folder)


def _download_extract(url: str, sha1: str, data_dir: str, folder: str) -> str:
    target = os.path.join(data_dir, folder)
    if os.path.isdir(target):
        return target
    os.makedirs(data_dir, exist_ok=True)
    archive = os.path.join(data_dir, url.split("/")[-1])
    if not os.path.exists(archive):
        print(f"Downloading {url} to {archive} ...", flush=True)
        try:
            urllib.request.urlretrieve(url, archive + ".part")
        except OSError as e:
            raise FileNotFoundError(f"{target} is missing and {url} could not be downloaded ({e}); "
                                    "put the data there or pass --data-dir") from None
        os.replace(archive + ".part", archive)
    digest = hashlib.sha1(open(archive, "rb").read()).hexdigest()
    if digest != sha1:
        raise ValueError(f"{archive} has sha1 {digest}, expected {sha1}; delete it and download again")
    if archive.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:  # zipfile drops absolute and ".." parts of member names
            z.extractall(data_dir)
    else:
        with tarfile.open(archive) as t:
            t.extractall(data_dir, filter="data")  # no links out, no absolute paths, no device files
    return target


def given_or_downloaded(given: str | None, hub: tuple[str, str], data_dir: str, folder: str, tag: str,
                        fallback: str) -> str | None:
    """A path the user gave, else the book's download; offline, None and a message saying ``fallback``."""
    if given is not None:
        return given
    try:
        return download_extract(*hub, data_dir, folder)
    except (FileNotFoundError, ValueError) as e:
        print(f"[{tag}] {e}; {fallback}", flush=True)
        return None


def run(args: argparse.Namespace, net: nn.Module, train_iter: Iterable, test_iter: Iterable,
        loss: Callable[..., torch.Tensor], optimizer: torch.optim.Optimizer, **options: Any) -> History:
    """``train_ch13`` in a fresh run folder with live plots, a PNG and checkpoints, as the main job does
    (under torchrun: rank 0's folder, and a restarted worker group resumes from it)."""
    with run_for_rank(args.out, args.visdom, args.plot, getattr(args, "resume", None),
                      name=getattr(args, "name", None)) as (plotter, folder, resume):
        kwargs = train_kwargs(args, RUN + STEP) | options | ({"resume": resume} if resume else {})
        return train_ch13(net, train_iter, test_iter, loss, optimizer, args.epochs, args.devices,
                          plot=plotter or False, out_dir=folder or None, checkpoint_dir=folder, **kwargs)


def subset(dataset: Any, limit: int | None) -> Any:
    return dataset if limit is None else torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))


def script(main: Callable[[], Any]) -> None:
    """Run an example's ``main`` as the CLI runs a command: a bad input or a missing data set is one
    line naming the problem (exit 2), Ctrl-C / SIGTERM / SIGHUP a clean stop (exit 128 + signal)."""
    def command() -> int:
        launch(lambda _rank, _args: main(), argparse.Namespace())  # under torchrun: join its process group first
        return 0  # what main returns is not an exit status

    code = run_command(os.path.basename(sys.argv[0]), command)
    if code:
        sys.exit(code)
