"""Every Python block of the README is a complete program that runs as written."""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs_as_written(code, tmp_path):
    (tmp_path / "block.py").write_text(code)
    env = dict(os.environ, D2L_IGNITE_PLOT="1")  # plots as a user gets them: a local server is started
    done = subprocess.run([sys.executable, "block.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    if "train_ch13(" in code or "summary()" in code:
        assert re.search(r"^loss [\d.]+, train acc [\d.]+, test acc [\d.]+$", done.stdout, re.M), done.stdout
