"""The plot pipeline's one voice (``[visdom] ...`` on stderr) and its one runs folder.

Every message about plots goes through ``say`` so they read alike and can be found by their prefix;
every default path under the runs folder is made by ``runs_path`` (``$D2L_IGNITE_RUNS``, default
``runs`` in the working directory), so moving it is one setting.
"""
from __future__ import annotations

import os
import re
import sys

__all__ = ["say", "runs_path", "command", "RUNS_SETTING", "RUN_NAME"]

RUNS_SETTING = "D2L_IGNITE_RUNS"
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # a run's name and env: a file name Visdom can save


def say(text: str) -> None:
    print(f"[visdom] {text}", file=sys.stderr, flush=True)


def runs_path(*parts: str) -> str:
    """A path under the runs folder: ``runs_path(env)`` is a run's folder, ``runs_path("visdom")`` the
    local server's envs."""
    return os.path.join(os.environ.get(RUNS_SETTING) or "runs", *parts)


def command() -> str:
    """How to run the ``d2l-ignite`` command from here: its name when it is on ``PATH``, else the path of the
    one running (``.venv/bin/d2l-ignite`` after ``make train``), else ``python -m engine.app``."""
    import shutil

    if shutil.which("d2l-ignite"):
        return "d2l-ignite"
    if os.path.basename(sys.argv[0]) == "d2l-ignite" and os.path.isfile(sys.argv[0]):
        return sys.argv[0]
    return f"{sys.executable} -m engine.app"
