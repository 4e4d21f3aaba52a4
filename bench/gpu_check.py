"""The prepared check for a lent GPU: one command, one report (``make gpu-check`` or ``python -m bench.gpu_check``).

On a bare GPU machine (another torch release, no pytorch-ignite or visdom, no network) it installs
what is missing from the wheels it carries (``.whl/``, filled beforehand with ``--fetch-wheels``),
then runs, each under its own time limit and inside one overall budget: the ``cuda`` tests, ``python
-m bench compare --device cuda --quick`` and ``python -m bench overhead --device cuda --quick``.
It writes ``gpu-check.md`` and ``gpu-check.json`` (and each section's log) into the folder given, or
``$OUT``. ``--dry-run`` runs the same sections on the CPU (CI runs it, so the script cannot rot).
Only the standard library is imported here: the machine may lack everything else until installed.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# what a GPU image with torch lacks: Ignite, Visdom and their pure-Python needs; pip's d2l (the bench's
# reference) and what its module imports (IPython, matplotlib-inline). Exact pins where behaviour matters.
CARRIED = ["pytorch-ignite==0.5.5", "tornado<6.6", "jsonpatch", "jsonpointer", "websocket-client", "d2l==1.0.3",
           "ipython", "decorator", "ipython-pygments-lexers", "jedi", "parso", "matplotlib-inline", "pexpect",
           "ptyprocess", "prompt_toolkit", "wcwidth", "stack_data", "executing", "asttokens", "pure_eval",
           "traitlets"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64", "any"]


def sections(dry_run: bool) -> list[tuple[str, list[str], int]]:
    """(name, command, seconds allowed) in the order they run: the most telling first."""
    device = "cpu" if dry_run else "cuda"
    py = sys.executable
    return [
        ("env", [py, "-c", ENV_PROBE], 60),
        ("cuda-tests", [py, "-m", "pytest", "tests/test_cuda.py", "-m", "cuda or multi_gpu", "-q", "-rA",
                        "-p", "no:cacheprovider", "--timeout", "200", "--junitxml", "{out}/cuda-tests.xml"], 270),
        ("compare", [py, "-m", "bench", "compare", "--device", device, "--quick"], 210),
        ("overhead", [py, "-m", "bench", "overhead", "--device", device, "--quick"], 110),
    ]


ENV_PROBE = """
import importlib.metadata as m, platform, torch
print('python', platform.python_version(), '| torch', torch.__version__, '| cuda', torch.version.cuda)
for name in ('pytorch-ignite', 'visdom', 'numpy', 'd2l'):
    try: print(name, m.version(name))
    except m.PackageNotFoundError: print(name, 'missing')
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        print(f'cuda:{i}', p.name, f'{p.total_memory / 2**30:.0f} GiB', 'capability', f'{p.major}.{p.minor}')
else:
    print('no CUDA device')
"""


def missing(wheels: list[Path]) -> list[Path]:
    """The carried wheels whose distribution this Python does not have."""
    out = []
    for wheel in wheels:
        name = wheel.name.split("-")[0]
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out.append(wheel)
    return out


ASSETS = "visdom-assets.tar.gz"  # Visdom's browser files, which its server would fetch from a CDN


def install(wheel_dir: Path, site: Path) -> str:
    """Install the carried wheels this machine lacks into ``site`` (no index, no dependencies resolved),
    and Visdom's browser files into the Visdom installed there (the machine has no network to fetch them)."""
    wheels = missing(sorted(wheel_dir.glob("*.whl"))) if wheel_dir.is_dir() else []
    if not wheels:
        return "nothing to install"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, wheels)], check=True)
    done = "installed " + ", ".join(w.name.split("-")[0] for w in wheels)
    if (wheel_dir / ASSETS).exists() and (site / "visdom").is_dir():
        with tarfile.open(wheel_dir / ASSETS) as tar:
            tar.extractall(site / "visdom" / "static", filter="data")
        done += ", Visdom's browser files"
    return done


def fetch_wheels(dest: Path, python_version: str) -> None:
    """Download the carried wheels for ``python_version`` on x86-64 Linux (here, where pip has a registry);
    visdom, an sdist only, is built into a wheel with that Python (``python{version}`` on the PATH)."""
    dest.mkdir(parents=True, exist_ok=True)
    platform = [a for p in PLATFORMS for a in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", python_version, "--implementation", "cp", *platform, "-d", str(dest),
                    *CARRIED], check=True)
    visdom = "visdom>=0.3.0" if tuple(map(int, python_version.split("."))) >= (3, 12) else "visdom==0.2.4"
    subprocess.run([f"python{python_version}", "-m", "pip", "wheel", "-q", "--no-deps", visdom, "-w", str(dest)],
                   check=True)
    with tempfile.TemporaryDirectory() as tmp:  # the browser files that wheel's server needs, from npm (here)
        wheel = next(dest.glob("visdom-*.whl"))
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--ignore-requires-python",
                        "--target", tmp, str(wheel)],
                       check=True)
        package = os.path.join(tmp, "visdom")
        fetch = ("import sys; from handlers.visdom_server.assets import install_assets, required_files; "
                 "install_assets(visdom_dir=sys.argv[1], say=lambda _: None); "
                 "print('\\n'.join(required_files(sys.argv[1] + '/server/build.py')))")
        names = subprocess.run([sys.executable, "-c", fetch, package], env={**os.environ, "PYTHONPATH": str(REPO)},
                               check=True, capture_output=True, text=True).stdout.split()
        with tarfile.open(dest / ASSETS, "w:gz") as tar:
            for name in names:
                tar.add(os.path.join(tmp, "visdom", "static", name), arcname=name)


def run_section(name: str, command: list[str], limit: float, out: Path, env: dict[str, str]) -> dict:
    command = [c.replace("{out}", str(out)) for c in command]
    shown = " ".join("<env probe>" if c == ENV_PROBE else c for c in command)
    t0 = time.monotonic()
    try:
        done = subprocess.run(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=limit)
        rc, text = done.returncode, done.stdout
    except subprocess.TimeoutExpired as e:
        rc, text = 124, (e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout or "")
        text += f"\n[stopped after its {limit:.0f} s limit]\n"
    (out / f"{name}.log").write_text(text)
    return {"name": name, "command": shown, "rc": rc, "seconds": round(time.monotonic() - t0, 1),
            "limit_s": round(limit), "output": text}


def test_summary(xml: Path) -> dict:
    """Counts and each failed test's first message line, from pytest's JUnit XML."""
    if not xml.exists():
        return {}
    root = ET.parse(xml).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    failed = []
    for case in suite.iter("testcase"):
        for bad in list(case.findall("failure")) + list(case.findall("error")):
            first = (bad.get("message") or "").strip().splitlines()[:1]
            failed.append(f"{case.get('name')}: {first[0][:300] if first else bad.tag}")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    return {**counts, "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
            "failed": failed}


def tables(text: str) -> str:
    """The markdown tables and figure lines of a benchmark's output (what the README quotes)."""
    heads = ("|", "device", "per-iteration", "aten ops", "fixed cost", "whole train_ch13", "##", "lenet", "resnet18")
    keep = [line for line in text.splitlines() if line.startswith(heads)]
    return "\n".join(keep)


def report(results: list[dict], tests: dict, out: Path, note: str, dry_run: bool) -> str:
    lines = [f"# GPU check{' (dry run on the CPU)' if dry_run else ''}, {time.strftime('%Y-%m-%d %H:%M')}", "",
             f"Set-up: {note}", ""]
    for r in results:
        status = "ok" if r["rc"] == 0 else ("stopped at its limit" if r["rc"] == 124 else f"failed (rc {r['rc']})")
        lines += [f"## {r['name']}: {status}, {r['seconds']} s", "", f"`{r['command']}`", ""]
        if r["name"] == "env":
            lines += ["```", r["output"].strip(), "```", ""]
        elif r["name"] == "cuda-tests" and tests:
            lines += [f"{tests['passed']} passed, {tests['failures'] + tests['errors']} failed, "
                      f"{tests['skipped']} skipped", ""] + [f"- FAILED {f}" for f in tests["failed"]] + [""]
        elif tables(r["output"]):
            lines += [tables(r["output"]), ""]
        if r["rc"] != 0:
            lines += ["Last lines:", "```", "\n".join(r["output"].strip().splitlines()[-25:]), "```", ""]
    text = "\n".join(lines)
    (out / "gpu-check.md").write_text(text)
    (out / "gpu-check.json").write_text(json.dumps({"dry_run": dry_run, "setup": note, "tests": tests,
                                                    "sections": [{k: v for k, v in r.items() if k != "output"}
                                                                 for r in results]}, indent=1))
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", default=os.environ.get("OUT") or "gpu-check", help="report folder (or $OUT)")
    p.add_argument("--dry-run", action="store_true", help="the same sections on the CPU")
    p.add_argument("--budget", type=float, default=470.0, help="seconds for all sections together")
    p.add_argument("--wheels", default=str(REPO / ".whl"), help="folder of carried wheels")
    p.add_argument("--only", default=None, help="comma-separated section names to run")
    p.add_argument("--fetch-wheels", metavar="PYTHON_VERSION", help="download the carried wheels into --wheels")
    args = p.parse_args(argv)
    if args.fetch_wheels:
        fetch_wheels(Path(args.wheels), args.fetch_wheels)
        return 0
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    site = Path(tempfile.mkdtemp(prefix="d2l-gpu-site-"))
    note = install(Path(args.wheels), site)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), str(REPO),
                                                                     os.environ.get("PYTHONPATH")])),
           "PYTHONUNBUFFERED": "1", "D2L_IGNITE_PLOT": "0"}
    chosen = sections(args.dry_run)
    if args.only:
        names = set(args.only.split(","))
        chosen = [s for s in chosen if s[0] in names]
    deadline, results = time.monotonic() + args.budget, []
    for name, command, limit in chosen:
        left = deadline - time.monotonic()
        if left < 10:
            results.append({"name": name, "command": " ".join(command), "rc": 124, "seconds": 0.0, "limit_s": 0,
                            "output": "[not run: the budget was spent]"})
            continue
        results.append(run_section(name, command, min(limit, left), out, env))
        print(f"{name}: rc {results[-1]['rc']} in {results[-1]['seconds']} s", flush=True)
    tests = test_summary(out / "cuda-tests.xml")
    print(report(results, tests, out, note, args.dry_run))
    return 0 if all(r["rc"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
