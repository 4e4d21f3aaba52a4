"""`make compat`'s pieces that run in seconds: finding each Python, and the table's rows (ok, failed,
skipped with its reason). The whole run is too long for the suite; its table is in the README."""
from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("compat", ROOT / ".ci" / "compat.py")
compat = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compat)


def test_finds_this_python_and_names_one_that_is_missing(monkeypatch):
    version = "%d.%d" % sys.version_info[:2]
    found = compat.find_python(version)
    assert found is not None
    done = subprocess.run([found, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
    assert done.stdout.strip() == str(tuple(sys.version_info[:2]))
    monkeypatch.setenv("PYENV_ROOT", "/nonexistent")
    monkeypatch.setenv("PATH", "/nonexistent")
    row = compat.one_python("3.10", ROOT / "no.whl")
    assert row == {"python": "3.10", "skipped": "no python3.10 on PATH or under pyenv"}


def test_the_table_has_a_row_per_python_with_each_step():
    rows = [{"python": "3.12", "torch": "2.14.1", "ignite": "0.5.5", "visdom": "0.3.0", "numpy": "2.5.5",
             "install": True, "main job": True, "README": True, "Visdom round trip": False, "tests": True, "wall": 90},
            {"python": "3.13", "install": False, "wall": 12},
            {"python": "3.10", "skipped": "no python3.10 on PATH or under pyenv"}]
    lines = compat.table(rows).splitlines()
    assert lines[0].startswith("| Python | torch | ignite | visdom | numpy | install | main job | README |")
    assert lines[2] == "| 3.12 | 2.14.1 | 0.5.5 | 0.3.0 | 2.5.5 | ok | ok | ok | failed | ok | 1.5 min |"
    assert lines[3] == "| 3.13 | ? | ? | ? | ? | failed | not run | not run | not run | not run | 0.2 min |"
    assert lines[4].startswith("| 3.10 | skipped: no python3.10 on PATH or under pyenv |")
    assert len({line.count("|") for line in lines}) == 1  # every row has every column
