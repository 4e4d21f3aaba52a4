"""``python -m bench ddp-soak [--runs N] [--quick]``: back-to-back two-process runs beside two busy CPU hogs.

Each run is the main job on the bundled digits (an MLP, one epoch, no plots) in two gloo processes,
alternately spawned by ``d2l-ignite train --nproc-per-node 2`` and started by ``torchrun``. A run counts
as an abort when a process died of SIGABRT or printed "terminate called", as a hang when it outlived
``--timeout``, and as a failure for any other non-zero exit. All three must be 0.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = ["-m", "engine.app", "train", "--model", "mlp", "--epochs", "1", "--no-plot", "--no-progress"]
LAUNCHERS = {
    "--nproc-per-node": lambda out: [sys.executable, *TRAIN, "--nproc-per-node", "2", "--out", out],
    "torchrun": lambda out: [os.path.join(os.path.dirname(sys.executable), "torchrun"), "--standalone",
                             "--nproc-per-node", "2", *TRAIN, "--out", out],
}


def _hog() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def _one(command: list[str], timeout: float) -> tuple[str, float, str]:
    """(outcome, seconds, the output's tail) of one run: ok, abort, hang or failed."""
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired as e:
        return "hang", time.perf_counter() - started, str(e.stderr or "")[-2000:]
    seconds = time.perf_counter() - started
    output = done.stdout + done.stderr
    if "terminate called" in output or "SIGABRT" in output or done.returncode in (-6, 134):
        return "abort", seconds, output[-2000:]
    return ("ok" if done.returncode == 0 else "failed"), seconds, output[-2000:]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench ddp-soak", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--timeout", type=float, default=180.0, help="seconds after which a run counts as hung")
    p.add_argument("--hogs", type=int, default=2, help="busy CPU processes running beside the runs")
    p.add_argument("--quick", action="store_true", help="2 runs (one per launcher), for the test suite")
    args = p.parse_args(argv)
    runs = 2 if args.quick else args.runs
    hogs = [_hog() for _ in range(args.hogs)]
    outcomes: dict[str, list[float]] = {"ok": [], "abort": [], "hang": [], "failed": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(runs):
                name, launch = list(LAUNCHERS.items())[i % len(LAUNCHERS)]
                outcome, seconds, tail = _one(launch(os.path.join(tmp, f"run-{i}")), args.timeout)
                outcomes[outcome].append(seconds)
                print(f"run {i + 1:3d}/{runs} {name:16s} {outcome:6s} {seconds:6.1f} s", flush=True)
                if outcome != "ok":
                    print(tail, flush=True)
    finally:
        for hog in hogs:
            hog.kill()
    times = [t for ts in outcomes.values() for t in ts]
    print(f"ddp-soak: {runs} runs of 2 gloo processes beside {args.hogs} CPU hogs: {len(outcomes['abort'])} aborts, "
          f"{len(outcomes['failed'])} other non-zero exits, {len(outcomes['hang'])} hangs; per run median "
          f"{statistics.median(times):.1f} s, max {max(times):.1f} s")
    if len(outcomes["ok"]) != runs:
        sys.exit(1)
