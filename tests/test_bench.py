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
