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
    from handlers.plot.base import Plotter
    from handlers.plot.tensorboard import TensorboardPlotter

    assert handlers.Plotter is Plotter and handlers.TensorboardPlotter is TensorboardPlotter  # what plot= takes
    with pytest.raises(AttributeError, match="has no attribute 'Plotters'"):
        handlers.Plotters  # noqa: B018


VISDOM_BACKEND = {"handlers/plot/" + m for m in ("plotter.py", "sender.py", "wire.py", "worker.py", "canvas.py",
                                                 "ignite_logger.py", "policy.py", "links.py")}
VISDOM_COMMANDS = {"engine/app/cli.py", "engine/app/runs.py"}  # `visdom`, `compare`, `replay`: Visdom by nature


def _visdom_imports(path: pathlib.Path) -> list[str]:
    """The Visdom modules ``path`` imports, anywhere in it (the ``visdom`` package, the server, the back-end)."""
    back_end = {p[: -len(".py")].replace("/", ".") for p in VISDOM_BACKEND}
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return sorted({n for n in names if n.split(".")[0] == "visdom" or n.startswith("handlers.visdom_server")
                   or any(n == m or n.startswith(m + ".") for m in back_end)})


def test_the_visdom_back_end_is_a_leaf(tmp_path):
    """Outside the back-end, only the module that names the back-ends (imported when chosen), the record (it keeps
    the env Visdom serves, built with the visdom package's own window code) and the Visdom commands import Visdom
    code; a run with plots off loads none of the back-end (no sender, no server, no HTTP), yet keeps its record."""
    allowed = VISDOM_BACKEND | VISDOM_COMMANDS | {"handlers/plot/backends.py", "handlers/plot/record.py"}
    importing = {str(p.relative_to(ROOT)) for p in LIBRARY if _visdom_imports(p)}
    server = {p for p in importing if p.startswith("handlers/visdom_server/")}
    assert importing - allowed - server == set(), importing - allowed - server
    visdom_package = [p for p in LIBRARY if any(n.split(".")[0] == "visdom" for n in _visdom_imports(p))]
    assert len(visdom_package) <= 10, visdom_package
    back_end = ("handlers.visdom_server", *(p[: -len(".py")].replace("/", ".") for p in VISDOM_BACKEND))
    script = ("import sys, torch\nfrom engine import train_ch13\n"
              "net = torch.nn.Linear(4, 3)\ndata = [(torch.randn(8, 4), torch.randint(0, 3, (8,)))] * 3\n"
              "train_ch13(net, data, data, torch.nn.CrossEntropyLoss(reduction='none'), "
              "torch.optim.SGD(net.parameters(), 0.1), 1, [torch.device('cpu')], plot=True, out_dir='run', "
              "verbose=False, progress=False)\n"
              f"print(sorted(m for m in sys.modules if m.startswith({back_end!r})))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "D2L_IGNITE_PLOT": "off", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert {"curves.npz", "curves.png", "run.json"} <= set(os.listdir(tmp_path / "run"))
