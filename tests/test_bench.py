"""The benchmark keeps working: its CI-sized mode runs every CPU variant and prints the table."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # several processes, servers or a browser: `make test`, not `make check`

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """The GPU check's dry run on the CPU: the same script and sections as on a lent GPU (``make gpu-check``),
    with ``bench compare --quick`` and ``bench overhead --quick`` on the CPU; its report folder."""
    out = tmp_path_factory.mktemp("gpu-check")
    done = subprocess.run([sys.executable, "-m", "bench.gpu_check", str(out), "--dry-run", "--wheels",
                           str(out / "no-wheels")], capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return out


def test_gpu_check_dry_run_writes_one_report_of_every_section(dry_run):
    report = json.loads((dry_run / "gpu-check.json").read_text())
    assert report["dry_run"] and report["setup"] == "nothing to install"
    assert [s["name"] for s in report["sections"]] == ["env", "cuda-tests", "compare", "overhead"]
    assert all(s["rc"] == 0 and s["seconds"] > 0 for s in report["sections"])
    tests = report["tests"]  # every CUDA test collected, each skipped here with its reason
    assert tests["tests"] >= 20 and tests["skipped"] == tests["tests"] and not tests["failed"]
    md = (dry_run / "gpu-check.md").read_text()
    assert "## cuda-tests: ok" in md and "| ours |" in md and "per-iteration cost" in md
    assert "no CUDA device here" in (dry_run / "cuda-tests.log").read_text()


def test_bench_quick_prints_every_variant(dry_run):
    out = (dry_run / "compare.log").read_text()
    for variant in ("book", "hand", "ignite", "ours+plot", "ours"):
        row = re.search(rf"^\| {re.escape(variant)} \| (\d+) \| ([\d.]+) \| ([\d.]+)x, ([\d.]+)x \|", out, re.M)
        assert row and float(row.group(1)) > 0 and float(row.group(2)) > 0, (variant, out)


def test_overhead_quick_prints_each_figure_with_its_target(dry_run):
    out = (dry_run / "overhead.log").read_text()
    assert re.search(r"per-iteration cost over a bare Ignite Engine, trivial step: ours [-+][\d.]+ us \(target <= 5 "
                     r"us\), ours with its progress display [-+][\d.]+ us \(target <= 15 us\); Ignite's factory", out)
    assert re.search(r"aten ops per iteration: ours [\d.]+, the hand loop with the book's figures [\d.]+ \(target", out)
    assert re.search(r"Python calls per iteration: ours \d+, with the bar \d+, a bare Engine \d+", out)
    for loop in ("hand", "hand+book", "bare Engine", "ours", "ours+bar", "ignite", "ignite+bar"):
        assert re.search(rf"^\| {re.escape(loop)} \| [\d.]+ \| [-+][\d.]+ \| [\d.]+ \| \d+ \|$", out, re.M), loop
    assert re.search(r"fixed cost of a call, plots off: [\d.]+ ms \(target <= 30 ms\)", out)
    assert re.search(r"plots to a live local server: [\d.]+ ms with your VisdomPlotter, [\d.]+ ms with plot=True .* "
                     r"\(target <= 30 ms\); the server's one-time start: \d+ ms", out)
    ratio = re.search(r"ours/hand speed ([\d.]+) .*range ([\d.]+)-([\d.]+); target >= 0.99", out)
    assert ratio and float(ratio.group(2)) <= float(ratio.group(1)) <= float(ratio.group(3)), out


def test_gpu_check_installs_only_the_carried_wheels_this_python_lacks(tmp_path):
    from bench.gpu_check import install, missing

    have = tmp_path / "torch-0.0-py3-none-any.whl"
    lack = tmp_path / "no_such_dist_xyz-1.0-py3-none-any.whl"
    assert missing([have, lack]) == [lack]
    assert install(tmp_path / "empty", tmp_path / "site") == "nothing to install"


def test_ddp_soak_quick_runs_both_launchers_and_counts_outcomes():
    done = subprocess.run([sys.executable, "-m", "bench", "ddp-soak", "--quick", "--hogs", "0"], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"run +1/2 --nproc-per-node +ok .*\n.*run +2/2 torchrun +ok", done.stdout)
    assert re.search(r"ddp-soak: 2 runs of 2 gloo processes beside 0 CPU hogs: 0 aborts, 0 other non-zero exits, "
                     r"0 hangs; per run median [\d.]+ s", done.stdout)
