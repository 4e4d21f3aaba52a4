"""Visdom's browser files from the npm registry, so its page draws with no CDN.

Visdom's ``server/build.py`` names each file by a CDN URL; every one is an npm package at that exact
version. We read the list from the installed visdom (0.2.4 and 0.3.0 differ), ``npm pack`` each
package and copy the files to the names visdom expects.
"""
from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import tarfile
import tempfile

__all__ = ["static_dir", "required_files", "missing_files", "install_assets"]

# CDN files that are not on unpkg: the npm package and file that hold the same bytes.
_NOT_UNPKG = {
    "plotly-": ("plotly.js-dist-min@{v}", "plotly.min.js"),
    "d3.v3.min.js": ("d3@3.5.17", "d3.min.js"),
    "d3-selection-multi.v1.js": ("d3-selection-multi@1.0.1", "build/d3-selection-multi.js"),
}


def static_dir() -> str:
    import visdom

    return os.path.join(os.path.dirname(visdom.__file__), "static")


def _build_file() -> str:
    import visdom

    return os.path.join(os.path.dirname(visdom.__file__), "server", "build.py")


def _build_lists(build_py: str) -> tuple[dict[str, str], str, str, list[str]]:
    """Evaluate the string constants of visdom's ``download_scripts`` without running it."""
    tree = ast.parse(open(build_py).read())
    func = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "download_scripts")
    wanted = {"b", "bb", "ext_files", "mathjax_version", "cdnjs_url", "mathjax_path"}
    scope: dict = {"os": os}
    for node in ast.walk(func):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and getattr(node.targets[0], "id", "") in wanted:
            scope[node.targets[0].id] = eval(compile(ast.Expression(node.value), build_py, "eval"),
                                             {"__builtins__": {}}, scope)
    return scope["ext_files"], scope["cdnjs_url"], scope.get("mathjax_version", ""), scope["mathjax_path"]


def _sub_dir(name: str) -> str:
    if name.endswith((".js", ".js.map")):
        return "js"
    return "css" if name.endswith(".css") else "fonts"


def required_files(build_py: str | None = None) -> dict[str, tuple[str, str]]:
    """Destination path (relative to static/) -> (npm spec, path inside the package)."""
    ext_files, cdnjs_url, _, mathjax_paths = _build_lists(build_py or _build_file())
    out: dict[str, tuple[str, str]] = {}
    for url, name in ext_files.items():
        dest = f"{_sub_dir(name)}/{name}"
        m = re.match(r"https?://unpkg\.com/((?:@[^/]+/)?[^@/]+@[^/]+)/?(.*)$", url)
        if m:
            out[dest] = (m.group(1), m.group(2).split("#")[0])
            continue
        for key, (spec, inner) in _NOT_UNPKG.items():
            if name.startswith(key) or url.endswith(key):
                version = re.search(r"plotly-([\d.]+)\.min\.js", url)
                out[dest] = (spec.format(v=version.group(1) if version else ""), inner)
                break
        else:
            raise RuntimeError(f"no npm source known for visdom asset {url}")
    mj = re.search(r"mathjax/([\d.]+)/", cdnjs_url)
    if mj:
        for path in mathjax_paths:
            clean = path.split("?")[0]
            out[f"js/mathjax/{mj.group(1)}/{clean}"] = (f"mathjax@{mj.group(1)}", clean)
    return out


def missing_files() -> list[str]:
    root = static_dir()
    return [d for d in required_files() if not os.path.exists(os.path.join(root, d))]


def _main_file(package_dir: str) -> str:
    import json

    meta = json.load(open(os.path.join(package_dir, "package.json")))
    return meta.get("main", "index.js")


def install_assets(npm: str = "npm", say=print, visdom_dir: str | None = None) -> list[str]:
    """Fetch what is missing with ``npm pack`` (exact versions) and place it; return what was installed.

    ``visdom_dir``: the folder of a visdom package not importable here (another Python's, for a machine
    without network: ``bench/gpu_check.py``); by default the installed one.
    """
    if visdom_dir is None:
        import visdom

        root, files, version = static_dir(), required_files(), visdom.__version__
    else:
        root, files = os.path.join(visdom_dir, "static"), required_files(os.path.join(visdom_dir, "server", "build.py"))
        version = open(os.path.join(visdom_dir, "VERSION")).read().strip()
    needed = {d: src for d, src in files.items() if not os.path.exists(os.path.join(root, d))}
    if not needed:
        return []
    if shutil.which(npm) is None:
        raise RuntimeError("Visdom's browser files are missing and `npm` is not installed to fetch them; "
                           "install Node.js/npm, or run `python -m visdom.server` once with internet access")
    if not os.access(root, os.W_OK):
        raise PermissionError(f"cannot write Visdom's static folder {root}; run once as its owner")
    say(f"installing {len(needed)} Visdom browser files from the npm registry")
    with tempfile.TemporaryDirectory() as tmp:
        for spec in sorted({s for s, _ in needed.values()}):
            done = _npm_pack(npm, spec, tmp)
            tarball = os.path.join(tmp, done.stdout.strip().splitlines()[-1])
            unpack = os.path.join(tmp, re.sub(r"[^\w.-]", "_", spec))
            with tarfile.open(tarball) as tar:
                tar.extractall(unpack, filter="data")
            package = os.path.join(unpack, "package")
            for dest, (s, inner) in needed.items():
                if s == spec:
                    target = os.path.join(root, dest)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    shutil.copyfile(os.path.join(package, inner or _main_file(package)), target)
    with open(os.path.join(root, "version.built"), "w") as f:
        f.write(version)
    return sorted(needed)


def _npm_pack(npm: str, spec: str, tmp: str) -> subprocess.CompletedProcess:
    """``npm pack spec`` into ``tmp``; an error naming the package and npm's last line when it fails."""
    try:
        done = subprocess.run([npm, "pack", spec, "--silent", "--pack-destination", tmp], cwd=tmp,
                              capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        done = None
    if done is None or done.returncode != 0:
        lines = [] if done is None else done.stderr.strip().splitlines() or ["no output"]
        why = "took over 300 s" if done is None else lines[-1][:200]
        raise RuntimeError(f"fetching Visdom's browser files failed (npm pack {spec}: {why}); is the npm "
                           "registry reachable (npm config get registry)?")
    return done
