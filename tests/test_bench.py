"""The benchmark keeps working: its CI-sized mode runs every CPU variant and prints the table."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # several processes, servers or a browser: `make test`, not `make check`

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_quick_prints_every_variant():
    done = subprocess.run([sys.executable, "-m", "bench", "compare", "--quick"], capture_output=True, text=True,
                          timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    for variant in ("book", "hand", "ignite", "ours+plot", "ours"):
        row = re.search(rf"^\| {re.escape(variant)} \| (\d+) \| ([\d.]+) \| ([\d.]+)x, ([\d.]+)x \|", done.stdout, re.M)
        assert row and float(row.group(1)) > 0 and float(row.group(2)) > 0, (variant, done.stdout)


def test_overhead_quick_prints_each_figure_with_its_target():
    done = subprocess.run([sys.executable, "-m", "bench", "overhead", "--quick"], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert re.search(r"per-iteration overhead .*: -?[\d.]+ us \(target <= 25 us\); "
                     r"a bare Ignite Engine .*: -?[\d.]+ us", out)
    assert re.search(r"fixed cost of a call, plots off: [\d.]+ ms \(target <= 30 ms\)", out)
    assert re.search(r"plots to a live local server: [\d.]+ ms with your VisdomPlotter, [\d.]+ ms with plot=True .* "
                     r"\(target <= 30 ms\); the server's one-time start: \d+ ms", out)
    ratio = re.search(r"ours/hand speed ([\d.]+) .*range ([\d.]+)-([\d.]+); target >= 0.99", out)
    assert ratio and float(ratio.group(2)) <= float(ratio.group(1)) <= float(ratio.group(3)), out


def test_ddp_soak_quick_runs_both_launchers_and_counts_outcomes():
    done = subprocess.run([sys.executable, "-m", "bench", "ddp-soak", "--quick", "--hogs", "0"], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"run +1/2 --nproc-per-node +ok .*\n.*run +2/2 torchrun +ok", done.stdout)
    assert re.search(r"ddp-soak: 2 runs of 2 gloo processes beside 0 CPU hogs: 0 aborts, 0 other non-zero exits, "
                     r"0 hangs; per run median [\d.]+ s", done.stdout)
