"""Launching the DDP test jobs: ``tests/ddp_job.py`` spawned by ``idist.Parallel`` or started by torchrun."""
from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOB = os.path.join(ROOT, "tests", "ddp_job.py")
TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")


def job(out, nproc, epochs, *args, ok=True, timeout=300) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, JOB, str(out), str(nproc), str(epochs), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)
    if ok:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def torchrun(nproc, *args, timeout=300, cwd=ROOT, ok=True) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node N ARGS...`` (a free rendezvous port, loopback only)."""
    done = subprocess.run([TORCHRUN, "--standalone", "--nproc-per-node", str(nproc), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if ok:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def ranks(out, n) -> list[dict]:
    """Each rank's record: the example ids it trained on per epoch, the epochs it ran, its test accs."""
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(n)]


def printed(out) -> list[str]:
    return (out / "rank0.txt").read_text().splitlines()
