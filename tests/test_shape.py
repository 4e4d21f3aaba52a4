"""The code's shape, as the design card states it: small functions and modules, handlers that never
import engine, and a clear error when a user's own module shadows one of the two packages."""
from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
LIBRARY = sorted(p for pkg in ("engine", "handlers") for p in (ROOT / pkg).rglob("*.py"))


def _body_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]  # the docstring
    return 0 if not body else body[-1].end_lineno - body[0].lineno + 1


def test_no_function_body_over_40_lines_and_no_module_over_300():
    long_functions, long_modules = [], []
    for path in LIBRARY:
        text = path.read_text()
        if len(text.splitlines()) > 300:
            long_modules.append(str(path.relative_to(ROOT)))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _body_lines(node) > 40:
                long_functions.append(f"{path.relative_to(ROOT)}:{node.name} ({_body_lines(node)} lines)")
    assert not long_functions and not long_modules, (long_functions, long_modules)


def test_ruff_finds_nothing():
    """The linter's settings are pyproject.toml's [tool.ruff] (line length 120, unused imports, pyflakes)."""
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ignite_is_bounded_to_the_releases_the_dispatch_parity_test_covers():
    """engine/dispatch.py mirrors Ignite 0.5's event loop; a newer Ignite needs tests/test_dispatch.py run first."""
    from importlib.metadata import version

    text = (ROOT / "pyproject.toml").read_text()
    assert '"pytorch-ignite>=0.5.5,<0.6"' in text
    assert version("pytorch-ignite").startswith("0.5.")


def test_handlers_never_import_engine():
    offenders = []
    for path in (p for p in LIBRARY if p.parts[len(ROOT.parts)] == "handlers"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "engine"]
    assert offenders == []


@pytest.mark.parametrize("shadow", ["handlers.py", "handlers/__init__.py"])
def test_a_users_handlers_module_beside_the_script_is_named(tmp_path, shadow):
    (tmp_path / shadow).parent.mkdir(exist_ok=True)
    (tmp_path / shadow).write_text("def my_handler(engine):\n    pass\n")
    (tmp_path / "script.py").write_text("from engine import train_ch13\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(ROOT) if "PYTHONPATH" not in os.environ else f"{ROOT}{os.pathsep}{os.environ['PYTHONPATH']}"
    done = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: d2l-ignite's 'handlers' package is shadowed by ")
    assert str(tmp_path / shadow) in last and "Rename yours" in last


def test_public_faces_list_only_the_intended_api():
    import engine
    import handlers

    for name in ("check_amp", "make_scaler", "move", "free_port", "resolve_fast", "wants_progress"):
        assert name not in engine.__all__ and name not in handlers.__all__
    for name in engine.__all__:
        assert getattr(engine, name) is not None
    for name in handlers.__all__:
        assert getattr(handlers, name) is not None
