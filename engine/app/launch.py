"""Where a command's processes come from, one path for the CLI and the example scripts.

One process; each process ``torchrun`` started (it joins torchrun's group); or ``--nproc-per-node N``
processes spawned by ``ignite.distributed.Parallel``. Under torchrun ``--max-restarts``, a restarted
worker group finds the interrupted run's folder and resumes from its newest checkpoint by itself.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from handlers.plot.report import runs_path

__all__ = ["under_torchrun", "restart_count", "launch", "agree_on_run", "torchrun_pointer"]


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or ("LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ)


def restart_count() -> int:
    """How often torchrun restarted this worker group (0 on the first attempt, or without torchrun)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def launch(fn: Callable[..., Any], args: argparse.Namespace, *, nproc_per_node: int | None = None,
           nnodes: int | None = None, node_rank: int | None = None, master_addr: str | None = None,
           master_port: int | None = None, backend: str | None = None) -> None:
    """Run ``fn(local_rank, args)`` here, in each torchrun worker, or in ``nproc_per_node`` new processes."""
    import ignite.distributed as idist
    import torch

    spawns = nproc_per_node is not None or nnodes is not None
    if spawns and under_torchrun():
        raise ValueError("--nproc-per-node/--nnodes spawn processes themselves; under torchrun leave them out")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if under_torchrun():
        _in_torchrun_group(fn, args, backend)
    elif not spawns:
        fn(0, args)
    else:
        spawn: dict[str, Any] = {k: v for k, v in (("nproc_per_node", nproc_per_node), ("nnodes", nnodes),
                                                   ("node_rank", node_rank), ("master_addr", master_addr),
                                                   ("master_port", master_port)) if v is not None}
        if (nnodes or 1) == 1:
            spawn.update(_local_rendezvous(master_addr, master_port))
        with _signals_forwarded() as got, _gpus_for(nproc_per_node or 1, backend), \
                idist.Parallel(backend=backend, **spawn) as parallel:
            try:
                parallel.run(_Finished(fn), args)
            except Exception:
                if not got:
                    raise
            if got:  # the workers stopped as Ctrl-C stops a run (each saved its checkpoint): so does this command
                from handlers.guards import Stopped

                raise Stopped(got[0])


@contextlib.contextmanager
def _signals_forwarded() -> Iterator[list[int]]:
    """SIGTERM / SIGHUP to this spawning process (``kill``, ``docker stop``, a scheduler) reach every worker as
    SIGTERM, which each handles as Ctrl-C; the signals received are listed for the caller."""
    import multiprocessing
    import signal

    got: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        got.append(signum)
        for child in multiprocessing.active_children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)  # type: ignore[arg-type]

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield got
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _gpus_for(nproc: int, backend: str) -> Iterator[None]:
    """Ignite's spawn gives process i GPU i (``torch.cuda.set_device(local_rank)``, whatever the backend):
    with fewer GPUs than processes, NCCL is refused here, and gloo processes are spawned seeing no GPU,
    so they train on the CPU instead of failing with "invalid device ordinal" (torchrun can share one)."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus == 0 or nproc <= gpus:
        yield
        return
    if backend == "nccl":
        raise ValueError(f"--nproc-per-node {nproc} with NCCL needs {nproc} GPUs, this machine has {gpus}; use "
                         f"--nproc-per-node {gpus}, or --backend gloo (the processes then train on the CPU)")
    say(f"{nproc} gloo processes on {gpus} GPU(s): each spawned process trains on the CPU "
        "(to share the GPUs, start the processes with torchrun)")
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


class _Finished:
    """``fn``, then what still holds the group let go (``release_process_group``) and, after a success, a
    barrier: no process tears its group down while another still uses it."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, local_rank: int, args: argparse.Namespace) -> None:
        import ignite.distributed as idist

        from engine.distributed import release_process_group

        try:
            self.fn(local_rank, args)
        except BaseException as e:
            release_process_group(e)
            raise
        release_process_group()
        idist.barrier()


def _in_torchrun_group(fn: Callable[..., Any], args: argparse.Namespace, backend: str) -> None:
    """Join torchrun's process group, run ``fn``, leave the group.

    The group's keys go under this attempt's prefix in torchrun's store: the agent keeps one store for
    every attempt, and a restarted group would otherwise read a dead worker's address from it (gloo's
    ``connectFullMesh`` then fails with "Connection refused", or hangs). Process i uses GPU i; a gloo group
    with more processes than GPUs shares them round-robin (NCCL cannot: ``device_count`` is a hard limit).
    """
    import datetime

    import ignite.distributed as idist
    import torch
    import torch.distributed as dist

    store, rank, world = next(dist.rendezvous("env://", timeout=datetime.timedelta(minutes=10)))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    elif torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group(backend, store=dist.PrefixStore(f"d2l-ignite/attempt-{restart_count()}", store),
                            rank=rank, world_size=world)
    try:
        _Finished(fn)(local_rank, args)
    finally:
        idist.sync()  # idist takes the group up if nothing asked it yet, so that finalize destroys it
        idist.finalize()


def _local_rendezvous(addr: str | None, port: int | None) -> dict[str, object]:
    """One machine: the processes meet through a file in a private folder, so no rendezvous store listens on a
    port, and gloo / NCCL talk over the loopback interface only. A ``--master-addr`` / ``--master-port`` given is
    used as torch's TCP store (it listens on every interface; a busy port is named before any process starts)."""
    from handlers.local import port_in_use

    if addr is None and port is None:
        import atexit
        import shutil

        folder = tempfile.mkdtemp(prefix="d2l-ignite-rendezvous-")  # 0700: this user's alone
        atexit.register(shutil.rmtree, folder, True)
        loopback = next((name for _, name in socket.if_nameindex() if name.startswith("lo")), "lo")
        for variable in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME"):  # inherited by the spawned processes
            os.environ.setdefault(variable, loopback)
        return {"init_method": f"file://{folder}/store"}
    addr = addr or "127.0.0.1"
    if port is not None and port_in_use(addr, port):
        raise ValueError(f"--master-port {port} is in use on {addr}; choose another, or leave it out for a free one")
    if port is None:
        from handlers.local import free_port

        port = free_port(addr)
    return {"master_addr": addr, "master_port": port}


def torchrun_pointer(runs_root: str | None = None) -> str:
    """The file where the first attempt of this torchrun job names its run folder for a restarted one: keyed
    by the job id, the host and the elastic agent (the workers' parent, the same for every attempt)."""
    key = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{os.environ.get('TORCHELASTIC_RUN_ID', 'none')}-"
                 f"{socket.gethostname()}-{os.getppid()}")
    return os.path.join(runs_root or runs_path(), f".torchrun-{key}")


def agree_on_run(folder: str, resume: str | None) -> tuple[str, str | None]:
    """Rank 0's run folder and checkpoint to resume from, for every process."""
    import ignite.distributed as idist

    if idist.get_world_size() == 1:
        return folder, resume
    return tuple(json.loads(idist.broadcast(json.dumps([folder, resume]), src=0, safe_mode=True)))  # type: ignore[return-value]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
