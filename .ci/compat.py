#!/usr/bin/env python3
"""``make compat``: the project's wheel, installed (not editable) on every Python 3.10-3.13 found here.

For each Python: a venv of its own (kept between runs in ``$D2L_COMPAT_HOME``, default
``~/.cache/d2l-compat``), the wheel built from this checkout and its dependencies installed there
(visdom 0.2.4 on <= 3.11, 0.3.0 on >= 3.12, as pyproject's markers say), then from a folder outside the
repo the main job and a Visdom round trip, and from the repo's tests (with the repo kept off
``sys.path``: ``tests/conftest.py`` checks) the README's blocks and the non-slow tests. Prints a table
and writes it to ``$D2L_COMPAT_HOME/report.md``. Not part of ``make test``: it takes long.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOME = Path(os.environ.get("D2L_COMPAT_HOME", Path.home() / ".cache" / "d2l-compat"))
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
STEPS = ("install", "main job", "README", "Visdom round trip", "tests")
TORCH_SIZE = "about 3 GB (torch with its CUDA libraries, torchvision)"


def find_python(version: str) -> str | None:
    """``python3.X`` on PATH, else pyenv's newest 3.X."""
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = [shutil.which(f"python{version}")] + sorted(glob.glob(f"{pyenv}/versions/{version}.*/bin/python"),
                                                         reverse=True)
    for candidate in filter(None, found):
        done = subprocess.run([candidate, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip() == version:
            return candidate
    return None


def run(args: list[str], log: Path, timeout: float, **kw) -> bool:
    """Run ``args``, appending its output to ``log``; True when it exits 0 in time."""
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(args)}\n")
        out.flush()
        try:
            return subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, **kw).returncode == 0
        except subprocess.TimeoutExpired:
            out.write(f"timed out after {timeout:.0f} s\n")
            return False


def build_wheel(log: Path) -> Path:
    dist = HOME / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    if not run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)], log, 600):
        sys.exit(f"the wheel did not build; see {log}")
    return next(dist.glob("d2l_ignite-*.whl"))


def pip_env() -> dict[str, str]:
    env = dict(os.environ, PIP_CONSTRAINT=str(ROOT / ".ci" / "constraints.txt"), PIP_DISABLE_PIP_VERSION_CHECK="1")
    wheels = HOME / "wheels"  # torch files fetched once (pip download) and reused by every venv
    if wheels.is_dir():
        env["PIP_FIND_LINKS"] = str(wheels)
    return env


def install(python: str, venv: Path, wheel: Path, log: Path) -> bool:
    """A venv (reused) with the wheel replaced and its dependencies resolved; the book's d2l for the tests."""
    if not (venv / "bin" / "python").exists() and not run([python, "-m", "venv", str(venv)], log, 300):
        return False
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    return (run(pip + ["--force-reinstall", "--no-deps", str(wheel)], log, 600, env=pip_env())
            and run(pip + [f"{wheel}[dev]"], log, 3600, env=pip_env())
            and run(pip + ["--no-deps", "d2l==1.0.3"], log, 600, env=pip_env()))


def versions(venv: Path) -> dict[str, str]:
    code = ("import json, importlib.metadata as m; print(json.dumps({k: m.version(p) for k, p in "
            "[('torch', 'torch'), ('ignite', 'pytorch-ignite'), ('visdom', 'visdom'), ('numpy', 'numpy')]}))")
    done = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def checks(venv: Path, log: Path) -> dict[str, bool]:
    """The four checks after the install, each from where the installed package (not the repo) is imported."""
    bin_ = venv / "bin"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"D2L_IGNITE_EXPECT_INSTALLED": "1"}
    outside = Path(tempfile.mkdtemp(prefix="d2l-compat-"))
    try:
        return {
            "main job": run([str(bin_ / "d2l-ignite"), "train", "--epochs", "2", "--no-plot", "--no-keep-serving",
                             "--out", str(outside / "run")], log, 900, cwd=outside, env=env),
            "Visdom round trip": run([str(bin_ / "python"), str(ROOT / ".ci" / "compat_roundtrip.py")], log, 600,
                                     cwd=outside, env=env),
            "README": run([str(bin_ / "pytest"), "-q", "-p", "no:cacheprovider", "tests/test_readme.py"], log, 1800,
                          cwd=ROOT, env=env),
            "tests": run([str(bin_ / "pytest"), "-q", "-p", "no:cacheprovider", "-m", "not slow",
                          "--ignore=tests/test_readme.py"], log, 3600, cwd=ROOT, env=env),
        }
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def one_python(version: str, wheel: Path) -> dict[str, object]:
    python = find_python(version)
    if python is None:
        return {"python": version, "skipped": f"no python{version} on PATH or under pyenv"}
    venv, log = HOME / f"py{version}", HOME / f"py{version}.log"
    log.write_text("")
    if not (venv / "bin" / "python").exists() or "torch" not in versions(venv):
        print(f"python {version}: a new venv fetches {TORCH_SIZE} unless {HOME / 'wheels'} holds them", flush=True)
    start = time.monotonic()
    row: dict[str, object] = {"python": version, "install": install(python, venv, wheel, log)}
    row.update(versions(venv))
    if row["install"]:
        row.update(checks(venv, log))
    row["wall"] = time.monotonic() - start
    print(f"python {version}: {'ok' if all(row.get(s) for s in STEPS) else 'FAILED'} (log: {log})", flush=True)
    return row


def table(rows: list[dict[str, object]]) -> str:
    head = ["Python", "torch", "ignite", "visdom", "numpy", *STEPS, "wall"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['python']} | skipped: {r['skipped']} |" + " |" * (len(head) - 2))
            continue
        cells = [str(r["python"])] + [str(r.get(k, "?")) for k in ("torch", "ignite", "visdom", "numpy")]
        cells += ["ok" if r.get(s) else ("failed" if s in r else "not run") for s in STEPS]
        lines.append("| " + " | ".join(cells + [f"{r['wall'] / 60:.1f} min"]) + " |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--python", action="append", choices=PYTHONS, help="only these (default: all four)")
    args = p.parse_args()
    HOME.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(HOME / "build.log")
    rows = [one_python(v, wheel) for v in args.python or PYTHONS]
    report = (f"`make compat` on {os.uname().nodename} ({os.cpu_count()} cores), {time.strftime('%Y-%m-%d')}, "
              f"wheel {wheel.name}\n\n{table(rows)}\n")
    (HOME / "report.md").write_text(report)
    print(report)
    return 0 if all("skipped" in r or all(r.get(s) for s in STEPS) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
