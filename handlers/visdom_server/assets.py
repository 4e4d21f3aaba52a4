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

__all__ = ["static_dir", "required_files", "missing_files", "install_assets", "check_digest", "PINNED"]

# CDN files that are not on unpkg: the npm package and file that hold the same bytes.
_NOT_UNPKG = {
    "plotly-": ("plotly.js-dist-min@{v}", "plotly.min.js"),
    "d3.v3.min.js": ("d3@3.5.17", "d3.min.js"),
    "d3-selection-multi.v1.js": ("d3-selection-multi@1.0.1", "build/d3-selection-multi.js"),
}


# The npm registry's sha512 of each package Visdom 0.2.4 and 0.3.0 name (``npm view SPEC dist.integrity``): a
# tarball that differs (a compromised registry or mirror) is refused before a byte of it is served.
PINNED = dict(line.split() for line in """
bootstrap@3.3.7 qcFaisBrcBhTFkz1IUnGDYnX6ZWfFzH8zOixUDtHW9Ip+r+7MfMFav2rzy7cIHc7rgIg7xjhWBoo1mS/U26j4g==
classnames@2.2.5 DTt3GhOUDKhh4ONwIJW4lmhyotQmV2LjNlGK/J2hkwUcqcbKkCLAdJPtxQnxnlc7SR3f1CEXCyMmc7WLUsWbNA==
d3-selection-multi@1.0.1 mEnRkJ6A+Otd1LuRPV3az+s/RLDmIEhuz/MnT21O2nPcWNH7wZotdIlRjMA4Wpr+n7AESQ5fD8v1J3nL2Mnw9g==
d3@3.5.17 yFk/2idb8OHPKkbAL8QaOaqENNoMhIaSHZerk3oQsECwkObkCpJyjYwCe+OHiq6UEdhe1m8ZGARRRO3ljFjlKg==
jquery@3.1.1 zuiWRmx65Kd1oFGdWLvAjbsumdOBFvs3r1vuqCyKFF79R7exBHNbiNEJ8LR+xkzgfxqBznMD/4Cv6PHXS6mvEw==
layout-bin-packer@1.4.0 dQOZnajbOBGIcS9YlzKrkRtMCGa2oEpyf1zGRn93suphSvPclJe54Sbgtb053GJ21DUk84IBzaeQvjn+Gb10fA==
mathjax@2.7.5 OzsJNitEHAJB3y4IIlPCAvS0yoXwYjlo2Y4kmm9KQzyIBZt2d8yKRalby3uTRNN4fZQiGL2iMXjpdP1u2Rq2DQ==
mathjax@3.2.2 Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==
plotly.js-dist-min@2.11.1 F9WWNht0D3yBLZGHbLoJNfvplXvy+GUPSsA/lCbMuYd/UwzSu6Vmyprxlps9Einw1LDS1hYBrJeioK0lE3ieXA==
react-dom@16.2.0 zpGAdwHVn9K0091d+hr+R0qrjoJ84cIBFL2uU60KvWBPfZ7LPSrfqviTxGHWN0sjPZb2hxWzMexwrvJdKePvjg==
react-grid-layout@0.16.3 ytP92EqUjqcFhGzvdeKrK610dQ04GdFwRCWtD6PoeL5wR3liETcFISO7k8RBqnosV86JtXf/DwIfrL0COLs0gg==
react-grid-layout@2.2.3 OAEJHBxmfuxQfVtZwRzmsokijGlBgzYIJ7MUlLk/VSa43SaGzu15w5D0P2RDrfX5EvP9POMbL6bFrai/huDzbQ==
react-modal@3.1.10 7b77AGWCkdg0YOf/qcYIGCpuwbxRwOA8P3UrUovk4grUNv+idOmHovJAx/Dcd3fuwHtgixxVjpcjVG60985MSA==
react-resizable@1.4.6 4zLORO51u0/mlDsrVCAA4p266d+3mb2ZMNdiWOotAh/PdnfrRzZhgePmKE08PSQatXVIfMjmyD+Sapay8tmxdQ==
react-resizable@3.1.3 liJBNayhX7qA4tBJiBD321FDhJxgGTJ07uzH5zSORXoE8h7PyEZ8mLqmosST7ppf6C4zUsbd2gzDMmBCfFp9Lw==
react@16.2.0 ZmIomM7EE1DvPEnSFAHZn9Vs9zJl5A9H7el0EGTE6ZbW9FKe/14IYAlPbC8iH25YarEQxZL+E8VW7Mi7kfQrDQ==
save-svg-as-png@1.4.17 7QDaqJsVhdFPwviCxkgHiGm9omeaMBe1VKbHySWU6oFB2LtnGCcYS13eVoslUgq6VZC6Tjq/HddBd1K6p2PGpA==
sjcl@1.0.7 xQbiwKfiAj6vyk44ANJ5RRymALRdRZOuRoKNYkWUU404p/RFXmMaay1Z5vRn30GJjkD+psox4Jd38jZojSuNYA==
""".strip().splitlines())


def check_digest(spec: str, tarball: str) -> None:
    """Refuse a package whose bytes are not the pinned ones (or that has no pin: an unknown Visdom version)."""
    import base64
    import hashlib

    pinned = PINNED.get(spec)
    if pinned is None:
        raise RuntimeError(f"no pinned digest for Visdom's browser package {spec}: this Visdom version's files are "
                           "unknown to d2l-ignite; use visdom 0.2.4 or 0.3.0")
    with open(tarball, "rb") as f:
        digest = base64.b64encode(hashlib.sha512(f.read()).digest()).decode()
    if digest != pinned:
        raise RuntimeError(f"the npm package {spec} is not the one pinned (sha512 {digest[:16]}..., pinned "
                           f"{pinned[:16]}...): nothing of it was installed; check the registry (npm config get "
                           "registry)")


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
    """The package's main file, which must lie inside the package (its ``package.json`` is data, not a path)."""
    import json

    main = json.load(open(os.path.join(package_dir, "package.json"))).get("main", "index.js")
    inside = os.path.realpath(os.path.join(package_dir, str(main)))
    if os.path.commonpath([inside, os.path.realpath(package_dir)]) != os.path.realpath(package_dir):
        raise RuntimeError(f"the npm package's main file {str(main)[:80]!r} lies outside the package: refused")
    return str(main)


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
            check_digest(spec, tarball)
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
