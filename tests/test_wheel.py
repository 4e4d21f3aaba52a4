"""The wheel holds what the installed project needs: every module and data file of both packages, the
command, and the Python / visdom markers `make compat` measured (.ci/compat.py installs this wheel)."""
from __future__ import annotations

import email
import pathlib
import subprocess
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_the_wheel_holds_every_package_file_the_installed_project_needs(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    wheel = next(tmp_path.glob("d2l_ignite-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(["git", "ls-files", "engine", "handlers"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    assert tracked and sorted(set(tracked) - names) == []  # modules, py.typed, the server script
    assert not [n for n in names if n.startswith(("tests/", "bench/", "examples/", ".ci/"))]
    info = next(n for n in names if n.endswith(".dist-info/METADATA"))
    meta = email.message_from_string(zipfile.ZipFile(wheel).read(info).decode())
    assert meta["Requires-Python"] == ">=3.10"
    requires = meta.get_all("Requires-Dist")
    assert 'visdom<0.3,>=0.2.4; python_version < "3.12"' in requires
    assert 'visdom>=0.3.0; python_version >= "3.12"' in requires
    assert {f"Programming Language :: Python :: 3.{m}" for m in (10, 11, 12, 13)} <= set(meta.get_all("Classifier"))
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "d2l-ignite = engine.app.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
